"""Broker-side faults on ``pika://``, on the session's private node: every connection closed by
the broker, a restart (non-durable queues are lost), a frozen broker, a size limit.

With DEFAULT options (a tuned variant only beside a default one): calls whose timeout outlasts
an outage succeed once the broker is back and never outlive their timeout (+0.5 s); a call while
the broker stays down raises MessagingTimeout by its deadline; casts sent during the outage, or
while the server has not declared its queue again yet, are processed exactly once; consumers
re-declare the same reply and fanout queues.
"""

from __future__ import annotations

import concurrent.futures
import logging
import os
import signal
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
from fault_helpers import (SLACK, Caller, beam_pid, private_queues, reply_queue_of, url_via,
                           wait_until)
from pika_helpers import OPTION_SETS, Closer, Echo, LogCapture, unique

import msgbus
from msgbus.exceptions import MessageDeliveryFailure, MessagingTimeout, TransportClosedError
from msgbus.testing import rabbitmq
from msgbus.testing.harness import check_oversized_refused

pytestmark = pytest.mark.timeout(180)


@pytest.fixture
def node(private_node: Any) -> rabbitmq.RabbitNode:
    """The session's private broker (conftest): tests may restart, freeze or disconnect it."""
    return private_node.node


@pytest.fixture(params=list(OPTION_SETS))
def options(request: pytest.FixtureRequest) -> dict[str, Any]:
    """The DEFAULT options, and beside them the tuned ones."""
    return OPTION_SETS[request.param]


@pytest.fixture
def node_proxy(node: rabbitmq.RabbitNode) -> Iterator[rabbitmq.TcpProxy]:
    """A TcpProxy in front of the private node (to keep one party away from it)."""
    with rabbitmq.TcpProxy(node.port, node.host) as p:
        yield p


def timed(fn: Any, *args: Any, **kwargs: Any) -> tuple[Any, float, float]:
    """``fn(*args, **kwargs)``'s result (or exception), how long it took, and when it ended."""
    start = time.monotonic()
    try:
        result = fn(*args, **kwargs)
    except Exception as exc:  # noqa: BLE001 - returned for the test to check
        result = exc
    end = time.monotonic()
    return result, end - start, end


class Casts:
    """A thread casting ``note(value=i)``, i = 0, 1, ..., until stopped; counts what it sent."""

    def __init__(self, client: msgbus.RPCClient, pause: float = 0.02) -> None:
        self.client = client
        self.pause = pause
        self.sent = 0
        #: when each cast returned (time.monotonic()), by its value
        self.returned_at: list[float] = []
        self.errors: list[BaseException] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.client.cast({}, "note", value=self.sent)
                self.returned_at.append(time.monotonic())
                self.sent += 1
            except Exception as exc:  # noqa: BLE001 - the test reports it
                self.errors.append(exc)
                return
            self._stop.wait(self.pause)

    def stop(self) -> int:
        """Stop casting; the number of casts that returned without error."""
        self._stop.set()
        self._thread.join(30)
        assert not self._thread.is_alive(), "a cast hangs"
        assert not self.errors, self.errors
        return self.sent


#: A cast confirmed this shortly before the broker stopped may still have been sitting in its
#: non-durable queue, which dies with the broker: doc/faults.md's "honest exception".
IN_QUEUE_AT_STOP = 0.5


def assert_exactly_once(echo: Echo, count: int, excused: frozenset[int] = frozenset()) -> None:
    """Every cast 0..count-1 arrived once; those in ``excused`` may be missing (never twice)."""
    wanted = set(range(count)) - excused
    echo.wait_seen(lambda seen: wanted <= set(seen), timeout=30)
    missing = wanted - set(echo.seen)
    assert not missing, f"{len(missing)} of {count} casts never arrived: {sorted(missing)}"
    assert len(echo.seen) == len(set(echo.seen)), "some casts arrived twice"
    assert set(echo.seen) <= set(range(count)), echo.seen


def in_queue_at(casts: Casts, stopping_at: float, stopped_at: float) -> frozenset[int]:
    """The casts that returned from IN_QUEUE_AT_STOP before the broker began to stop until it
    had stopped: they may have been in its queues then."""
    return frozenset(i for i, at in enumerate(casts.returned_at)
                     if stopping_at - IN_QUEUE_AT_STOP <= at <= stopped_at)


class TestBrokerSide:
    """The broker itself drops everything or restarts."""

    def test_close_all_connections(self, closer: Closer, node: rabbitmq.RabbitNode,
                                   options: dict[str, Any]) -> None:
        topic = unique("forced")
        url = url_via(node.netloc, options)
        echo = Echo()
        closer.server(closer.transport(url), topic, [echo])
        client = msgbus.get_rpc_client(closer.transport(url), msgbus.Target(topic=topic))
        caller = Caller(client, threads=8, timeout=5.0)
        caller.start()
        casts = Casts(client)
        try:
            for _ in range(2):
                assert caller.wait_ok(caller.ok_count() + 10)
                node.close_all_connections()
            assert caller.wait_ok(caller.ok_count() + 30), caller.results
        finally:
            caller.stop()
            sent = casts.stop()
        assert not caller.problems, caller.problems[:10]
        assert set(caller.results) == {"ok"}, caller.results
        assert_exactly_once(echo, sent)

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

    def test_broker_restart(self, closer: Closer, node: rabbitmq.RabbitNode,
                            options: dict[str, Any]) -> None:
        """While the broker is down: a 1 s call raises MessagingTimeout by its deadline, a 10 s
        call waits and succeeds once it is back, casts wait and all arrive once. Afterwards
        the consumers have re-declared the same queues."""
        topic = unique("restart")
        url = url_via(node.netloc, options)
        endpoints = [Echo("s0"), Echo("s1")]
        for i, endpoint in enumerate(endpoints):
            closer.server(closer.transport(url), topic, [endpoint], server=f"s{i}")
        client_transport = closer.transport(url)
        client = msgbus.get_rpc_client(client_transport, msgbus.Target(topic=topic), timeout=10)
        assert client.call({}, "echo", value="before") == "before"
        reply_queue = reply_queue_of(client_transport)
        fanout_queues = set(private_queues(topic, node.list_queues()))
        casts = Casts(client.prepare(server="s0"))
        stopping_at = time.monotonic()
        node.stop_app()  # every connection drops, the non-durable queues are gone
        stopped_at = time.monotonic()
        result, took, _ = timed(client.prepare(timeout=1).call, {}, "echo", value="down")
        assert isinstance(result, MessagingTimeout), result
        assert str(node.port) in str(result)
        assert 1.0 <= took < 1.0 + SLACK, took
        with concurrent.futures.ThreadPoolExecutor(1) as pool:
            during = pool.submit(timed, client.call, {}, "echo", value="during")
            threading.Event().wait(1.0)
            node.start_app()  # returns once the broker accepts connections again
            back = time.monotonic()
            result, took, ended = during.result(15)
        assert result == "during", result
        assert took < 10 + SLACK
        assert ended - back < 1.5, f"the call succeeded {ended - back:.2f}s after the restart"
        sent = casts.stop()
        assert_exactly_once(endpoints[0], sent, in_queue_at(casts, stopping_at, stopped_at))
        # The consumers re-declared the same queues and consume them.
        assert wait_until(lambda: reply_queue in node.list_queues(), timeout=10)
        assert set(private_queues(topic, node.list_queues())) == fanout_queues
        client.prepare(fanout=True).cast({}, "note", value="all")
        assert endpoints[1].wait_seen(lambda seen: seen == ["all"], timeout=20)
        assert endpoints[0].wait_seen(lambda seen: seen[-1] == "all", timeout=20)

    def test_casts_while_the_server_queue_is_gone(self, closer: Closer,
                                                  node: rabbitmq.RabbitNode,
                                                  node_proxy: rabbitmq.TcpProxy,
                                                  logs: LogCapture) -> None:
        """After a restart, the client is back before the server declared its queues again:
        the broker returns its casts (no queue), the driver holds them and sends them again,
        each arrives exactly once; a call in that window waits for the server too."""
        topic = unique("queue-gone")
        echo = Echo()
        closer.server(closer.transport(url_via(node_proxy.netloc)), topic, [echo])
        client = msgbus.get_rpc_client(closer.transport(url_via(node.netloc)),
                                       msgbus.Target(topic=topic), timeout=10)
        assert client.call({}, "echo", value="before") == "before"
        node_proxy.accepting = False  # the server cannot come back until we say so
        node.restart()
        for i in range(200):  # the client reconnects; the server's queue does not exist
            client.cast({}, "note", value=i)
        assert client.transport.driver.describe()["held_casts"] > 0
        with concurrent.futures.ThreadPoolExecutor(1) as pool:
            call = pool.submit(timed, client.call, {}, "echo", value="waits")
            threading.Event().wait(0.5)
            node_proxy.accepting = True
            result, took, _ = call.result(15)
        assert result == "waits" and took < 10 + SLACK, (result, took)
        assert_exactly_once(echo, 200)
        assert not [m for m in logs.messages(logging.ERROR) if m.startswith("dropped ")]


class TestHeartbeats:
    """A broker that stops answering without closing anything (frozen): calls in flight time
    out in time, everything recovers when it answers again; with short heartbeats, pika notices
    and reconnects."""

    @pytest.mark.parametrize("heartbeat", [None, 1])
    def test_frozen_broker(self, closer: Closer, node: rabbitmq.RabbitNode, logs: LogCapture,
                           heartbeat: int | None) -> None:
        topic = unique("frozen")
        tuned = {"heartbeat_timeout_threshold": heartbeat, "connect_timeout": 1} \
            if heartbeat else {}
        url = url_via(node.netloc, tuned)
        closer.server(closer.transport(url), topic, [Echo()])
        client = msgbus.get_rpc_client(closer.transport(url), msgbus.Target(topic=topic),
                                       timeout=20)
        assert client.call({}, "echo", value="before") == "before"
        pid = beam_pid(node)
        os.kill(pid, signal.SIGSTOP)
        try:
            result, took, _ = timed(client.prepare(timeout=3).call, {}, "echo", value="frozen")
            assert isinstance(result, (MessagingTimeout, MessageDeliveryFailure)), result
            assert took < 3 + SLACK, took
            if heartbeat:
                # pika's heartbeat checker drops the silent connections (it checks every
                # threshold + 5 seconds whether anything arrived).
                assert logs.wait_for("AMQPHeartbeatTimeout", level=logging.WARNING, timeout=15)
        finally:
            os.kill(pid, signal.SIGCONT)
        assert client.call({}, "echo", value="after") == "after"

    def test_closing_releases_sends_waiting_for_a_frozen_broker(self, closer: Closer,
                                                               node: rabbitmq.RabbitNode) -> None:
        transport = msgbus.get_rpc_transport(url=url_via(node.netloc))
        closer.add(transport.cleanup)
        client = msgbus.get_rpc_client(transport, msgbus.Target(topic=unique("frozen-close")),
                                       retry=3)
        client.cast({}, "note", value="connected")
        pid = beam_pid(node)
        os.kill(pid, signal.SIGSTOP)
        try:
            with concurrent.futures.ThreadPoolExecutor(2) as pool:
                waiting = pool.submit(client.cast, {}, "note", value="never confirmed")
                done, _ = concurrent.futures.wait([waiting], timeout=0.3)
                assert not done
                start = time.monotonic()
                closing = pool.submit(transport.cleanup)
                with pytest.raises(TransportClosedError):
                    waiting.result(1.0)
                assert time.monotonic() - start < 1.0
                os.kill(pid, signal.SIGCONT)
                closing.result(30)
        finally:
            os.kill(pid, signal.SIGCONT)

    def test_listen_and_first_call_end_by_their_deadline(self, closer: Closer,
                                                         node: rabbitmq.RabbitNode) -> None:
        """Against a frozen broker (TCP connects, AMQP never answers): a server start and the
        first call of a fresh transport fail by their deadlines, not pika's own timeouts."""
        target = msgbus.Target(topic=unique("frozen-start"), server="s", exchange="openstack")
        pid = beam_pid(node)
        os.kill(pid, signal.SIGSTOP)
        try:
            driver = closer.transport(url_via(node.netloc)).driver
            start = time.monotonic()
            with pytest.raises(MessageDeliveryFailure, match=str(node.port)):
                driver.listen(target, lambda m: None, deadline=start + 1.0)
            assert time.monotonic() - start < 1.0 + SLACK
            client = msgbus.get_rpc_client(closer.transport(url_via(node.netloc)), target,
                                           timeout=1.0)
            result, took, _ = timed(client.call, {}, "echo", value="x")
            assert isinstance(result, MessagingTimeout), result
            assert took < 1.0 + SLACK, took
        finally:
            os.kill(pid, signal.SIGCONT)
