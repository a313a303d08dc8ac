"""Faults on ``pika://``: connections cut mid-run, a broker that refuses connections for a while,
a broker restart (on a private node), a reply queue that is gone.

What must hold: servers reconnect and keep serving; calls in flight return the right result or
raise within their timeout, never hang and never get another caller's reply; sends wait for
the broker per ``retry`` and are not lost; stopping leaves no reply or fanout queue behind.
Connections are cut with a TcpProxy in front of the shared broker (which nobody else notices)
or, for restarts and broker-side closes, on a private node.
"""

from __future__ import annotations

import collections
import concurrent.futures
import json
import logging
import os
import signal
import threading
import time
from collections.abc import Iterator
from typing import Any

import pika
import pytest
from pika_helpers import FAST_RECONNECT, HOST, PORT, Closer, Echo, LogCapture, unique

import msgbus
import msgbus.notify
from msgbus.exceptions import MessageDeliveryFailure, MessagingTimeout
from msgbus.testing import rabbitmq
from msgbus.testing.harness import check_oversized_refused

pytestmark = pytest.mark.timeout(120)

#: The URL options of every transport here: quick reconnects and heartbeats.
FAST = {**FAST_RECONNECT, "heartbeat_timeout_threshold": 10}


def url_via(netloc: str, **extra: Any) -> str:
    """A pika:// URL for ``netloc`` with quick reconnects."""
    query = "&".join(f"{k}={v}" for k, v in {**FAST, **extra}.items())
    return f"pika://guest:guest@{netloc}/?{query}"


@pytest.fixture
def proxy() -> Iterator[rabbitmq.TcpProxy]:
    with rabbitmq.TcpProxy(PORT, HOST) as p:
        yield p


@pytest.fixture
def node(private_node: Any) -> rabbitmq.RabbitNode:
    """The session's private broker (conftest): tests may restart, freeze or disconnect it."""
    return private_node.node


def beam_pid(node: rabbitmq.RabbitNode) -> int:
    """The OS process id of the node's Erlang VM."""
    return int(rabbitmq.rabbitmqctl("eval", "os:getpid().", node=node.name).strip().strip('"'))


def private_queues(topic: str, queues: dict[str, Any]) -> list[str]:
    return [q for q in queues if q.startswith(f"{topic}_fanout_")]


def reply_queue_of(transport: msgbus.Transport) -> str:
    return transport.reply_waiter().address


class Caller:
    """Threads calling ``echo`` with their own values; every outcome is checked and counted."""

    def __init__(self, client: msgbus.RPCClient, threads: int, timeout: float) -> None:
        self.client = client.prepare(timeout=timeout)
        self.timeout = timeout
        self.results: collections.Counter[str] = collections.Counter()
        self.problems: list[str] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._run, args=(i,), daemon=True)
                         for i in range(threads)]

    def _run(self, n: int) -> None:
        i = 0
        while not self._stop.is_set():
            value = f"t{n}-{i}"
            i += 1
            start = time.monotonic()
            try:
                got = self.client.call({}, "echo", value=value)
                outcome = "ok" if got == value else "wrong"
                if got != value:
                    with self._lock:
                        self.problems.append(f"asked {value}, got {got}")
            except (MessagingTimeout, MessageDeliveryFailure) as exc:
                outcome = type(exc).__name__
            took = time.monotonic() - start
            with self._lock:
                self.results[outcome] += 1
                if took > self.timeout + 3.0:
                    self.problems.append(f"call of {value} took {took:.1f}s")

    def start(self) -> None:
        for thread in self._threads:
            thread.start()

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(self.timeout + 10)
            if thread.is_alive():
                self.problems.append("a calling thread hangs")

    def ok_count(self) -> int:
        with self._lock:
            return self.results["ok"]

    def wait_ok(self, more_than: int, timeout: float = 30.0) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.ok_count() > more_than:
                return True
            threading.Event().wait(0.05)
        return False


class TestConnectionsCut:
    """Every connection through the proxy is cut while servers and clients are busy."""

    def test_calls_in_flight_survive_cuts(self, closer: Closer,
                                          proxy: rabbitmq.TcpProxy) -> None:
        topic = unique("cut-calls")
        url = url_via(proxy.netloc)
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

    def test_casts_arrive_after_cuts(self, closer: Closer, proxy: rabbitmq.TcpProxy) -> None:
        topic = unique("cut-casts")
        url = url_via(proxy.netloc)
        endpoint = Echo()
        closer.server(closer.transport(url), topic, [endpoint])
        client = msgbus.get_rpc_client(closer.transport(url), msgbus.Target(topic=topic))
        sent = 0
        for round_ in range(3):
            for _ in range(100):
                client.cast({}, "note", value=sent)
                sent += 1
            proxy.drop_all()
        for _ in range(50):  # after the last cut, with everyone reconnecting
            client.cast({}, "note", value=sent)
            sent += 1
        # Every confirmed cast arrives (a redelivery may repeat one: the core drops duplicates).
        assert endpoint.wait_seen(lambda seen: set(seen) == set(range(sent)), timeout=30), \
            sorted(set(range(sent)) - set(endpoint.seen))[:20]

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
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            queues = rabbitmq.list_queues()
            if all(queues.get(q, {}).get("consumers") == 1 for q in before):
                break
            threading.Event().wait(0.1)
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
        with pytest.raises(MessageDeliveryFailure, match=f"{proxy.netloc}"):
            client.prepare(retry=2).cast({}, "note", value="never")
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


class TestBrokerSide:
    """The broker itself drops everything or restarts (a private node)."""

    def test_close_all_connections(self, closer: Closer, node: rabbitmq.RabbitNode) -> None:
        topic = unique("forced")
        url = url_via(node.netloc)
        closer.server(closer.transport(url), topic, [Echo()])
        client = msgbus.get_rpc_client(closer.transport(url), msgbus.Target(topic=topic))
        caller = Caller(client, threads=4, timeout=5.0)
        caller.start()
        try:
            assert caller.wait_ok(10)
            node.close_all_connections()
            assert caller.wait_ok(caller.ok_count() + 30), caller.results
        finally:
            caller.stop()
        assert not caller.problems, caller.problems[:10]

    def test_oversized_messages_are_refused_with_the_brokers_reason(
            self, closer: Closer, node: rabbitmq.RabbitNode) -> None:
        limit = 65536
        node.set_max_message_size(limit)
        try:
            topic = unique("oversize")
            url = url_via(node.netloc)
            echo = Echo()
            closer.server(closer.transport(url), topic, [echo])
            client = msgbus.get_rpc_client(closer.transport(url), msgbus.Target(topic=topic),
                                           timeout=10)
            check_oversized_refused(client, echo, limit)
        finally:
            node.set_max_message_size(128 * 1024 * 1024)

    def test_broker_restart(self, closer: Closer, node: rabbitmq.RabbitNode) -> None:
        topic = unique("restart")
        url = url_via(node.netloc)
        endpoints = [Echo("s0"), Echo("s1")]
        for i, endpoint in enumerate(endpoints):
            closer.server(closer.transport(url), topic, [endpoint], server=f"s{i}")
        client_transport = closer.transport(url)
        client = msgbus.get_rpc_client(client_transport, msgbus.Target(topic=topic), timeout=20)
        assert client.call({}, "echo", value="before") == "before"
        reply_queue = reply_queue_of(client_transport)
        node.stop_app()  # every connection drops, the non-durable queues are gone
        node.start_app()
        # Consumers re-declare their queues (same names) and calls work again.
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            queues = node.list_queues()
            if reply_queue in queues and len(private_queues(topic, queues)) == 2 \
                    and queues.get(topic, {}).get("consumers") == 2:
                break
            threading.Event().wait(0.2)
        assert client.call({}, "echo", value="after") == "after"
        client.prepare(fanout=True).cast({}, "note", value="all")
        for endpoint in endpoints:
            assert endpoint.wait_seen(lambda seen: seen == ["all"], timeout=20)
        assert reply_queue in node.list_queues()


class TestMissingReplyQueue:
    """A request whose reply queue does not exist: the server retries for a bounded time, logs
    an error and keeps serving."""

    def test_reply_to_missing_queue_is_logged_and_dropped(self, closer: Closer,
                                                          logs: LogCapture) -> None:
        topic = unique("noreply")
        url = url_via(f"{HOST}:{PORT}", reply_missing_queue_timeout=0.5)
        closer.server(closer.transport(url), topic, [Echo()])
        request = {"method": "echo", "args": {"value": 1}, "_unique_id": "c" * 32,
                   "_msg_id": "d" * 32, "_reply_q": "reply_nobody_listens_here", "_timeout": None}
        conn = pika.BlockingConnection(pika.ConnectionParameters(
            HOST, PORT, credentials=pika.PlainCredentials("guest", "guest")))
        try:
            conn.channel().basic_publish("openstack", topic, json.dumps(
                {"oslo.version": "2.0", "oslo.message": json.dumps(request)}))
        finally:
            conn.close()
        assert logs.wait_for("reply_nobody_listens_here does not exist", level=logging.ERROR,
                             timeout=20)
        client = msgbus.get_rpc_client(closer.transport(), msgbus.Target(topic=topic),
                                       timeout=20)
        assert client.call({}, "echo", value="alive") == "alive"


class TestHeartbeats:
    """A broker that stops answering without closing anything (frozen): AMQP heartbeats notice,
    calls in flight time out in time, and everything recovers when it answers again."""

    def test_frozen_broker(self, closer: Closer, node: rabbitmq.RabbitNode,
                           logs: LogCapture) -> None:
        topic = unique("frozen")
        url = url_via(node.netloc, heartbeat_timeout_threshold=1, connect_timeout=1)
        closer.server(closer.transport(url), topic, [Echo()])
        client = msgbus.get_rpc_client(closer.transport(url), msgbus.Target(topic=topic),
                                       timeout=20)
        assert client.call({}, "echo", value="before") == "before"
        pid = beam_pid(node)
        os.kill(pid, signal.SIGSTOP)
        try:
            start = time.monotonic()
            with pytest.raises((MessagingTimeout, MessageDeliveryFailure)):
                client.prepare(timeout=3).call({}, "echo", value="frozen")
            assert time.monotonic() - start < 6
            # pika's heartbeat checker drops the silent connections (it checks every
            # threshold + 5 seconds whether anything arrived).
            assert logs.wait_for("AMQPHeartbeatTimeout", level=logging.WARNING, timeout=15)
        finally:
            os.kill(pid, signal.SIGCONT)
        assert client.call({}, "echo", value="after") == "after"


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
