"""Bad input on ``pika://``: malformed messages, unreachable brokers, wrong credentials and
options. Each gives a clear error or a log line; no server dies of it and nothing hangs."""

from __future__ import annotations

import json
import logging
import threading
import time
from typing import Any

import pika
import pytest
from pika_helpers import HOST, PORT, Closer, Echo, LogCapture, make_conf, pika_url, unique

import msgbus
from msgbus.exceptions import (DriverLoadFailure, MessageDeliveryFailure, MessagingTimeout,
                               ServerListenError)
from msgbus.testing import rabbitmq

pytestmark = pytest.mark.timeout(60)

#: Bodies a broken or hostile peer might put on a queue.
BAD_BODIES = [
    b"",
    b"not json at all",
    b"\xff\xfe\x00garbage",
    b"[1, 2, 3]",
    b'"just a string"',
    b"null",
    json.dumps({"oslo.version": "3.0", "oslo.message": "{}"}).encode(),
    json.dumps({"oslo.version": "2.0", "oslo.message": "{not json"}).encode(),
    json.dumps({"oslo.version": "2.0", "oslo.message": {"nested": "object"}}).encode(),
    json.dumps({"oslo.version": "2.0", "oslo.message": "[1]"}).encode(),
    b"{" * 10000,
]


def publish_raw(exchange: str, routing_key: str, bodies: list[bytes],
                properties: pika.BasicProperties | None = None) -> None:
    """Publish ``bodies`` by hand with pika's BlockingConnection (confirmed)."""
    conn = pika.BlockingConnection(pika.ConnectionParameters(
        HOST, PORT, credentials=pika.PlainCredentials("guest", "guest")))
    try:
        channel = conn.channel()
        channel.confirm_delivery()
        for body in bodies:
            channel.basic_publish(exchange, routing_key, body, properties, mandatory=True)
    finally:
        conn.close()


def wait_until(predicate: Any, timeout: float = 20.0, interval: float = 0.1) -> bool:
    """Poll ``predicate`` (a broker query) until it holds or ``timeout`` passes."""
    deadline = time.monotonic() + timeout
    while True:
        if predicate():
            return True
        if time.monotonic() >= deadline:
            return False
        threading.Event().wait(interval)


class TestMalformedMessages:
    """Malformed bodies are decoded by the core, logged and dropped; serving goes on."""

    def test_server_drops_bad_bodies_and_keeps_serving(self, closer: Closer,
                                                       logs: LogCapture) -> None:
        topic = unique("bad-server")
        transport = closer.transport()
        closer.server(transport, topic, [Echo()])
        client = msgbus.get_rpc_client(closer.transport(), msgbus.Target(topic=topic),
                                       timeout=20)
        assert client.call({}, "echo", value="before") == "before"
        # To the shared topic queue and to the server's own queue, through the control exchange.
        publish_raw("openstack", topic, BAD_BODIES)
        publish_raw("openstack", f"{topic}.s1", BAD_BODIES,
                    pika.BasicProperties(content_type="text/plain", delivery_mode=1))
        assert logs.wait_for("dropped a malformed message", level=logging.ERROR)
        assert client.call({}, "echo", value="after") == "after"
        # Every bad message was taken off the queues (acked), none requeued forever.
        assert wait_until(lambda: all(rabbitmq.list_queues()[q]["messages"] == 0
                                      for q in (topic, f"{topic}.s1")))
        dropped = [m for m in logs.messages(logging.ERROR) if "malformed" in m]
        assert len(dropped) == 2 * len(BAD_BODIES)

    def test_legacy_unwrapped_message_without_properties_is_served(self, closer: Closer) -> None:
        topic = unique("legacy")
        endpoint = Echo()
        closer.server(closer.transport(), topic, [endpoint])
        legacy = {"method": "note", "args": {"value": "v1"}, "_unique_id": "a" * 32}
        publish_raw("openstack", topic, [json.dumps(legacy).encode()])
        assert endpoint.wait_seen(lambda seen: seen == ["v1"], timeout=20)

    def test_bad_bodies_on_reply_queue_are_dropped(self, closer: Closer,
                                                    logs: LogCapture) -> None:
        topic = unique("bad-reply")
        closer.server(closer.transport(), topic, [Echo()])
        transport = closer.transport()
        client = msgbus.get_rpc_client(transport, msgbus.Target(topic=topic), timeout=20)
        assert client.call({}, "echo", value=1) == 1
        reply_queue = transport.reply_waiter().address
        stray = {"result": "stray", "failure": None, "ending": True, "_msg_id": "f" * 32,
                 "_unique_id": "e" * 32}
        publish_raw("", reply_queue, [*BAD_BODIES, json.dumps(stray).encode()])
        assert logs.wait_for("no caller is waiting", timeout=20)
        assert logs.wait_for("malformed reply", level=logging.ERROR)
        assert client.call({}, "echo", value=2) == 2

    def test_non_bytes_body_is_refused(self, closer: Closer) -> None:
        transport = closer.transport()
        with pytest.raises(TypeError, match="bytes"):
            transport.driver.send(msgbus.Target(topic=unique("t"), exchange="openstack"),
                                  "a str")  # type: ignore[arg-type]


class TestUnreachableBroker:
    """Nobody listens on the port (DEFAULT options): bounded retries and deadlines, errors name
    the address, not the password."""

    def test_cast_with_retry_zero_fails_at_once(self, closer: Closer) -> None:
        port = rabbitmq.free_port()
        transport = closer.transport(pika_url(port=port))
        client = msgbus.get_rpc_client(transport, msgbus.Target(topic="t"), retry=0)
        start = time.monotonic()
        with pytest.raises(MessageDeliveryFailure) as info:
            client.cast({}, "echo", value=1)
        assert time.monotonic() - start < 10
        text = str(info.value)
        assert f"127.0.0.1:{port}" in text
        assert "guest:guest" not in text
        assert "1 failed attempt" in text

    def test_cast_with_retry_counts_attempts(self, closer: Closer) -> None:
        port = rabbitmq.free_port()
        transport = closer.transport(pika_url(port=port))
        client = msgbus.get_rpc_client(transport, msgbus.Target(topic="t"), retry=2)
        with pytest.raises(MessageDeliveryFailure, match="3 failed attempt") as info:
            client.cast({}, "echo", value=1)
        assert "ConnectionRefusedError" in str(info.value)

    @pytest.mark.parametrize("calls", [1, 2])
    def test_call_times_out_by_its_deadline(self, closer: Closer, calls: int) -> None:
        """The first call (which sets up the reply queue) and a later one (the reply queue
        set-up failed before) both end by their timeout, naming the broker and the reason."""
        port = rabbitmq.free_port()
        transport = closer.transport(pika_url(port=port))
        client = msgbus.get_rpc_client(transport, msgbus.Target(topic="t"), timeout=1.5)
        for _ in range(calls):
            start = time.monotonic()
            with pytest.raises(MessagingTimeout, match=f"127.0.0.1:{port}.*refused"):
                client.call({}, "echo", value=1)
            took = time.monotonic() - start
            assert 1.5 <= took < 2.0, took

    def test_server_start_fails_by_listen_timeout(self, closer: Closer) -> None:
        port = rabbitmq.free_port()
        transport = closer.transport(pika_url(port=port),
                                     conf=make_conf(core={"listen_timeout": 1}))
        server = msgbus.get_rpc_server(transport, msgbus.Target(topic="t", server="s"), [Echo()])
        before = threading.active_count()
        start = time.monotonic()
        with pytest.raises(ServerListenError, match=f"127.0.0.1:{port}.*refused"):
            server.start()
        assert 1.0 <= time.monotonic() - start < 1.5
        # The listener's connection and its I/O thread are gone again.
        assert threading.active_count() <= before

    @pytest.mark.parametrize("kind", ["server", "notifications"])
    def test_listen_fails_by_its_deadline(self, closer: Closer, kind: str) -> None:
        """On the driver interface: listen raises MessageDeliveryFailure at its deadline."""
        port = rabbitmq.free_port()
        driver = closer.transport(pika_url(port=port)).driver
        target = msgbus.Target(topic="t", server="s", exchange="openstack")
        start = time.monotonic()
        with pytest.raises(MessageDeliveryFailure, match=f"127.0.0.1:{port}"):
            if kind == "server":
                driver.listen(target, lambda m: None, deadline=start + 0.7)
            else:
                driver.listen_for_notifications([target], None, lambda m: None,
                                                deadline=start + 0.7)
        assert 0.7 <= time.monotonic() - start < 1.2

    def test_wrong_password(self, closer: Closer, logs: LogCapture) -> None:
        url = f"pika://guest:wrong-secret@{HOST}:{PORT}/"
        transport = closer.transport(url)
        client = msgbus.get_rpc_client(transport, msgbus.Target(topic="t"), retry=0)
        with pytest.raises(MessageDeliveryFailure) as info:
            client.cast({}, "echo", value=1)
        assert "wrong-secret" not in str(info.value)
        assert "Authentication" in str(info.value)
        transport.cleanup()
        assert "wrong-secret" not in str(transport.driver.describe())
        leaks = [m for m in logs.messages() if "wrong-secret" in m]
        assert not leaks, leaks[:3]

    def test_unknown_vhost(self, closer: Closer) -> None:
        url = f"pika://guest:guest@{HOST}:{PORT}/no-such-vhost"
        client = msgbus.get_rpc_client(closer.transport(url), msgbus.Target(topic="t"), retry=0)
        with pytest.raises(MessageDeliveryFailure, match="AccessDenied|access"):
            client.cast({}, "echo", value=1)

    def test_failover_to_the_second_host(self, closer: Closer) -> None:
        dead = rabbitmq.free_port()
        url = f"pika://guest:guest@127.0.0.1:{dead},guest:guest@{HOST}:{PORT}/"
        topic = unique("failover")
        closer.server(closer.transport(url), topic, [Echo()])
        client = msgbus.get_rpc_client(closer.transport(url), msgbus.Target(topic=topic),
                                       timeout=20, retry=1)
        assert client.call({}, "echo", value="via second") == "via second"


class TestBadOptions:
    """Invalid options fail when the transport is made, naming the option."""

    def test_invalid_url_option_value(self) -> None:
        with pytest.raises(DriverLoadFailure, match="rabbit_retry_interval"):
            msgbus.get_rpc_transport(url=pika_url(rabbit_retry_interval="soon"))

    def test_missing_ca_file(self) -> None:
        with pytest.raises(DriverLoadFailure, match="ssl_ca_file"):
            msgbus.get_rpc_transport(url=pika_url(ssl="true", ssl_ca_file="/nonexistent/ca.pem"))

    def test_unknown_url_option_is_logged(self, closer: Closer, logs: LogCapture) -> None:
        closer.transport(pika_url(no_such_option=1))
        assert logs.wait_for("no_such_option", level=logging.WARNING, timeout=1)


class TestTls:
    """TLS to the private node: the broker's certificate is verified against the CA file."""

    def test_verified_tls(self, closer: Closer, private_node: Any, tls_files: Any) -> None:
        url = pika_url(port=private_node.tls_port, ssl="true", ssl_ca_file=tls_files.ca)
        topic = unique("tls")
        closer.server(closer.transport(url), topic, [Echo()])
        client = msgbus.get_rpc_client(closer.transport(url), msgbus.Target(topic=topic),
                                       timeout=20)
        assert client.call({}, "echo", value="secret") == "secret"

    def test_untrusted_certificate_is_refused(self, closer: Closer, private_node: Any,
                                              tls_files: Any) -> None:
        url = pika_url(port=private_node.tls_port, ssl="true", ssl_ca_file=tls_files.other_ca)
        client = msgbus.get_rpc_client(closer.transport(url), msgbus.Target(topic="t"), retry=0)
        with pytest.raises(MessageDeliveryFailure, match="CERTIFICATE_VERIFY_FAILED|verify"):
            client.cast({}, "echo", value=1)

    def test_verification_can_be_turned_off(self, closer: Closer, private_node: Any,
                                            tls_files: Any) -> None:
        url = pika_url(port=private_node.tls_port, ssl="true", ssl_ca_file=tls_files.other_ca,
                       ssl_verify="false")
        topic = unique("tls-noverify")
        endpoint = Echo()
        closer.server(closer.transport(url), topic, [endpoint])
        msgbus.get_rpc_client(closer.transport(url), msgbus.Target(topic=topic)).cast(
            {}, "note", value="ok")
        assert endpoint.wait_seen(lambda seen: seen == ["ok"], timeout=20)

    def test_default_port_is_oslo_messagings(self, closer: Closer) -> None:
        """A URL host without a port means 5672, over TLS too, as with oslo.messaging."""
        from msgbus.transport_url import TransportHost
        from msgbus_pika.options import PikaSettings
        from msgbus_pika.parameters import connection_parameters
        for query, port in (("?ssl=true", 5672), ("", 5672)):
            settings = PikaSettings.from_conf(make_conf(), {"ssl": "true"} if query else {})
            params = connection_parameters(settings, TransportHost("127.0.0.1"), "/", None, "t")
            assert params.port == port
        # End to end: the attempt goes to 5672 (plain AMQP there: the TLS handshake fails) and
        # says so.
        url = "pika://guest:guest@127.0.0.1/?ssl=true&ssl_verify=false"
        client = msgbus.get_rpc_client(closer.transport(url), msgbus.Target(topic="t"), retry=0)
        with pytest.raises(MessageDeliveryFailure, match="127.0.0.1:5672"):
            client.cast({}, "echo", value=1)

    def test_plain_client_on_tls_port_fails_clearly(self, closer: Closer,
                                                    private_node: Any) -> None:
        url = pika_url(port=private_node.tls_port, connect_timeout=2)
        client = msgbus.get_rpc_client(closer.transport(url), msgbus.Target(topic="t"), retry=0)
        with pytest.raises(MessageDeliveryFailure, match=f"127.0.0.1:{private_node.tls_port}"):
            client.cast({}, "echo", value=1)
