"""Bad input on rabbit://: malformed messages, wrong URLs and options, missing reply queues.

Each gives a clear error or a log line; nothing hangs, no password is shown, and a server
keeps serving.
"""

from __future__ import annotations

import json
import logging
import threading
import time

import amqp
import pytest

import msgbus
from msgbus.testing import rabbitmq

from .helpers import HOST, PORT, RABBIT_URL, Closer, Echo, LogCapture, make_conf, unique

pytestmark = pytest.mark.timeout(120)

SECRET = "s3cr3t-pw"


def publish_raw(exchange: str, routing_key: str, bodies: list[bytes]) -> None:
    """Publish bodies by hand with a plain AMQP client (confirmed)."""
    conn = amqp.Connection(f"{HOST}:{PORT}", userid="guest", password="guest",
                           confirm_publish=True)
    conn.connect()
    try:
        channel = conn.channel()
        for body in bodies:
            channel.basic_publish(amqp.Message(body, content_type="application/json"),
                                  exchange, routing_key)
    finally:
        conn.close()


def envelope(inner: object, version: str = "2.0") -> bytes:
    return json.dumps({"oslo.version": version, "oslo.message": json.dumps(inner)}).encode()


class TestMalformedMessages:
    def test_server_logs_drops_and_keeps_serving(self, closer: Closer, logs: LogCapture) -> None:
        topic = unique("bad-msg")
        echo = Echo()
        closer.server(closer.transport(), topic, [echo])
        client = msgbus.get_rpc_client(closer.transport(), msgbus.Target(topic=topic),
                                       timeout=30)
        assert client.call({}, "echo", value="before") == "before"
        bad = [
            b"this is not json",
            b"\xff\xfe\x00 not utf-8",
            b"",
            b"[1, 2, 3]",
            envelope({"method": "note", "args": {"value": "v3"}}, version="3.0"),
            b'{"oslo.version": "2.0", "oslo.message": "{broken"}',
            envelope({"args": {"value": "no method"}, "_unique_id": "a" * 32}),
            json.dumps({"no": "envelope", "_unique_id": "b" * 32}).encode(),
        ]
        publish_raw("openstack", topic, bad)
        publish_raw("openstack", f"{topic}.s1", [b"\x00\x01 binary to the server queue"])
        # a good cast after them: once it is handled, every bad one was handled before it
        publish_raw("openstack", topic, [envelope({"method": "note", "args": {"value": "ok"},
                                                   "_unique_id": "c" * 32})])
        assert echo.wait_seen(lambda seen: "ok" in seen)
        assert client.call({}, "echo", value="after") == "after"
        assert echo.seen == ["ok"]
        assert logs.wait_for("malformed", level=logging.ERROR)
        malformed = [m for m in logs.messages(logging.ERROR) if "malformed" in m]
        assert len(malformed) == 7, malformed  # every body the envelope rules refuse
        dispatch = [m for m in logs.messages(logging.WARNING) if "could not dispatch" in m]
        assert len(dispatch) == 2, dispatch  # the two without a method
        queues = rabbitmq.list_queues()
        assert queues[topic]["messages"] == 0 and queues[f"{topic}.s1"]["messages"] == 0

    def test_reply_to_missing_queue_is_retried_then_dropped(self, closer: Closer,
                                                             logs: LogCapture) -> None:
        topic = unique("bad-reply")
        conf = make_conf(reply_missing_queue_timeout=0.5)
        closer.server(closer.transport(conf=conf), topic, [Echo()])
        request = {"method": "echo", "args": {"value": 1}, "_unique_id": "d" * 32,
                   "_msg_id": "e" * 32, "_reply_q": "reply_" + "0" * 32, "_timeout": None}
        publish_raw("openstack", topic, [envelope(request)])
        # the driver tries once; the core sends it again for reply_missing_queue_timeout, then
        # logs an error naming the reply queue
        assert logs.wait_for("reply_" + "0" * 32, level=logging.ERROR)
        client = msgbus.get_rpc_client(closer.transport(), msgbus.Target(topic=topic),
                                       timeout=30)
        assert client.call({}, "echo", value="still serving") == "still serving"


class TestWrongUrlsAndOptions:
    def test_nothing_listening_fails_fast_with_retry_0(self, closer: Closer) -> None:
        port = rabbitmq.free_port()
        transport = closer.transport(url=f"rabbit://guest:{SECRET}@127.0.0.1:{port}/")
        client = msgbus.get_rpc_client(transport, msgbus.Target(topic="nobody"), retry=0,
                                       timeout=30)
        start = time.monotonic()
        with pytest.raises(msgbus.MessageDeliveryFailure) as info:
            client.cast({}, "echo", value=1)
        assert time.monotonic() - start < 5
        assert f"127.0.0.1:{port}" in str(info.value)
        assert SECRET not in str(info.value)

    def test_retry_n_tries_n_plus_one_times(self, closer: Closer) -> None:
        from msgbus.testing.rabbitmq import TcpProxy
        with TcpProxy(PORT) as proxy:
            proxy.accepting = False
            conf = make_conf(rabbit_retry_interval=0.01, rabbit_retry_backoff=0.01)
            transport = closer.transport(url=proxy.url, conf=conf)
            client = msgbus.get_rpc_client(transport, msgbus.Target(topic="nobody"), retry=2)
            with pytest.raises(msgbus.MessageDeliveryFailure, match="3 attempt"):
                client.cast({}, "echo", value=1)
            assert proxy.attempts == 3

    def test_call_never_outlives_its_timeout(self, closer: Closer) -> None:
        port = rabbitmq.free_port()
        transport = closer.transport(url=f"rabbit://guest:guest@127.0.0.1:{port}/")
        client = msgbus.get_rpc_client(transport, msgbus.Target(topic="nobody"), timeout=1.5)
        start = time.monotonic()
        with pytest.raises((msgbus.MessagingTimeout, msgbus.MessageDeliveryFailure)):
            client.call({}, "echo", value=1)
        assert time.monotonic() - start < 5

    def test_wrong_password(self, closer: Closer) -> None:
        url = f"rabbit://guest:{SECRET}@{HOST}:{PORT}/"
        transport = closer.transport(url=url)
        client = msgbus.get_rpc_client(transport, msgbus.Target(topic="nobody"), retry=0)
        with pytest.raises(msgbus.MessageDeliveryFailure) as info:
            client.cast({}, "echo", value=1)
        assert "ACCESS_REFUSED" in str(info.value) and SECRET not in str(info.value)
        server = msgbus.get_rpc_server(closer.transport(url=url),
                                       msgbus.Target(topic=unique("bad-pw"), server="s"),
                                       [Echo()])
        start = time.monotonic()
        with pytest.raises(msgbus.ServerListenError) as info:
            server.start()
        assert time.monotonic() - start < 10
        assert "ACCESS_REFUSED" in str(info.value) and SECRET not in str(info.value)

    def test_unknown_vhost(self, closer: Closer) -> None:
        transport = closer.transport(url=f"rabbit://guest:guest@{HOST}:{PORT}/no-such-vhost")
        client = msgbus.get_rpc_client(transport, msgbus.Target(topic="nobody"), retry=0)
        with pytest.raises(msgbus.MessageDeliveryFailure, match="vhost|NOT_ALLOWED|access"):
            client.cast({}, "echo", value=1)

    @pytest.mark.parametrize("query, words", [
        ("heartbeat_timeout_threshold=soon", "heartbeat_timeout_threshold"),
        ("ssl=maybe", "ssl"),
        ("failover_strategy=random", "failover_strategy"),
        ("ssl=true&ssl_ca_file=/nonexistent/ca.pem", "/nonexistent/ca.pem"),
    ])
    def test_invalid_option_values_are_named(self, query: str, words: str) -> None:
        with pytest.raises(msgbus.MessagingException, match=words):
            msgbus.get_rpc_transport(make_conf(), url=f"{RABBIT_URL}?{query}")

    def test_unknown_url_option_is_logged(self, closer: Closer, logs: LogCapture) -> None:
        closer.transport(url=f"{RABBIT_URL}?no_such_option=1")
        assert logs.wait_for("no_such_option", level=logging.WARNING, timeout=1)

    def test_body_must_be_bytes(self, closer: Closer) -> None:
        transport = closer.transport()
        with pytest.raises(TypeError, match="bytes"):
            transport.send(msgbus.Target(topic="nobody"), "text")  # type: ignore[arg-type]


class TestServerStartsBeforeBroker:
    def test_server_waits_for_the_broker_then_serves(self, closer: Closer,
                                                     logs: LogCapture) -> None:
        from msgbus.testing.rabbitmq import TcpProxy
        proxy = TcpProxy(PORT)
        closer.add(proxy.stop)
        proxy.accepting = False
        topic = unique("bad-late-broker")
        conf = make_conf(rabbit_retry_interval=0.05, rabbit_retry_backoff=0.05)
        server = msgbus.get_rpc_server(closer.transport(url=proxy.url, conf=conf),
                                       msgbus.Target(topic=topic, server="s"), [Echo()])
        started = threading.Event()

        def start() -> None:
            server.start()
            started.set()

        closer.add(lambda: (server.stop(), server.wait()))
        threading.Thread(target=start, daemon=True).start()
        assert logs.wait_for("cannot consume", level=logging.ERROR)
        assert not started.is_set()
        proxy.accepting = True
        assert started.wait(30)
        client = msgbus.get_rpc_client(closer.transport(), msgbus.Target(topic=topic),
                                       timeout=30)
        assert client.call({}, "echo", value="late") == "late"
