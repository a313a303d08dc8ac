"""Faults on a real broker: cut and frozen connections, forced closes, a broker restart,
failover to a second broker, a vanished reply queue, and listener stop/ack semantics.

The shared broker is only ever disturbed through a TcpProxy in front of it; closing every
connection and restarting happen on a private node of this module.
"""

from __future__ import annotations

import concurrent.futures
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

import msgbus
from msgbus.testing import rabbitmq
from msgbus.testing.fixtures import Recorder
from msgbus.testing.harness import check_oversized_refused
from msgbus.testing.rabbitmq import RabbitNode, TcpProxy

from .helpers import (PORT, RABBIT_URL, TUNINGS, Closer, Echo, delete_entities, tuned_conf,
                      unique)

pytestmark = pytest.mark.timeout(180)

CALL_TIMEOUT = 10.0


@pytest.fixture(scope="module")
def node() -> Iterator[RabbitNode]:
    """A private RabbitMQ node that tests may restart or force-close."""
    with rabbitmq.private_rabbit_node() as n:
        yield n


@pytest.fixture
def proxy() -> Iterator[TcpProxy]:
    with TcpProxy(PORT) as p:
        yield p


def client_for(closer: Closer, url: str, topic: str, tuning: str = "defaults",
               **kwargs: Any) -> msgbus.RPCClient:
    transport = closer.transport(url=url, conf=tuned_conf(tuning))
    kwargs.setdefault("timeout", CALL_TIMEOUT)
    return msgbus.get_rpc_client(transport, msgbus.Target(topic=topic), **kwargs)


def call_eventually(client: msgbus.RPCClient, value: Any, within: float = 30.0) -> Any:
    """Call until it succeeds (a call may time out while the path recovers)."""
    deadline = time.monotonic() + within
    while True:
        try:
            return client.call({}, "echo", value=value)
        except (msgbus.MessagingTimeout, msgbus.MessageDeliveryFailure):
            if time.monotonic() > deadline:
                raise


class TestCutConnections:
    @pytest.mark.parametrize("tuning", TUNINGS)
    def test_servers_and_clients_recover_after_drop(self, proxy: TcpProxy, closer: Closer,
                                                    tuning: str) -> None:
        topic = unique("fault-drop")
        echo = Echo()
        closer.server(closer.transport(url=proxy.url, conf=tuned_conf(tuning)), topic, [echo])
        client = client_for(closer, proxy.url, topic, tuning)
        assert client.call({}, "echo", value="before") == "before"
        for round_ in range(3):
            assert proxy.drop_all() >= 3  # server, client's send and reply connections
            assert call_eventually(client, f"after-{round_}") == f"after-{round_}"
        for i in range(20):
            client.cast({}, "note", value=i)
        assert echo.wait_seen(lambda seen: len(seen) >= 20)
        assert sorted(echo.seen) == list(range(20))

    def test_calls_in_flight_succeed_or_fail_in_time(self, proxy: TcpProxy,
                                                    closer: Closer) -> None:
        topic = unique("fault-inflight")
        closer.server(closer.transport(url=proxy.url, conf=tuned_conf()), topic, [Echo()])
        client = client_for(closer, proxy.url, topic, timeout=3.0)
        stop = threading.Event()
        problems: list[str] = []
        outcomes = {"ok": 0, "failed": 0}
        lock = threading.Lock()

        def caller(n: int) -> None:
            i = 0
            while not stop.is_set():
                value = f"{n}-{i}"
                i += 1
                start = time.monotonic()
                try:
                    got = client.call({}, "echo", value=value)
                except (msgbus.MessagingTimeout, msgbus.MessageDeliveryFailure):
                    got = None
                    with lock:
                        outcomes["failed"] += 1
                else:
                    with lock:
                        outcomes["ok"] += 1
                    if got != value:
                        problems.append(f"sent {value}, got {got!r}")
                took = time.monotonic() - start
                if took > 3.0 + 3.0:
                    problems.append(f"call {value} took {took:.1f}s")

        with concurrent.futures.ThreadPoolExecutor(4) as pool:
            futures = [pool.submit(caller, n) for n in range(4)]
            for _ in range(4):
                stop.wait(0.4)
                proxy.drop_all()
            stop.wait(0.4)
            stop.set()
            for future in futures:
                future.result(timeout=60)
        assert not problems, problems[:5]
        assert outcomes["ok"] > 0
        assert call_eventually(client, "final") == "final"


#: The driver's two paths (its fast path and py-amqp's public API alone), for the tests where
#: they differ most: heartbeats are counted by the fast path itself, by py-amqp on the other.
PATHS = pytest.mark.parametrize("fast_path", [True, False], ids=["fast", "public"])


class TestHeartbeats:
    @PATHS
    def test_idle_connections_stay_up(self, proxy: TcpProxy, closer: Closer,
                                      fast_path: bool) -> None:
        topic = unique("fault-idle")
        conf = tuned_conf(heartbeat_timeout_threshold=2, fast_path=fast_path)
        closer.server(closer.transport(url=proxy.url, conf=conf), topic, [Echo()])
        client = msgbus.get_rpc_client(closer.transport(url=proxy.url, conf=conf),
                                       msgbus.Target(topic=topic), timeout=CALL_TIMEOUT)
        assert client.call({}, "echo", value=1) == 1
        made = proxy.connections_made
        threading.Event().wait(6.0)  # idle for three heartbeat timeouts
        assert client.call({}, "echo", value=2) == 2
        assert proxy.connections_made == made, "a connection was lost while idle"

    @PATHS
    def test_frozen_connections_are_detected(self, proxy: TcpProxy, closer: Closer,
                                             fast_path: bool) -> None:
        topic = unique("fault-frozen")
        conf = tuned_conf(heartbeat_timeout_threshold=2, fast_path=fast_path)
        echo = Echo()
        closer.server(closer.transport(url=proxy.url, conf=conf), topic, [echo])
        client = msgbus.get_rpc_client(closer.transport(url=proxy.url, conf=conf),
                                       msgbus.Target(topic=topic), timeout=20.0)
        assert client.call({}, "echo", value=1) == 1
        made = proxy.connections_made
        assert proxy.freeze_all() >= 3
        start = time.monotonic()
        client.cast({}, "note", value="after freeze")  # its confirm never comes: resent
        assert client.call({}, "echo", value=2) == 2
        assert time.monotonic() - start < 20
        assert echo.wait_seen(lambda seen: "after freeze" in seen)
        assert proxy.connections_made >= made + 3


class TestPrivateNode:
    def test_close_all_connections(self, node: RabbitNode, closer: Closer) -> None:
        topic = unique("fault-close")
        echo = Echo()
        closer.server(closer.transport(url=node.url, conf=tuned_conf()), topic, [echo])
        client = client_for(closer, node.url, topic)
        assert client.call({}, "echo", value="before") == "before"
        node.close_all_connections("msgbus fault test")
        assert call_eventually(client, "after") == "after"
        for i in range(10):
            client.cast({}, "note", value=i)
        assert echo.wait_seen(lambda seen: len(seen) >= 10)

    def test_send_after_idle_connection_was_closed_needs_no_retry(self, node: RabbitNode,
                                                                  closer: Closer) -> None:
        """A pooled send connection the broker closed while idle is replaced within the same
        try: a cast with retry=0 after a forced close still goes out."""
        topic = unique("fault-idleclose")
        echo = Echo()
        closer.server(closer.transport(url=node.url, conf=tuned_conf()), topic, [echo])
        client = client_for(closer, node.url, topic, retry=0)
        client.cast({}, "note", value="before")
        assert echo.wait_seen(lambda seen: "before" in seen)
        node.close_all_connections("msgbus fault test")
        client.cast({}, "note", value="after")
        assert echo.wait_seen(lambda seen: "after" in seen)

    def test_oversized_messages_are_refused_with_the_brokers_reason(self, node: RabbitNode,
                                                                     closer: Closer) -> None:
        limit = 65536
        node.set_max_message_size(limit)
        try:
            topic = unique("fault-oversize")
            echo = Echo()
            closer.server(closer.transport(url=node.url, conf=tuned_conf()), topic, [echo])
            client = client_for(closer, node.url, topic)
            check_oversized_refused(client, echo, limit)
        finally:
            node.set_max_message_size(128 * 1024 * 1024)

    @pytest.mark.parametrize("tuning", TUNINGS)
    def test_broker_restart(self, node: RabbitNode, closer: Closer, tuning: str) -> None:
        topic = unique("fault-restart")
        echo = Echo()
        closer.server(closer.transport(url=node.url, conf=tuned_conf(tuning)), topic, [echo])
        client = client_for(closer, node.url, topic, tuning)
        assert client.call({}, "echo", value="before") == "before"
        node.restart()  # non-durable queues are gone: servers and clients declare them again
        assert call_eventually(client, "after") == "after"
        queues = node.list_queues()
        assert topic in queues and f"{topic}.s1" in queues
        assert any(n.startswith("reply_") and q["consumers"] == 1 for n, q in queues.items())
        client.prepare(fanout=True).cast({}, "note", value="fanout after restart")
        assert echo.wait_seen(lambda seen: "fanout after restart" in seen)

    def test_failover_to_second_broker(self, node: RabbitNode, closer: Closer) -> None:
        topic = unique("fault-failover")
        url = f"rabbit://guest:guest@{node.netloc},guest:guest@127.0.0.1:{PORT}/"
        echo = Echo()
        closer.server(closer.transport(url=url, conf=tuned_conf()), topic, [echo])
        client = client_for(closer, url, topic)
        assert client.call({}, "echo", value="on first") == "on first"
        assert topic in node.list_queues()  # everything started on the first host
        node.stop_app()
        try:
            assert call_eventually(client, "on second") == "on second"
            queues = rabbitmq.list_queues()
            assert queues[topic]["consumers"] == 1
            client.cast({}, "note", value="cast on second")
            assert echo.wait_seen(lambda seen: "cast on second" in seen)
        finally:
            node.start_app()


class TestReplyQueueLoss:
    def test_reply_waits_for_a_redeclared_reply_queue(self, closer: Closer) -> None:
        topic = unique("fault-replyq")
        entered, release = threading.Event(), threading.Event()

        class Slow(Echo):
            def slow(self, ctxt: Any, value: Any) -> Any:
                entered.set()
                release.wait(30)
                return value

        closer.server(closer.transport(conf=tuned_conf()), topic, [Slow()])
        transport = closer.transport(conf=tuned_conf())
        client = msgbus.get_rpc_client(transport, msgbus.Target(topic=topic), timeout=30)
        assert client.call({}, "echo", value=0) == 0
        reply_q = transport.driver.describe()["reply_queue"]
        with concurrent.futures.ThreadPoolExecutor(1) as pool:
            future = pool.submit(client.call, {}, "slow", value="late")
            assert entered.wait(30)
            delete_entities([reply_q])  # the broker cancels the client's consumer
            release.set()
            assert future.result(timeout=40) == "late"
        assert rabbitmq.list_queues()[reply_q]["consumers"] == 1


class TestListenerSemantics:
    def test_no_callback_after_stop_and_nothing_lost(self, closer: Closer) -> None:
        topic = unique("fault-stop")
        transport = closer.transport()
        sender = closer.transport()
        target = msgbus.Target(topic=topic, server="s1", exchange="openstack")
        stopped, some_taken = threading.Event(), threading.Event()
        late: list[int] = []
        taken: list[bytes] = []

        def on_message(incoming: Any) -> None:
            if stopped.is_set():
                late.append(1)
            incoming.ack()
            taken.append(incoming.body)
            if len(taken) >= 20:
                some_taken.set()

        listener = transport.listen(target, on_message)
        total = 300
        for i in range(total):
            sender.send(msgbus.Target(topic=topic, exchange="openstack"), b'{"n": %d}' % i)
        assert some_taken.wait(30)
        listener.stop()
        stopped.set()
        threading.Event().wait(0.2)
        assert not late
        left = rabbitmq.list_queues()[topic]["messages"]
        assert len(taken) + left == total, (len(taken), left)
        assert not [n for n in rabbitmq.list_queues() if n.startswith(f"{topic}_fanout_")]

    def test_ack_and_requeue_from_other_threads(self, closer: Closer) -> None:
        topic = f"{unique('fault-ack')}.info"
        transport = closer.transport()
        closer.add(lambda: delete_entities([topic]))
        recorder = Recorder()
        seen_once: set[bytes] = set()
        pool = concurrent.futures.ThreadPoolExecutor(4)
        closer.add(lambda: pool.shutdown(wait=True))

        def settle(incoming: Any) -> None:
            if incoming.body not in seen_once:  # first delivery: give it back
                seen_once.add(incoming.body)
                incoming.requeue()
                return
            incoming.ack()
            incoming.ack()  # idempotent
            recorder.add(incoming.body)

        listener = transport.listen_for_notifications([msgbus.Target(topic=topic)], None,
                                                      lambda m: pool.submit(settle, m))
        closer.add(listener.stop)
        for i in range(50):
            transport.send_notification(msgbus.Target(topic=topic), b'{"n": %d}' % i)
        assert len(set(recorder.wait_count(50))) == 50
        assert recorder.wait_for(lambda ev: len(ev) == 50, timeout=1)
        listener.stop()
        assert rabbitmq.list_queues()[topic]["messages"] == 0


def test_shared_broker_untouched(closer: Closer) -> None:
    """After all this, the shared broker still serves a plain call (nothing was stopped)."""
    topic = unique("fault-final")
    closer.server(closer.transport(), topic, [Echo()])
    client = msgbus.get_rpc_client(closer.transport(url=RABBIT_URL), msgbus.Target(topic=topic),
                                   timeout=CALL_TIMEOUT)
    assert client.call({}, "echo", value="fine") == "fine"
