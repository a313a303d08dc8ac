"""Bad input never kills a server: malformed bodies, bad requests, unencodable results."""

import logging
from typing import Any

import pytest

import msgbus
import msgbus.fake
from msgbus import envelope


class Api:
    def echo(self, ctxt: Any, value: Any) -> Any:
        return value

    def unencodable(self, ctxt: Any) -> Any:
        return object()


@pytest.fixture
def served():
    transport = msgbus.get_rpc_transport(url="fake://resilience")
    server = msgbus.get_rpc_server(transport, msgbus.Target(topic="t", server="s"), [Api()])
    server.start()
    client = msgbus.get_rpc_client(transport, msgbus.Target(topic="t"), timeout=10)
    yield transport, client
    server.stop()
    server.wait()
    transport.cleanup()
    msgbus.fake.reset()


BAD_BODIES = [
    b"not json at all",
    b"[1, 2, 3]",
    b'{"oslo.version": "9.0", "oslo.message": "{}"}',
    b'{"oslo.version": "2.0", "oslo.message": "{broken"}',
    envelope.encode({"args": {}, "_unique_id": "x1"}),  # no method
    envelope.encode({"method": 42, "args": {}, "_unique_id": "x2"}),
    envelope.encode({"method": "echo", "args": [1, 2], "_unique_id": "x3"}),
    envelope.encode({"method": "echo", "args": {"nope": 1}, "_unique_id": "x4"}),
]


def test_malformed_messages_are_logged_dropped_and_server_keeps_serving(
        served, caplog: pytest.LogCaptureFixture) -> None:
    transport, client = served
    broker = msgbus.fake.broker_for(transport)
    with caplog.at_level(logging.WARNING):
        for body in BAD_BODIES:
            assert broker.publish("openstack", "t", body) == 1
        # Queue order is preserved, so once this call returns every bad message was handled.
        assert client.call({}, "echo", value="still alive") == "still alive"
    text = caplog.text
    assert "malformed" in text and "not JSON" in text
    assert "unsupported envelope version" in text


def test_unencodable_result_becomes_an_error_for_the_caller(served) -> None:
    _, client = served
    with pytest.raises(msgbus.MessageSerializationError):
        client.call({}, "unencodable")
    assert client.call({}, "echo", value=1) == 1


def test_duplicate_delivery_is_dropped(served, caplog: pytest.LogCaptureFixture) -> None:
    transport, client = served
    broker = msgbus.fake.broker_for(transport)
    body = envelope.encode({"method": "echo", "args": {"value": 1}, "_unique_id": "dup-1"})
    with caplog.at_level(logging.WARNING):
        broker.publish("openstack", "t", body)
        broker.publish("openstack", "t", body)
        client.call({}, "echo", value="sync")
    assert "duplicate message dup-1" in caplog.text


def test_reply_nobody_waits_for_is_dropped_with_a_log(served,
                                                      caplog: pytest.LogCaptureFixture) -> None:
    transport, client = served
    waiter = transport.reply_waiter()
    with caplog.at_level(logging.INFO):
        transport.send_reply(waiter.address, envelope.encode(
            {"result": 1, "failure": None, "ending": True, "_msg_id": "nobody",
             "_unique_id": "r1"}))
        client.call({}, "echo", value="sync")
    assert "no caller is waiting" in caplog.text
