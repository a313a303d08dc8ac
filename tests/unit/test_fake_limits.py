"""fake:// as strict as a broker where it matters: a message size limit (RabbitMQ's default),
unknown URL query options logged by name, requeue loops slowed and logged without loss."""

from __future__ import annotations

import threading
import time
from typing import Any, Iterator

import pytest

import msgbus
import msgbus.fake
from msgbus.fake.broker import FakeBroker, FakeMessage, RequeueThrottle
from msgbus.fake.options import RABBITMQ_MAX_MESSAGE_SIZE
from msgbus.notify import (NotificationResult, Notifier, get_notification_listener,
                           get_notification_transport)
from msgbus.testing.harness import Echo, capture_logs, check_oversized_refused


@pytest.fixture(autouse=True)
def fresh_brokers() -> Iterator[None]:
    yield
    msgbus.fake.reset()


def test_default_limit_is_rabbitmqs() -> None:
    with msgbus.get_rpc_transport(url="fake://") as transport:
        assert transport.driver.settings.max_message_size == RABBITMQ_MAX_MESSAGE_SIZE
    assert RABBITMQ_MAX_MESSAGE_SIZE == 128 * 1024 * 1024


def test_a_message_over_the_default_limit_is_refused_as_rabbitmq_does() -> None:
    with msgbus.get_rpc_transport(url="fake://") as transport:
        client = msgbus.get_rpc_client(transport, msgbus.Target(topic="big"))
        with pytest.raises(msgbus.MessageDeliveryFailure, match="larger than the "
                           "max_message_size of 134217728 bytes"):
            client.cast({}, "note", value="x" * (RABBITMQ_MAX_MESSAGE_SIZE + 1))


def test_a_limit_from_the_url_refuses_casts_calls_and_replies_like_rabbitmq() -> None:
    limit = 4096
    with msgbus.get_rpc_transport(url=f"fake://?max_message_size={limit}") as transport:
        echo = Echo()
        server = msgbus.get_rpc_server(transport, msgbus.Target(topic="t", server="s"), [echo])
        server.start()
        try:
            client = msgbus.get_rpc_client(transport, msgbus.Target(topic="t"), timeout=10)
            check_oversized_refused(client, echo, limit)
        finally:
            server.stop()
            server.wait()


def test_the_limit_is_a_config_option_and_zero_means_none() -> None:
    from oslo_config import cfg
    conf = cfg.ConfigOpts()
    conf([])
    from msgbus.fake.options import fake_opts
    conf.register_opts(fake_opts, group="fake")
    conf.set_override("max_message_size", 0, group="fake")
    with msgbus.get_rpc_transport(conf, url="fake://") as transport:
        assert transport.driver.settings.max_message_size == 0
        client = msgbus.get_rpc_client(transport, msgbus.Target(topic="t"))
        client.cast({}, "note", value="x" * (1 << 20))  # no limit: accepted


def test_a_bad_limit_in_the_url_says_what_is_wrong() -> None:
    with pytest.raises(msgbus.DriverLoadFailure, match="max_message_size.*an integer"):
        msgbus.get_rpc_transport(url="fake://?max_message_size=big")


def test_unknown_query_options_are_logged_by_name() -> None:
    with capture_logs() as logs:
        transport = msgbus.get_rpc_transport(url="fake://?max_mesage_size=10&colour=blue")
        transport.cleanup()
    warnings = [m for m in logs.messages() if "unknown URL query option" in m]
    assert len(warnings) == 1, logs.messages()
    assert "'colour', 'max_mesage_size'" in warnings[0] and "max_message_size" in warnings[0]


def test_known_query_options_are_not_warned_about() -> None:
    with capture_logs() as logs:
        msgbus.get_rpc_transport(url="fake://?requeue_burst=3").cleanup()
    assert not [m for m in logs.messages() if "unknown" in m]


def _spin(broker: FakeBroker, until: int) -> tuple[list[float], threading.Event]:
    """Consume queue ``q`` of ``broker``, requeueing every delivery until the ``until``-th
    (acked)."""
    times: list[float] = []
    done = threading.Event()

    def on_message(message: FakeMessage) -> None:
        times.append(time.monotonic())
        if len(times) >= until:
            message.ack()
            done.set()
        else:
            message.requeue()
    broker.declare_queue("q")
    broker.bind("x", "k", "q")
    broker.consume("q", on_message)
    return times, done


def test_a_requeue_loop_is_slowed_after_the_burst_and_logged_once() -> None:
    broker = FakeBroker("spin")
    broker.throttle = RequeueThrottle(burst=5, period=1.0, delay=0.05)
    with capture_logs() as logs:
        times, done = _spin(broker, until=12)
        assert broker.publish("x", "k", b'{"_unique_id": "abc123"}') == 1
        assert done.wait(10), f"the message was lost after {len(times)} deliveries"
    broker.reset()
    gaps = [b - a for a, b in zip(times, times[1:])]
    # the first requeues are immediate; from the burst on, each waits the delay
    assert all(gap >= 0.045 for gap in gaps[4:]), gaps
    assert sum(gaps[:3]) < 0.05 * 3, gaps
    lines = [m for m in logs.messages() if "requeued" in m]
    assert len(lines) == 1, lines
    assert "abc123" in lines[0] and "'q'" in lines[0]


def test_requeues_further_apart_than_period_and_delay_are_not_throttled() -> None:
    broker = FakeBroker("slow")
    broker.throttle = RequeueThrottle(burst=2, period=0.01, delay=30.0)
    times: list[float] = []
    done = threading.Event()
    pause = threading.Event()  # never set: a bounded pause between deliveries

    def on_message(message: FakeMessage) -> None:
        times.append(time.monotonic())
        if len(times) == 4:
            message.ack()
            done.set()
            return
        pause.wait(0.05)  # longer than the period: not a quick requeue
        message.requeue()
    broker.declare_queue("q")
    broker.bind("x", "k", "q")
    broker.consume("q", on_message)
    broker.publish("x", "k", b"{}")
    # a throttled redelivery would wait 30 s
    assert done.wait(10), f"only {len(times)} deliveries"
    broker.reset()


def test_a_listener_that_requeues_everything_does_not_spin_and_loses_nothing() -> None:
    transport = get_notification_transport(url="fake://?requeue_burst=3&requeue_delay=0.05")
    seen: list[Any] = []
    done = threading.Event()

    class Endpoint:
        def info(self, ctxt: Any, publisher_id: str, event_type: str, payload: Any,
                 metadata: Any) -> Any:
            seen.append(payload)
            if len(seen) < 8:
                return NotificationResult.REQUEUE
            done.set()
            return NotificationResult.HANDLED

    listener = get_notification_listener(transport, [msgbus.Target(topic="n")], [Endpoint()],
                                         allow_requeue=True)
    listener.start()
    try:
        with capture_logs() as logs:
            start = time.monotonic()
            Notifier(transport, "p", driver="messagingv2", topics=["n"]).info({}, "e.x", {"k": 1})
            assert done.wait(10)
            took = time.monotonic() - start
    finally:
        listener.stop()
        listener.wait()
        transport.cleanup()
    assert seen == [{"k": 1}] * 8
    assert took >= 5 * 0.05, took
    assert len([m for m in logs.messages() if "requeued" in m]) == 1
