"""The fault rules that live once in the core: retry normalised, deadlines passed down, closed
transports refusing at once, interface version 1 drivers still loading, the reconnect schedule,
held unroutable casts and background reply retries."""

from __future__ import annotations

import itertools
import logging
import threading
import time
from typing import Any

import pytest
from oslo_config import cfg

import msgbus
from msgbus.driver import amqp
from msgbus.driver.base import Capability, Listener, expand_capabilities
from msgbus.driver.held_casts import HeldCasts
from msgbus.driver.loader import check_driver_class
from msgbus.exceptions import MessageUndeliverable
from msgbus.fake.driver import FakeDriver
from msgbus.rpc.reply_retry import ReplyRetrier
from msgbus.transport import Transport, normalize_retry


class Spy(FakeDriver):
    """The fake driver, recording what reaches its send."""

    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        self.sends: list[dict[str, Any]] = []

    def send(self, target: msgbus.Target, body: bytes, **kwargs: Any) -> None:
        self.sends.append(kwargs)
        super().send(target, body, **kwargs)


def _transport(driver_cls: type = Spy, url: str = "fake://fault-rules") -> Transport:
    conf = cfg.ConfigOpts()
    conf([])
    msgbus.options.register_opts(conf)
    parsed = msgbus.TransportURL.parse(conf, url)
    return Transport(driver_cls(conf, parsed, "openstack"), conf)


@pytest.mark.parametrize("given, seen", [(None, None), (-1, None), (-5, None), (0, 0), (3, 3)])
def test_retry_reaches_the_driver_normalised(given: int | None, seen: int | None) -> None:
    assert normalize_retry(given) == seen
    transport = _transport()
    try:
        msgbus.get_rpc_client(transport, msgbus.Target(topic="t"), retry=given).cast({}, "m")
        assert transport.driver.sends[-1]["retry"] == seen  # type: ignore[attr-defined]
    finally:
        transport.cleanup()


def test_retry_of_the_wrong_type_is_refused_clearly() -> None:
    with pytest.raises(TypeError, match="retry must be an int or None"):
        normalize_retry("3")  # type: ignore[arg-type]


def test_a_call_passes_its_deadline_to_the_send() -> None:
    transport = _transport()
    try:
        client = msgbus.get_rpc_client(transport, msgbus.Target(topic="nobody"), timeout=0.3)
        before = time.monotonic()
        with pytest.raises(msgbus.MessagingTimeout, match="no server is listening"):
            client.call({}, "m")
        took = time.monotonic() - before
        sends = transport.driver.sends  # type: ignore[attr-defined]
        assert len(sends) > 1, "an unroutable call is sent again until its deadline"
        deadlines = {s["deadline"] for s in sends}
        assert len(deadlines) == 1 and before < deadlines.pop() <= before + 0.31
        assert all(s["mandatory"] for s in sends)
        assert 0.3 <= took < 0.8
    finally:
        transport.cleanup()


def test_a_call_sent_before_its_server_starts_is_answered() -> None:
    """No queue yet when the call is sent: the core sends it again until one exists."""
    transport = _transport()

    class Echo:
        def echo(self, ctxt: Any, value: Any) -> Any:
            return value

    server = msgbus.get_rpc_server(transport, msgbus.Target(topic="late", server="s"), [Echo()])
    try:
        timer = threading.Timer(0.3, server.start)
        timer.start()
        client = msgbus.get_rpc_client(transport, msgbus.Target(topic="late"), timeout=5)
        assert client.call({}, "echo", value=7) == 7
        timer.join()
    finally:
        server.stop()
        server.wait()
        transport.cleanup()


def test_at_least_once_calls_still_fail_at_once_when_unroutable() -> None:
    transport = _transport()
    try:
        client = msgbus.get_rpc_client(
            transport, msgbus.Target(topic="nobody"), timeout=5,
            transport_options=msgbus.TransportOptions(at_least_once=True))
        before = time.monotonic()
        with pytest.raises(MessageUndeliverable):
            client.call({}, "m")
        assert time.monotonic() - before < 1
    finally:
        transport.cleanup()


def test_a_closed_transport_refuses_everything_at_once(caplog: pytest.LogCaptureFixture) -> None:
    transport = _transport()
    target = msgbus.Target(topic="closed", server="s")
    client = msgbus.get_rpc_client(transport, target, timeout=30)
    server = msgbus.get_rpc_server(transport, target, [object()])
    notifier = msgbus.Notifier(transport, driver="messagingv2", publisher_id="p",
                               topics=["n"])
    transport.cleanup()
    before = time.monotonic()
    with pytest.raises(msgbus.TransportClosedError, match="cleanup"):
        client.call({}, "m")
    with pytest.raises(msgbus.TransportClosedError):
        client.cast({}, "m")
    with pytest.raises(msgbus.ServerListenError, match="was closed"):
        server.start()
    with caplog.at_level(logging.ERROR):
        notifier.info({}, "event", {})  # a Notifier never raises: it logs at once
    assert "was closed" in caplog.text
    assert time.monotonic() - before < 1


class V1Driver(FakeDriver):
    """A driver written for interface version 1: no ``deadline`` keywords."""

    api_version = 1

    def send(self, target: msgbus.Target, body: bytes, *, ttl: float | None = None,
             retry: int | None = None, mandatory: bool = False) -> None:
        super().send(target, body, ttl=ttl, retry=retry, mandatory=mandatory)

    def send_reply(self, reply_address: str, body: bytes, *,
                   retry: int | None = None) -> None:
        super().send_reply(reply_address, body, retry=retry)

    def listen(self, target: msgbus.Target, on_message: Any) -> Listener:
        return super().listen(target, on_message)

    def listen_for_replies(self, on_message: Any) -> str:
        return super().listen_for_replies(on_message)


def test_a_version_1_driver_still_loads_and_works() -> None:
    check_driver_class(V1Driver, "v1")
    transport = _transport(V1Driver, "fake://v1")

    class Echo:
        def echo(self, ctxt: Any, value: Any) -> Any:
            return value

    server = msgbus.get_rpc_server(transport, msgbus.Target(topic="v1", server="s"), [Echo()])
    server.start()
    try:
        client = msgbus.get_rpc_client(transport, msgbus.Target(topic="v1"), timeout=5)
        assert client.call({}, "echo", value="ok") == "ok"
    finally:
        server.stop()
        server.wait()
        transport.cleanup()


def test_old_store_and_forward_means_both_kinds() -> None:
    both = expand_capabilities(frozenset({Capability.STORE_AND_FORWARD}))
    assert {Capability.RPC_STORE_AND_FORWARD, Capability.NOTIFY_STORE_AND_FORWARD} <= both
    only = expand_capabilities(frozenset({Capability.NOTIFY_STORE_AND_FORWARD}))
    assert Capability.RPC_STORE_AND_FORWARD not in only


def _settings(**overrides: str) -> amqp.AmqpSettings:
    conf = cfg.ConfigOpts()
    conf([])
    return amqp.AmqpSettings.from_conf(conf, "fault_rules", overrides)


def test_reconnects_are_fast_at_first_then_back_off() -> None:
    settings = _settings(reconnect_fast_period="0")
    slow = list(itertools.islice(amqp.reconnect_delays(settings), 4))
    # after the fast period: 1 s, +2 s a step (oslo's defaults), each +-20% jitter
    assert all(0.8 * mean <= delay <= 1.2 * mean for delay, mean in zip(slow, (1, 3, 5, 7)))
    fast = list(itertools.islice(amqp.reconnect_delays(_settings()), 50))
    assert all(0.05 <= d <= 0.15 for d in fast), "default: every ~0.1 s in the first 30 s"


def test_the_default_port_is_oslo_messagings_over_tls_too() -> None:
    assert amqp.default_port(True) == 5672 and amqp.default_port(False) == 5672


def test_only_casts_to_queues_are_held_when_unroutable() -> None:
    assert amqp.holds_when_unroutable(False, None, False)
    assert not amqp.holds_when_unroutable(True, None, False), "fanout: whoever listens now"
    assert not amqp.holds_when_unroutable(False, 10.0, False), "calls: the core retries them"
    assert not amqp.holds_when_unroutable(False, None, True), "mandatory: the caller is told"


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_held_casts_are_due_with_backoff_and_dropped_after_the_hold_timeout(
        caplog: pytest.LogCaptureFixture) -> None:
    clock = Clock()
    held = HeldCasts(hold_timeout=2.0, max_bytes=1000, clock=clock)
    held.hold("cast-1", "exchange 'x' key 'k'", 10)
    assert held.take_due() == [] and held.next_due() == pytest.approx(0.05)
    clock.now += 0.05
    (item,) = held.take_due()
    assert item.payload == "cast-1" and len(held) == 0
    held.hold(item.payload, item.where, item.size, previous=item)  # returned again
    assert held.next_due() == pytest.approx(0.1)
    clock.now += 2.0
    with caplog.at_level(logging.ERROR):
        assert held.take_due() == []  # its hold is over: dropped, not sent again
    assert len(held) == 0 and held.dropped == 1
    assert "cast_hold_timeout" in caplog.text and "exchange 'x' key 'k'" in caplog.text


def test_held_casts_are_bounded_in_memory(caplog: pytest.LogCaptureFixture) -> None:
    held = HeldCasts(hold_timeout=60.0, max_bytes=25, clock=Clock())
    with caplog.at_level(logging.ERROR):
        for n in range(5):
            held.hold(n, "k", 10)
    assert len(held) == 2 and held.dropped == 3
    assert [i.payload for i in held.take_all()] == [3, 4]
    assert "cast_hold_max_bytes" in caplog.text


def test_replies_are_retried_in_the_background_until_their_queue_exists() -> None:
    ready = threading.Event()
    delivered: list[bytes] = []
    tries = []

    def send(reply_q: str, body: bytes) -> None:
        tries.append(time.monotonic())
        if not ready.is_set():
            raise MessageUndeliverable(None, "", reply_q, body)
        delivered.append(body)

    retrier = ReplyRetrier(send, give_up_after=10.0)
    try:
        retrier.add("reply_x", b"body", "m1")
        threading.Timer(0.3, ready.set).start()
        deadline = time.monotonic() + 5
        while not delivered and time.monotonic() < deadline:
            time.sleep(0.01)
        assert delivered == [b"body"] and len(retrier) == 0
        assert len(tries) >= 2
    finally:
        retrier.close()


def test_replies_are_dropped_with_an_error_after_the_timeout(
        caplog: pytest.LogCaptureFixture) -> None:
    dropped = threading.Event()

    class Handler(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            if "reply_missing_queue_timeout" in record.getMessage():
                dropped.set()

    def send(reply_q: str, body: bytes) -> None:
        raise MessageUndeliverable(None, "", reply_q, body)

    handler = Handler()
    logging.getLogger("msgbus.rpc.reply_retry").addHandler(handler)
    retrier = ReplyRetrier(send, give_up_after=0.3)
    try:
        retrier.add("reply_gone", b"body", "m2")
        assert dropped.wait(5), "the reply was not dropped with an error log"
        assert len(retrier) == 0
    finally:
        retrier.close()
        logging.getLogger("msgbus.rpc.reply_retry").removeHandler(handler)


def test_held_and_dropped_casts_are_logged_once_per_destination_and_period(
        caplog: pytest.LogCaptureFixture) -> None:
    clock = Clock()
    held = HeldCasts(hold_timeout=1.0, max_bytes=10**6, clock=clock)
    with caplog.at_level(logging.INFO, logger="msgbus.driver.held_casts"):
        for n in range(100):
            held.hold(n, "key 'a'", 1)
        held.hold("b", "key 'b'", 1)
        clock.now += 1.0
        for item in held.take_due():
            held.hold(item.payload, item.where, item.size, previous=item)  # all expire
        clock.now += 10.0
        held.hold("late", "key 'a'", 1)
    lines = [r.getMessage() for r in caplog.records]
    assert [line.split(" (")[0] for line in lines] == [
        "the broker had no queue for 1 cast(s) to key 'a'",
        "the broker had no queue for 1 cast(s) to key 'b'",
        "dropped 1 cast(s) to key 'a'",
        "dropped 1 cast(s) to key 'b'",
        "the broker had no queue for 100 cast(s) to key 'a'",
    ]
    assert held.dropped == 101
