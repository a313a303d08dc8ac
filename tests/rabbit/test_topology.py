"""What rabbit:// declares and publishes, read back from the broker.

Queue and exchange names, flags and arguments (oslo.messaging's), bindings, message properties,
URL options overriding the configuration, and cleanup: after servers stop and transports close,
none of their reply or fanout queues is left.
"""

from __future__ import annotations

import concurrent.futures
import json
import re
import threading
import time
from typing import Any

import amqp
import pytest

import msgbus
from msgbus.testing import rabbitmq

from .helpers import HOST, PORT, RABBIT_URL, Closer, Echo, delete_entities, make_conf, unique

pytestmark = pytest.mark.timeout(120)

HEX32 = "[0-9a-f]{32}"


def raw_channel() -> tuple[amqp.Connection, amqp.Channel]:
    conn = amqp.Connection(f"{HOST}:{PORT}", userid="guest", password="guest")
    conn.connect()
    return conn, conn.channel()


def get_message(channel: amqp.Channel, queue: str, timeout: float = 10.0) -> amqp.Message:
    """basic.get until a message arrives on ``queue`` (bounded)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        message = channel.basic_get(queue, no_ack=True)
        if message is not None:
            return message
        time.sleep(0.02)
    raise AssertionError(f"no message on {queue} within {timeout}s")


def bindings_of(queue: str) -> set[tuple[str, str]]:
    return {(b["source_name"], b["routing_key"]) for b in rabbitmq.list_bindings()
            if b["destination_name"] == queue and b["destination_kind"] == "queue"}


class TestServerTopology:
    def test_server_queues_exchanges_and_bindings(self, closer: Closer) -> None:
        topic = unique("topo")
        closer.server(closer.transport(), topic, [Echo()], server="host-a")
        queues = rabbitmq.list_queues()
        fanout = [n for n in queues if re.fullmatch(f"{re.escape(topic)}_fanout_{HEX32}", n)]
        assert len(fanout) == 1, sorted(n for n in queues if n.startswith(topic))
        for name in (topic, f"{topic}.host-a"):
            info = queues[name]
            assert (info["durable"], info["auto_delete"], info["arguments"]) == \
                (False, False, {}), info
            assert info["consumers"] == 1
        info = queues[fanout[0]]
        assert (info["durable"], info["auto_delete"], info["arguments"]) == \
            (False, False, {"x-expires": 1800000}), info
        exchanges = rabbitmq.list_exchanges()
        assert {k: exchanges["openstack"][k] for k in ("type", "durable", "auto_delete")} == \
            {"type": "topic", "durable": False, "auto_delete": False}
        assert {k: exchanges[f"{topic}_fanout"][k] for k in ("type", "durable", "auto_delete")} \
            == {"type": "fanout", "durable": False, "auto_delete": True}
        assert ("openstack", topic) in bindings_of(topic)
        assert ("openstack", f"{topic}.host-a") in bindings_of(f"{topic}.host-a")
        # bound with the topic as key, as oslo.messaging 18.3 binds it (a fanout ignores it)
        assert (f"{topic}_fanout", topic) in bindings_of(fanout[0])

    def test_fanout_after_its_auto_deleted_exchange_came_back(self, closer: Closer) -> None:
        """The client remembers it declared ``<topic>_fanout``; the broker deletes it with the
        last server (auto-delete); the next fanout cast must declare it again, not fail."""
        topic = unique("topo-refanout")
        client = msgbus.get_rpc_client(closer.transport(), msgbus.Target(topic=topic,
                                                                         fanout=True))
        first = Echo("first")
        srv = closer.server(closer.transport(), topic, [first], server="a")
        client.cast({}, "note", value=1)
        assert first.wait_seen(lambda seen: seen == [1])
        srv.stop()
        srv.wait()
        assert f"{topic}_fanout" not in rabbitmq.list_exchanges()
        second = Echo("second")
        closer.server(closer.transport(), topic, [second], server="b")
        client.cast({}, "note", value=2)
        assert second.wait_seen(lambda seen: seen == [2])

    def test_target_exchange_is_used(self, closer: Closer) -> None:
        topic, exchange = unique("topo-x"), unique("exchange")
        transport = closer.transport()
        closer.add(lambda: delete_entities(exchanges=[exchange]))
        srv = msgbus.get_rpc_server(transport, msgbus.Target(topic=topic, server="s",
                                                             exchange=exchange), [Echo()])
        srv.start()
        closer.add(lambda: (srv.stop(), srv.wait()))
        assert (exchange, topic) in bindings_of(topic)
        client = msgbus.get_rpc_client(transport, msgbus.Target(topic=topic, exchange=exchange),
                                       timeout=30)
        assert client.call({}, "echo", value=1) == 1

    @pytest.mark.parametrize("option, durable, auto_delete, arguments", [
        ("amqp_durable_queues", True, False, {}),
        ("rabbit_quorum_queue", True, False, {"x-queue-type": "quorum"}),
        ("amqp_auto_delete", False, True, {}),
    ])
    def test_durable_quorum_and_auto_delete_options(self, closer: Closer, option: str,
                                                    durable: bool, auto_delete: bool,
                                                    arguments: dict[str, Any]) -> None:
        topic, exchange = unique("topo-opt"), unique("exchange")
        conf = make_conf(**{option: True})
        conf.set_override("control_exchange", exchange)
        closer.add(lambda: delete_entities([topic, f"{topic}.s1"], [exchange]))
        closer.server(closer.transport(conf=conf), topic, [Echo()])
        queues = rabbitmq.list_queues()
        for name in (topic, f"{topic}.s1"):
            info = queues[name]
            assert (info["durable"], info["auto_delete"], info["arguments"]) == \
                (durable, auto_delete, arguments)
        fanout = [n for n in queues if n.startswith(f"{topic}_fanout_")]
        assert queues[fanout[0]]["arguments"] == {"x-expires": 1800000}
        assert (queues[fanout[0]]["durable"], queues[fanout[0]]["auto_delete"]) == (False, False)
        info = rabbitmq.list_exchanges()[exchange]
        assert (info["durable"], info["auto_delete"]) == (durable, auto_delete)


class TestReplyQueue:
    def test_reply_queue_made_on_first_call_and_deleted_on_close(self, closer: Closer) -> None:
        topic = unique("topo-reply")
        closer.server(closer.transport(), topic, [Echo()])
        transport = msgbus.get_rpc_transport(make_conf(), url=RABBIT_URL)
        try:
            client = msgbus.get_rpc_client(transport, msgbus.Target(topic=topic), timeout=30)
            assert client.call({}, "echo", value="x") == "x"
            assert client.call({}, "echo", value="y") == "y"
            reply = transport.driver.describe()["reply_queue"]
            assert re.fullmatch(f"reply_{HEX32}", reply)
            info = rabbitmq.list_queues()[reply]
            assert (info["durable"], info["auto_delete"], info["arguments"], info["consumers"]) \
                == (False, False, {"x-expires": 1800000}, 1)
        finally:
            transport.cleanup()
        assert reply not in rabbitmq.list_queues()

    def test_url_query_overrides_configuration(self, closer: Closer) -> None:
        topic = unique("topo-query")
        closer.server(closer.transport(), topic, [Echo()])
        conf = make_conf(rabbit_transient_queues_ttl=600)
        transport = closer.transport(url=RABBIT_URL + "?rabbit_transient_queues_ttl=90",
                                     conf=conf)
        client = msgbus.get_rpc_client(transport, msgbus.Target(topic=topic), timeout=30)
        assert client.call({}, "echo", value=1) == 1
        reply = transport.driver.describe()["reply_queue"]
        assert rabbitmq.list_queues()[reply]["arguments"] == {"x-expires": 90000}


class TestNoLeftovers:
    def test_servers_and_clients_leave_no_private_queue(self) -> None:
        topic = unique("topo-leak")
        transports = [msgbus.get_rpc_transport(make_conf(), url=RABBIT_URL) for _ in range(3)]
        servers = [msgbus.get_rpc_server(transports[0], msgbus.Target(topic=topic, server=s),
                                         [Echo(s)]) for s in ("a", "b")]
        for srv in servers:
            srv.start()
        for transport in transports[1:]:
            client = msgbus.get_rpc_client(transport, msgbus.Target(topic=topic), timeout=30)
            assert client.call({}, "echo", value=1) == 1
            client.prepare(fanout=True).cast({}, "note", value=2)
        mine = [n for n in rabbitmq.list_queues()
                if n.startswith(f"{topic}_fanout_") or
                n in {t.driver.describe()["reply_queue"] for t in transports}]
        assert len(mine) == 4  # two fanout queues, two reply queues
        for srv in servers:
            srv.stop()
            srv.wait()
        for transport in transports:
            transport.cleanup()
        left = set(rabbitmq.list_queues()) & set(mine)
        assert not left, left
        assert f"{topic}_fanout" not in rabbitmq.list_exchanges()  # auto-deleted


class TestConnections:
    def test_close_closes_every_connection(self, closer: Closer) -> None:
        topic = unique("topo-conns")
        with rabbitmq.TcpProxy(PORT) as proxy:
            server_transport = msgbus.get_rpc_transport(make_conf(), url=proxy.url)
            client_transport = msgbus.get_rpc_transport(make_conf(), url=proxy.url)
            srv = msgbus.get_rpc_server(server_transport, msgbus.Target(topic=topic, server="s"),
                                        [Echo()])
            srv.start()
            client = msgbus.get_rpc_client(client_transport, msgbus.Target(topic=topic),
                                           timeout=30)
            with concurrent.futures.ThreadPoolExecutor(4) as pool:
                assert list(pool.map(lambda i: client.call({}, "echo", value=i), range(40))) \
                    == list(range(40))
            assert proxy.active >= 4
            srv.stop()
            srv.wait()
            client_transport.cleanup()
            server_transport.cleanup()
            assert proxy.wait_until_idle(timeout=10), proxy.active


class TestPrefetch:
    def test_qos_limits_unacknowledged_deliveries(self, closer: Closer) -> None:
        topic = f"{unique('topo-qos')}.info"
        closer.add(lambda: delete_entities([topic]))
        transport = closer.transport(conf=make_conf(rabbit_qos_prefetch_count=2))
        held: list[Any] = []
        cond = threading.Condition()

        def on_message(incoming: Any) -> None:
            with cond:
                held.append(incoming)
                cond.notify_all()

        listener = transport.listen_for_notifications([msgbus.Target(topic=topic)], None,
                                                      on_message)
        closer.add(listener.stop)
        for i in range(6):
            transport.send_notification(msgbus.Target(topic=topic), b'{"n": %d}' % i)
        with cond:
            assert cond.wait_for(lambda: len(held) == 2, 10)
            assert not cond.wait_for(lambda: len(held) > 2, 0.5)  # the broker holds the rest
            first = list(held)
        for incoming in first:
            incoming.ack()
        with cond:
            assert cond.wait_for(lambda: len(held) == 4, 10)
        for incoming in held[2:]:
            incoming.ack()
        with cond:
            assert cond.wait_for(lambda: len(held) == 6, 10)
        for incoming in held[4:]:
            incoming.ack()


class TestMessageProperties:
    """Properties and bodies on the wire, read with a plain AMQP client."""

    def test_cast_and_call_properties(self, closer: Closer) -> None:
        topic = unique("topo-props")
        conn, channel = raw_channel()
        try:
            channel.exchange_declare("openstack", "topic", durable=False, auto_delete=False)
            channel.queue_declare(topic, durable=False, auto_delete=False)
            channel.queue_bind(topic, "openstack", topic)
            client = msgbus.get_rpc_client(closer.transport(), msgbus.Target(topic=topic),
                                           timeout=4.5)
            client.cast({"user": "u1"}, "note", value=3)
            message = get_message(channel, topic)
            props = message.properties
            assert props["content_type"] == "application/json"
            assert props["content_encoding"] == "utf-8"
            assert props["delivery_mode"] == 2
            assert "expiration" not in props and "reply_to" not in props
            assert "correlation_id" not in props
            envelope = json.loads(message.body)
            assert envelope["oslo.version"] == "2.0"
            inner = json.loads(envelope["oslo.message"])
            assert inner["method"] == "note" and inner["args"] == {"value": 3}
            assert inner["_context_user"] == "u1" and "_msg_id" not in inner
            outcome: list[BaseException] = []

            def call() -> None:  # nobody answers: the request waits in the queue
                try:
                    client.call({}, "echo", value=4)
                except BaseException as exc:  # noqa: BLE001 - checked below
                    outcome.append(exc)

            caller = threading.Thread(target=call)
            caller.start()
            message = get_message(channel, topic)  # (before the request expires)
            caller.join(30)
            assert len(outcome) == 1 and isinstance(outcome[0], msgbus.MessagingTimeout)
            # the call's timeout in ms (what is left of it when the request goes out)
            assert 4000 < int(message.properties["expiration"]) <= 4500
            inner = json.loads(json.loads(message.body)["oslo.message"])
            assert re.fullmatch(HEX32, inner["_msg_id"])
            assert re.fullmatch(f"reply_{HEX32}", inner["_reply_q"])
        finally:
            channel.queue_delete(topic)
            conn.close()

    def test_reply_goes_to_default_exchange_with_queue_as_key(self, closer: Closer) -> None:
        topic = unique("topo-replyprops")
        closer.server(closer.transport(), topic, [Echo()])
        reply_q = f"reply_{unique('raw').replace('-', '')[-32:]}"
        conn, channel = raw_channel()
        try:
            channel.queue_declare(reply_q, durable=False, auto_delete=False,
                                  arguments={"x-expires": 60000})
            request = {"method": "echo", "args": {"value": "raw"}, "_unique_id": "u" * 32,
                       "_msg_id": "m" * 32, "_reply_q": reply_q, "_timeout": None}
            body = json.dumps({"oslo.version": "2.0", "oslo.message": json.dumps(request)})
            channel.basic_publish(amqp.Message(body, content_type="application/json"),
                                  "openstack", topic)
            message = get_message(channel, reply_q)
            assert message.delivery_info["exchange"] == ""
            assert message.delivery_info["routing_key"] == reply_q
            assert message.properties["delivery_mode"] == 2
            reply = json.loads(json.loads(message.body)["oslo.message"])
            assert reply["result"] == "raw" and reply["failure"] is None
            assert reply["ending"] is True and reply["_msg_id"] == "m" * 32
        finally:
            channel.queue_delete(reply_q)
            conn.close()


class TestNotificationTopology:
    def test_notification_queue_is_declared_by_the_sender(self, closer: Closer) -> None:
        topic = unique("topo-notify")
        transport = closer.transport()
        pool = f"{topic}-pool"
        closer.add(lambda: delete_entities([f"{topic}.info", f"{topic}.error", pool]))
        transport.send_notification(msgbus.Target(topic=f"{topic}.info"), b'{"n": 1}')
        info = rabbitmq.list_queues()[f"{topic}.info"]
        assert (info["durable"], info["auto_delete"], info["messages"]) == (False, False, 1)
        assert ("openstack", f"{topic}.info") in bindings_of(f"{topic}.info")
        got: list[bytes] = []
        done = threading.Event()

        def on_message(incoming: Any) -> None:
            got.append(incoming.body)
            incoming.ack()
            done.set()

        listener = transport.listen_for_notifications(
            [msgbus.Target(topic=f"{topic}.info"), msgbus.Target(topic=f"{topic}.error")],
            pool, on_message)
        try:
            # a pool's queue is named after the pool and bound to every topic
            assert {("openstack", f"{topic}.info"), ("openstack", f"{topic}.error")} <= \
                bindings_of(pool)
            transport.send_notification(msgbus.Target(topic=f"{topic}.error"), b'{"n": 2}')
            assert done.wait(10)
            assert got == [b'{"n": 2}']
        finally:
            listener.stop()
