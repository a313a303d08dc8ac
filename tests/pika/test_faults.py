"""Faults on ``pika://`` through a TcpProxy in front of the shared broker (which nobody else
notices): connections cut mid-run, a broker that refuses connections for a while, closing a
transport while sends wait; and a reply queue that is gone, a listener stopped mid-work.

What must hold, with DEFAULT options (a tuned variant runs only beside a default one: see
``pika_helpers.OPTION_SETS``): servers reconnect and keep serving; calls in flight return the
right result or raise within their timeout (+0.5 s), never hang and never get another caller's
reply; casts are never lost or doubled; sends wait for the broker per ``retry``; stopping leaves
no reply or fanout queue behind. Restarts and broker-side faults on a private node are in
``test_broker_faults.py``.
"""

from __future__ import annotations

import concurrent.futures
import json
import logging
import threading
import time
from collections.abc import Iterator
from typing import Any

import pika
import pytest
from fault_helpers import Caller, private_queues, reply_queue_of, url_via, wait_until
from pika_helpers import HOST, OPTION_SETS, PORT, Closer, Echo, LogCapture, make_conf, unique

import msgbus
import msgbus.notify
from msgbus.exceptions import MessageDeliveryFailure, MessageUndeliverable, TransportClosedError
from msgbus.testing import rabbitmq

pytestmark = pytest.mark.timeout(120)


@pytest.fixture
def proxy() -> Iterator[rabbitmq.TcpProxy]:
    with rabbitmq.TcpProxy(PORT, HOST) as p:
        yield p


@pytest.fixture(params=list(OPTION_SETS))
def options(request: pytest.FixtureRequest) -> dict[str, Any]:
    """The DEFAULT options, and beside them the tuned ones."""
    return OPTION_SETS[request.param]


class TestConnectionsCut:
    """Every connection through the proxy is cut while servers and clients are busy."""

    def test_calls_in_flight_survive_cuts(self, closer: Closer, proxy: rabbitmq.TcpProxy,
                                          options: dict[str, Any]) -> None:
        topic = unique("cut-calls")
        url = url_via(proxy.netloc, options)
        closer.server(closer.transport(url), topic, [Echo("a")], server="a")
        closer.server(closer.transport(url), topic, [Echo("b")], server="b")
        client_transport = closer.transport(url)
        caller = Caller(msgbus.get_rpc_client(client_transport, msgbus.Target(topic=topic)),
                        threads=8, timeout=5.0)
        caller.start()
        try:
            for _ in range(3):
                assert caller.wait_ok(caller.ok_count() + 20), caller.results
                assert proxy.drop_all() > 0
            assert caller.wait_ok(caller.ok_count() + 50), caller.results
        finally:
            caller.stop()
        assert not caller.problems, caller.problems[:10]
        assert caller.results["wrong"] == 0
        # Servers, clients and reply consumer all came back through the proxy.
        assert proxy.connections_made >= 4 * 4

    def test_casts_arrive_after_cuts(self, closer: Closer, proxy: rabbitmq.TcpProxy,
                                     options: dict[str, Any]) -> None:
        topic = unique("cut-casts")
        url = url_via(proxy.netloc, options)
        endpoint = Echo()
        closer.server(closer.transport(url), topic, [endpoint])
        client = msgbus.get_rpc_client(closer.transport(url), msgbus.Target(topic=topic))
        sent = 0
        for _round in range(3):
            for _ in range(100):
                client.cast({}, "note", value=sent)
                sent += 1
            proxy.drop_all()
        for _ in range(50):  # after the last cut, with everyone reconnecting
            client.cast({}, "note", value=sent)
            sent += 1
        # Every cast arrives once (the server drops a copy sent again after a cut).
        assert endpoint.wait_seen(lambda seen: set(seen) == set(range(sent)), timeout=30), \
            sorted(set(range(sent)) - set(endpoint.seen))[:20]
        assert sorted(endpoint.seen) == list(range(sent)), "some casts arrived twice"

    def test_fanout_and_server_queues_restored(self, closer: Closer,
                                               proxy: rabbitmq.TcpProxy) -> None:
        topic = unique("cut-fanout")
        url = url_via(proxy.netloc)
        endpoints = [Echo(f"s{i}") for i in range(2)]
        for i, endpoint in enumerate(endpoints):
            closer.server(closer.transport(url), topic, [endpoint], server=f"s{i}")
        before = set(private_queues(topic, rabbitmq.list_queues()))
        assert len(before) == 2
        proxy.drop_all()
        client = msgbus.get_rpc_client(closer.transport(url), msgbus.Target(topic=topic),
                                       timeout=20)
        # The consumers come back on the same queues: fanout reaches both, servers by name.
        assert wait_until(lambda: all(rabbitmq.list_queues().get(q, {}).get("consumers") == 1
                                      for q in before), timeout=20, interval=0.1)
        client.prepare(fanout=True).cast({}, "note", value="all")
        for endpoint in endpoints:
            assert endpoint.wait_seen(lambda seen: seen == ["all"], timeout=20)
        assert client.prepare(server="s1").call({}, "whoami") == "s1"
        assert set(private_queues(topic, rabbitmq.list_queues())) == before

    def test_send_waits_per_retry_while_the_broker_refuses(self, closer: Closer,
                                                           proxy: rabbitmq.TcpProxy) -> None:
        topic = unique("refused")
        url = url_via(proxy.netloc)
        endpoint = Echo()
        closer.server(closer.transport(url), topic, [endpoint])
        transport = closer.transport(url)
        client = msgbus.get_rpc_client(transport, msgbus.Target(topic=topic))
        client.cast({}, "note", value="first")  # the send connection is up
        proxy.accepting = False
        proxy.drop_all()
        start = time.monotonic()
        with pytest.raises(MessageDeliveryFailure, match=f"{proxy.netloc}.*3 failed attempt"):
            client.prepare(retry=2).cast({}, "note", value="never")
        assert time.monotonic() - start < 2.0  # fast reconnect attempts: ~0.1 s apart
        # retry=None waits for the broker and then delivers.
        with concurrent.futures.ThreadPoolExecutor(1) as pool:
            pending = pool.submit(client.cast, {}, "note", value="later")
            with pytest.raises(concurrent.futures.TimeoutError):
                pending.result(0.5)
            proxy.accepting = True
            pending.result(30)
        assert endpoint.wait_seen(lambda seen: "later" in seen, timeout=20)
        assert "never" not in endpoint.seen

    def test_nothing_leaks_after_stop(self, closer: Closer, proxy: rabbitmq.TcpProxy) -> None:
        topic = unique("leaks")
        url = url_via(proxy.netloc)
        server_transport = msgbus.get_rpc_transport(url=url)
        server = msgbus.get_rpc_server(server_transport, msgbus.Target(topic=topic, server="s"),
                                       [Echo()])
        server.start()
        client_transport = msgbus.get_rpc_transport(url=url)
        client = msgbus.get_rpc_client(client_transport, msgbus.Target(topic=topic), timeout=20)
        assert client.call({}, "echo", value=1) == 1
        reply_queue = reply_queue_of(client_transport)
        proxy.drop_all()
        assert client.call({}, "echo", value=2) == 2
        threads = threading.active_count()
        server.stop()
        server.wait()
        client_transport.cleanup()
        server_transport.cleanup()
        queues = rabbitmq.list_queues()
        assert reply_queue not in queues
        assert private_queues(topic, queues) == []
        assert threading.active_count() <= threads - 3  # I/O threads ended
        assert proxy.active == 0


    def test_a_reply_on_its_way_at_a_cut_comes_again(self, closer: Closer,
                                                     proxy: rabbitmq.TcpProxy) -> None:
        """The broker sent a reply, the link lost it, the connection is cut: the reply is
        delivered again after the reconnect (replies are acknowledged, not auto-acked)."""
        driver = closer.transport(url_via(proxy.netloc)).driver
        got: list[bytes] = []
        arrived = threading.Event()

        def on_reply(message: Any) -> None:
            message.ack()
            got.append(message.body)
            arrived.set()

        reply_queue = driver.listen_for_replies(on_reply, deadline=time.monotonic() + 10)
        proxy.freeze_all()  # from now on, what the broker sends is thrown away
        conn = pika.BlockingConnection(pika.ConnectionParameters(
            HOST, PORT, credentials=pika.PlainCredentials("guest", "guest")))
        try:
            conn.channel().basic_publish("", reply_queue, b'{"result": 1}')
        finally:
            conn.close()

        def sent_unacked() -> bool:
            rows = rabbitmq.rabbitmqctl("list_queues", "name", "messages_unacknowledged")
            return any(line.split() == [reply_queue, "1"] for line in rows.splitlines())
        assert wait_until(sent_unacked, timeout=10)
        assert not arrived.is_set()
        proxy.drop_all()
        assert arrived.wait(10)
        assert got == [b'{"result": 1}']

    def test_closing_fails_waiting_sends_at_once(self, closer: Closer,
                                                 proxy: rabbitmq.TcpProxy) -> None:
        """A send waiting for a broker that refuses connections (retry None, no deadline) is
        released by cleanup() at once, and cleanup() does not wait for the broker either."""
        transport = msgbus.get_rpc_transport(make_conf(), url=url_via(proxy.netloc))
        closer.add(transport.cleanup)
        client = msgbus.get_rpc_client(transport, msgbus.Target(topic=unique("closing")))
        client.cast({}, "note", value="first")  # connected
        proxy.accepting = False
        proxy.drop_all()
        conn = transport.driver._publisher.connection
        assert wait_until(lambda: conn.failed_attempts > 0, timeout=10)
        with concurrent.futures.ThreadPoolExecutor(2) as pool:
            pending = [pool.submit(client.cast, {}, "note", value=i) for i in range(2)]
            done, _ = concurrent.futures.wait(pending, timeout=0.5)
            assert not done  # they wait for the broker
            start = time.monotonic()
            transport.cleanup()
            assert time.monotonic() - start < 1.0
            for future in pending:
                with pytest.raises(TransportClosedError):
                    future.result(1.0)


class TestMissingReplyQueue:
    """A request whose reply queue does not exist: the driver says so at once, the core retries
    for a bounded time (``reply_missing_queue_timeout``), logs an error, and serving goes on."""

    def test_send_reply_to_a_missing_queue_raises_at_once(self, closer: Closer) -> None:
        driver = closer.transport().driver
        start = time.monotonic()
        with pytest.raises(MessageUndeliverable):
            driver.send_reply("reply_nobody_listens_here", b'{"result": 1}')
        assert time.monotonic() - start < 1.0

    def test_reply_to_missing_queue_is_logged_and_dropped(self, closer: Closer,
                                                          logs: LogCapture) -> None:
        topic = unique("noreply")
        conf = make_conf(core={"reply_missing_queue_timeout": 0.5})
        closer.server(closer.transport(conf=conf), topic, [Echo()])
        request = {"method": "echo", "args": {"value": 1}, "_unique_id": "c" * 32,
                   "_msg_id": "d" * 32, "_reply_q": "reply_nobody_listens_here", "_timeout": None}
        conn = pika.BlockingConnection(pika.ConnectionParameters(
            HOST, PORT, credentials=pika.PlainCredentials("guest", "guest")))
        try:
            conn.channel().basic_publish("openstack", topic, json.dumps(
                {"oslo.version": "2.0", "oslo.message": json.dumps(request)}))
        finally:
            conn.close()
        assert logs.wait_for("reply_nobody_listens_here did not exist", level=logging.ERROR,
                             timeout=20)
        client = msgbus.get_rpc_client(closer.transport(), msgbus.Target(topic=topic),
                                       timeout=20)
        assert client.call({}, "echo", value="alive") == "alive"


class TestStopping:
    """A listener stopped while it handles messages: their late acks still reach the broker."""

    def test_notification_in_flight_at_stop_is_not_redelivered(self, closer: Closer) -> None:
        topic = unique("late-ack")
        entered, release = threading.Event(), threading.Event()
        seen: list[Any] = []

        class Slow:
            def info(self, ctxt: Any, publisher_id: str, event_type: str, payload: Any,
                     metadata: Any) -> None:
                seen.append(payload)
                entered.set()
                release.wait(20)

        def listener(endpoint: Any) -> Any:
            transport = msgbus.notify.get_notification_transport(url=url_via(f"{HOST}:{PORT}"))
            closer.add(transport.cleanup)
            srv = msgbus.notify.get_notification_listener(transport,
                                                         [msgbus.Target(topic=topic)], [endpoint])
            closer.add(lambda: (srv.stop(), srv.wait()))
            srv.start()
            return srv

        first = listener(Slow())
        notifier_transport = msgbus.notify.get_notification_transport(
            url=url_via(f"{HOST}:{PORT}"))
        closer.add(notifier_transport.cleanup)
        notifier = msgbus.notify.Notifier(notifier_transport, publisher_id="test",
                                          driver="messagingv2", topics=[topic])
        notifier.info({}, "slow.one", 1)
        assert entered.wait(20)
        first.stop()
        release.set()
        first.wait()
        # A second listener on the topic gets the next notification, not the first one again.
        notifier.info({}, "slow.two", 2)
        second_seen: list[Any] = []
        got = threading.Event()

        class Quick:
            def info(self, ctxt: Any, publisher_id: str, event_type: str, payload: Any,
                     metadata: Any) -> None:
                second_seen.append(payload)
                got.set()

        listener(Quick())
        assert got.wait(20)
        # A requeued first message would keep its place at the head: it would come first.
        assert second_seen == [2], second_seen
        assert seen == [1]
