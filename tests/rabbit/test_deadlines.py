"""The fault contract with DEFAULT options: deadlines, recovery after a restart, held casts.

Every test here runs with the driver's default options (only ``cast_hold_timeout`` is shortened,
in the URL, for the one test that waits for a held cast to be dropped). The shared broker is
never disturbed: restarts happen on a private node, refused and stalled connections through a
TcpProxy or on a port nobody listens on.
"""

from __future__ import annotations

import concurrent.futures
import logging
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

import msgbus
from msgbus.driver.amqp import ExchangeSpec
from msgbus.testing import rabbitmq
from msgbus.testing.rabbitmq import RabbitNode, TcpProxy
from msgbus_kombu import copies

from .helpers import PORT, RABBIT_URL, Closer, Echo, LogCapture, unique

pytestmark = pytest.mark.timeout(180)

#: Allowed lateness of a call or listen past its deadline (the contract's slack).
SLACK = 0.5


@pytest.fixture(scope="module")
def node() -> Iterator[RabbitNode]:
    """A private RabbitMQ node that tests restart."""
    with rabbitmq.private_rabbit_node() as n:
        yield n


def wait_until(predicate: Callable[[], bool], timeout: float = 10.0) -> bool:
    """Poll ``predicate`` (state of another thread, no event to wait on) until it holds."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


def down_url() -> str:
    """A URL on a loopback port nobody listens on: connections are refused."""
    return f"rabbit://guest:guest@127.0.0.1:{rabbitmq.free_port()}/"


class TestBrokerRestart:
    def test_a_call_during_the_outage_succeeds_once_the_broker_is_back(
            self, node: RabbitNode, closer: Closer) -> None:
        topic = unique("dl-restart")
        closer.server(closer.transport(url=node.url), topic, [Echo()])
        client = msgbus.get_rpc_client(closer.transport(url=node.url),
                                       msgbus.Target(topic=topic), timeout=10)
        assert client.call({}, "echo", value="before") == "before"
        node.stop_app()
        with concurrent.futures.ThreadPoolExecutor(1) as pool:
            start = time.monotonic()
            future = pool.submit(client.call, {}, "echo", value="during")
            try:
                future.result(timeout=4.5)  # the broker is down meanwhile: no answer
            except concurrent.futures.TimeoutError:
                pass
            node.start_app()  # returns once the broker accepts connections again
            back = time.monotonic()
            assert future.result(timeout=15) == "during"
            done = time.monotonic()
        assert done - start <= 10 + SLACK, f"the call took {done - start:.2f}s"
        assert done - back <= SLACK, f"the call ended {done - back:.2f}s after the broker " \
                                     "was back"

    def test_casts_while_the_servers_queue_is_gone_are_processed_once(
            self, node: RabbitNode, closer: Closer) -> None:
        """After a restart, casts sent before the server declared its queue again are
        returned by the broker, held, and delivered once the queue is back."""
        topic = unique("dl-held")
        echo = Echo()
        with TcpProxy(node.port) as proxy:  # the server's path: kept shut after the restart
            closer.server(closer.transport(url=proxy.url), topic, [echo])
            transport = closer.transport(url=node.url)
            client = msgbus.get_rpc_client(transport, msgbus.Target(topic=topic), timeout=10)
            assert client.call({}, "echo", value="before") == "before"
            proxy.accepting = False
            node.restart()  # the topic's queues are gone; the server cannot declare them yet
            count = 40
            start = time.monotonic()
            for i in range(count):
                client.cast({}, "note", value=i)
            assert time.monotonic() - start < 5, "casts blocked while their queue was gone"
            held = transport.driver.publisher.held
            # (>=: the call just before the restart may be held too, sent again in case the
            # broker lost it)
            assert wait_until(lambda: len(held) >= count), \
                f"{len(held)} of {count} casts were returned and held"
            proxy.accepting = True  # the server reconnects and declares its queues
            assert echo.wait_seen(lambda seen: len(seen) >= count)
            client.cast({}, "note", value="last")
            assert echo.wait_seen(lambda seen: "last" in seen)
        assert sorted(v for v in echo.seen if v != "last") == list(range(count))
        assert held.dropped == 0


    def test_only_replies_are_sent_again_when_the_broker_stops(self, closer: Closer) -> None:
        """A send connection remembers the replies the broker confirmed lately, to send them
        again if the broker stops (their one consumer drops a copy it had); casts and call
        requests it does not: a copy could reach another server of the topic and run twice."""
        transport = closer.transport()
        client = msgbus.get_rpc_client(transport, msgbus.Target(topic=unique("dl-recent")))
        client.cast({}, "note", value=1)
        (slot,) = transport.driver.publisher.slots()
        assert not slot.recent.everything and len(slot.recent) == 0
        reply = copies.InFlight(None, "reply_x", b"{}", b"")
        cast = copies.InFlight(ExchangeSpec("openstack", "topic", False, False), "topic",
                               b"{}", b"")
        slot.recent.confirmed([(1, cast)])
        slot.recent.confirmed_one(time.monotonic(), None, reply.routing_key, b"{}", b"")

        class Forced(Exception):
            reply_code = 320

        assert slot.recent.take_if_lost(Forced("closed by an operator")) == []
        slot.recent.confirmed_one(time.monotonic(), None, reply.routing_key, b"{}", b"")
        again = slot.recent.take_if_lost(Forced("broker forced connection closure with reason "
                                                "'shutdown'"))
        assert [c.routing_key for c in again] == ["reply_x"] and again[0].hold


class TestBrokerDown:
    def test_a_call_to_a_refusing_broker_times_out_in_time(self, closer: Closer) -> None:
        url = down_url()
        client = msgbus.get_rpc_client(closer.transport(url=url),
                                       msgbus.Target(topic="nobody"), timeout=2)
        start = time.monotonic()
        with pytest.raises(msgbus.MessagingTimeout):
            client.call({}, "echo", value=1)
        assert time.monotonic() - start <= 2 + SLACK

    def test_a_send_to_a_stalled_broker_ends_by_its_deadline(self, closer: Closer) -> None:
        """The broker accepts TCP but never answers the handshake (connect_timeout is 5 s):
        the send still ends by its deadline, with a message naming the broker and the route."""
        with TcpProxy(PORT) as proxy:
            proxy.pause()
            try:
                driver = closer.transport(url=proxy.url).driver
                start = time.monotonic()
                with pytest.raises(msgbus.MessagingTimeout) as info:
                    driver.send(msgbus.Target(topic="stalled", exchange="openstack"), b"{}",
                                ttl=1.5, mandatory=True, deadline=time.monotonic() + 1.5)
                took = time.monotonic() - start
            finally:
                proxy.resume()
        assert took <= 1.5 + SLACK, f"the send took {took:.2f}s"
        text = str(info.value)
        assert proxy.netloc in text and "'openstack'" in text and "'stalled'" in text

    def test_a_call_through_a_stalled_broker_times_out_in_time(self, closer: Closer) -> None:
        with TcpProxy(PORT) as proxy:
            proxy.pause()
            try:
                client = msgbus.get_rpc_client(closer.transport(url=proxy.url),
                                               msgbus.Target(topic="stalled"), timeout=2)
                start = time.monotonic()
                with pytest.raises(msgbus.MessagingTimeout):
                    client.call({}, "echo", value=1)
                took = time.monotonic() - start
            finally:
                proxy.resume()
        assert took <= 2 + SLACK, f"the call took {took:.2f}s"

    def test_a_large_call_to_a_broker_that_stops_reading_ends_by_its_deadline(
            self, closer: Closer) -> None:
        """A broker that stops reading (as under a memory alarm) stalls a large publish once
        the sockets' buffers are full (64 MiB: more than both buffer here); the call still ends
        by its deadline, not by the much longer I/O timeout."""
        topic = unique("dl-write")
        closer.server(closer.transport(), topic, [Echo()])
        with TcpProxy(PORT) as proxy:
            client = msgbus.get_rpc_client(closer.transport(url=proxy.url),
                                           msgbus.Target(topic=topic), timeout=2)
            assert client.call({}, "echo", value="warm") == "warm"
            proxy.pause()
            try:
                start = time.monotonic()
                with pytest.raises(msgbus.MessagingTimeout):
                    client.call({}, "echo", value="x" * (64 * 1024 * 1024))
                took = time.monotonic() - start
            finally:
                proxy.resume()
        assert took <= 2 + SLACK, f"the call took {took:.2f}s"

    @pytest.mark.parametrize("how", ["refused", "stalled"])
    @pytest.mark.parametrize("kind", ["listen", "listen_for_notifications", "listen_for_replies"])
    def test_listen_fails_by_its_deadline(self, closer: Closer, how: str, kind: str) -> None:
        """A listen raises MessageDeliveryFailure at its deadline; the reply queue's setup, a
        wait of the first call, raises MessagingTimeout."""
        with TcpProxy(PORT) as proxy:
            if how == "refused":
                proxy.accepting = False
            else:
                proxy.pause()
            try:
                driver = closer.transport(url=proxy.url).driver
                target = msgbus.Target(topic=unique("dl-listen"), server="s1",
                                       exchange="openstack")
                start = time.monotonic()
                deadline = start + 1.5
                expected: Any = (msgbus.MessagingTimeout if kind == "listen_for_replies" else
                                 msgbus.MessageDeliveryFailure)
                with pytest.raises(expected) as info:
                    if kind == "listen":
                        driver.listen(target, lambda m: None, deadline=deadline)
                    elif kind == "listen_for_notifications":
                        driver.listen_for_notifications([target], None, lambda m: None,
                                                        deadline=deadline)
                    else:
                        driver.listen_for_replies(lambda m: None, deadline=deadline)
                took = time.monotonic() - start
            finally:
                proxy.resume()
        assert took <= 1.5 + SLACK, f"{kind} took {took:.2f}s"
        assert proxy.netloc in str(info.value)

    def test_a_first_call_that_timed_out_setting_up_replies_leaves_the_next_one_working(
            self, closer: Closer) -> None:
        topic = unique("dl-firstcall")
        closer.server(closer.transport(), topic, [Echo()])
        with TcpProxy(PORT) as proxy:
            proxy.accepting = False
            client = msgbus.get_rpc_client(closer.transport(url=proxy.url),
                                           msgbus.Target(topic=topic), timeout=1.5)
            start = time.monotonic()
            with pytest.raises(msgbus.MessagingTimeout):
                client.call({}, "echo", value=1)
            assert time.monotonic() - start <= 1.5 + SLACK
            proxy.accepting = True
            assert client.call({}, "echo", value=2) == 2

    def test_closing_releases_a_send_waiting_for_a_frozen_broker(self) -> None:
        with TcpProxy(PORT) as proxy:
            transport = msgbus.get_rpc_transport(url=proxy.url)
            driver = transport.driver
            target = msgbus.Target(topic=unique("dl-frozen"), exchange="openstack")
            try:
                driver.send(target, b"{}", retry=3)  # (a retry budget: waits for its confirm)
                assert proxy.freeze_all() >= 1
                with concurrent.futures.ThreadPoolExecutor(1) as pool:
                    future = pool.submit(driver.send, target, b"{}", retry=3)
                    with pytest.raises(concurrent.futures.TimeoutError):
                        future.result(timeout=0.5)  # no confirm comes
                    start = time.monotonic()
                    transport.cleanup()
                    with pytest.raises(msgbus.MessageDeliveryFailure, match="closed"):
                        future.result(timeout=10)
                    assert time.monotonic() - start < 3
            finally:
                transport.cleanup()

    def test_a_reply_to_a_missing_queue_is_refused_at_once(self, closer: Closer) -> None:
        driver = closer.transport().driver
        start = time.monotonic()
        with pytest.raises(msgbus.MessageUndeliverable):
            driver.send_reply("reply_" + "f" * 32, b"{}", deadline=time.monotonic() + 10)
        assert time.monotonic() - start < 1.0


class TestHeldCasts:
    def test_a_cast_to_a_topic_nobody_serves_is_dropped_after_the_hold_timeout(
            self, closer: Closer, logs: LogCapture) -> None:
        topic = unique("dl-nobody")
        transport = closer.transport(url=RABBIT_URL + "?cast_hold_timeout=1")
        client = msgbus.get_rpc_client(transport, msgbus.Target(topic=topic))
        start = time.monotonic()
        client.cast({}, "note", value=1)
        assert time.monotonic() - start < 0.5, "a cast nobody serves blocked its sender"
        # (an error naming the destination: "dropped 1 cast(s) to exchange 'openstack' with
        # routing key '<topic>' ...")
        assert logs.wait_for(f"with routing key {topic!r}", level=logging.ERROR, timeout=10)
        held = transport.driver.publisher.held
        assert held.dropped == 1 and len(held) == 0

    def test_a_held_cast_reaches_a_server_that_starts_later(self, closer: Closer) -> None:
        topic = unique("dl-later")
        transport = closer.transport()
        client = msgbus.get_rpc_client(transport, msgbus.Target(topic=topic))
        client.cast({}, "note", value="early")
        held = transport.driver.publisher.held
        assert wait_until(lambda: len(held) == 1)
        echo = Echo()
        closer.server(closer.transport(), topic, [echo])
        assert echo.wait_seen(lambda seen: "early" in seen)
        assert wait_until(lambda: len(held) == 0) and held.dropped == 0
        assert echo.seen == ["early"]

    def test_closing_tries_held_casts_once_more_and_counts_the_rest(
            self, logs: LogCapture) -> None:
        topic = unique("dl-close")
        transport = msgbus.get_rpc_transport(url=RABBIT_URL)
        try:
            client = msgbus.get_rpc_client(transport, msgbus.Target(topic=topic))
            for i in range(3):
                client.cast({}, "note", value=i)
            held = transport.driver.publisher.held
            assert wait_until(lambda: len(held) == 3)
        finally:
            transport.cleanup()
        assert any("3 cast(s) were dropped as the transport closed" in m
                   for m in logs.messages(logging.ERROR)), logs.messages(logging.ERROR)

    def test_fanout_casts_are_not_held(self, closer: Closer) -> None:
        transport = closer.transport()
        client = msgbus.get_rpc_client(transport, msgbus.Target(topic=unique("dl-fanout")))
        client.prepare(fanout=True).cast({}, "note", value=1)
        slots: list[Any] = transport.driver.publisher.slots()
        assert all(slot.flush(5.0) == 0 for slot in slots)
        assert len(transport.driver.publisher.held) == 0
