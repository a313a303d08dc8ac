"""Scenarios below the API, straight on the driver interface (``transport.driver``).

The core masks some driver bugs: its duplicate suppression hides a redelivered message, so a
driver whose ``ack()`` never reaches the broker passes every API-level scenario. These talk to
the driver directly, with opaque bodies, and say in their failure which promise of
:mod:`msgbus.driver.base` was broken:

* ``ack()`` reaches the broker: a delivery acknowledged by one listener does not come back to
  the next listener of its queue once the first one's driver is closed (a broker gives back
  what its consumers did not settle; a broker that never redelivers passes trivially);
* ``requeue()`` gives the message back (drivers with REQUEUE);
* ``listen`` and ``listen_for_notifications`` return only once bound: a message sent right
  after they return reaches the listener. A driver that returns early fails exactly the
  ``test_listen_returns_only_once_bound`` scenario here, by name, instead of making other
  scenarios fail now and then.
"""

from __future__ import annotations

import time
import uuid
from typing import Any, Callable

import pytest

import msgbus
from msgbus import envelope
from msgbus.driver.base import Capability, Driver, IncomingMessage
from msgbus.testing.fixtures import WAIT, Bus, Recorder, require

__all__ = ["TestDriverInterface"]

#: How long a scenario waits, after a later message arrived, for one that should have come
#: before it (deliveries may be handed to callbacks slightly out of order).
GRACE = 1.0
#: How long the ack scenario watches, after the marker arrived, for the acknowledged message
#: coming back (it would come before the marker: this only covers callbacks out of order).
SETTLE = 0.5
#: Pause between two markers sent while waiting for a listener to be bound (seconds).
MARKER_PAUSE = 0.05


def deadline_kw(driver: Driver, seconds: float = WAIT) -> dict[str, Any]:
    """``deadline=`` for a driver of interface version 2 or later, nothing for an older one."""
    if getattr(driver, "api_version", 1) >= 2:
        return {"deadline": time.monotonic() + seconds}
    return {}


def body(tag: str) -> bytes:
    """An opaque message body that says what it is (a JSON envelope, as the core makes)."""
    return envelope.encode({"suite": tag, "id": uuid.uuid4().hex})


def tag_of(raw: bytes) -> str:
    return str(envelope.decode(raw).get("suite"))


def taker(recorder: Recorder) -> Callable[[IncomingMessage], None]:
    """An ``on_message`` that acknowledges each delivery and records its tag."""
    def on_message(incoming: IncomingMessage) -> None:
        incoming.ack()
        recorder.add(tag_of(incoming.body))
    return on_message


def send_markers_until_one_arrives(send: Callable[[bytes], None], got: Recorder,
                                   timeout: float = WAIT) -> bool:
    """Send ``marker`` messages every MARKER_PAUSE until one is received; False on timeout."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        send(body("marker"))
        if got.wait_for(lambda events: "marker" in events, timeout=MARKER_PAUSE):
            return True
    return False


class TestDriverInterface:
    """What a driver promises in :mod:`msgbus.driver.base`, checked without the core."""

    def test_ack_reaches_the_broker(self, bus: Bus) -> None:
        first = bus.transport()
        second, sender = bus.transport().driver, bus.transport().driver
        target = msgbus.Target(topic=f"{bus.topic('ack')}.info",
                               exchange=sender.default_exchange)
        got_first = Recorder()
        listener = first.driver.listen_for_notifications([target], None, taker(got_first),
                                                         **deadline_kw(first.driver))
        sender.send_notification(target, body("acked"), **deadline_kw(sender))
        got_first.wait_count(1)
        listener.stop()
        # Closing the first driver closes its connections: a broker gives back to the queue
        # every delivery they had not settled. An acknowledged one must stay gone.
        first.cleanup()
        got = Recorder()
        listener = second.listen_for_notifications([target], None, taker(got),
                                                   **deadline_kw(second))
        try:
            sender.send_notification(target, body("marker"), **deadline_kw(sender))
            got.wait_for(lambda events: "marker" in events)
            # A delivery given back goes to the head of the queue: it would come before the
            # marker; SETTLE covers callbacks running out of order.
            got.wait_for(lambda events: "acked" in events, timeout=SETTLE)
        finally:
            listener.stop()
        assert "marker" in got.events, \
            f"the second listener of the queue received nothing within {WAIT:g}s"
        if "acked" in got.events:
            pytest.fail("ack() did not reach the broker: a notification acknowledged on one "
                        "listener was delivered again to the next listener of its queue once "
                        "the first listener's driver was closed", pytrace=False)

    def test_requeue_gives_the_message_back(self, bus: Bus) -> None:
        require(bus, Capability.REQUEUE)
        driver, sender = bus.transport().driver, bus.transport().driver
        target = msgbus.Target(topic=f"{bus.topic('requeue')}.info",
                               exchange=sender.default_exchange)
        got = Recorder()

        def on_message(incoming: IncomingMessage) -> None:
            tag = tag_of(incoming.body)
            first_time = tag not in got.events
            got.add(tag)
            if tag == "again" and first_time:
                incoming.requeue()
            else:
                incoming.ack()

        listener = driver.listen_for_notifications([target], None, on_message,
                                                   **deadline_kw(driver))
        try:
            sender.send_notification(target, body("again"), **deadline_kw(sender))
            got.wait_count(1)
            sender.send_notification(target, body("marker"), **deadline_kw(sender))
            got.wait_for(lambda events: "marker" in events)
            got.wait_for(lambda events: events.count("again") >= 2, timeout=GRACE)
        finally:
            listener.stop()
        assert "marker" in got.events, f"nothing more was received within {WAIT:g}s"
        if got.events.count("again") < 2:
            pytest.fail("requeue() did not give the message back: a notification requeued by "
                        "its listener was not delivered again, while one sent after it was",
                        pytrace=False)

    def test_listen_returns_only_once_bound(self, bus: Bus) -> None:
        listening, sender = bus.transport().driver, bus.transport().driver
        topic = bus.topic("bound")
        exchange = listening.default_exchange
        addresses = {
            "topic": msgbus.Target(topic=topic, exchange=exchange),
            "server": msgbus.Target(topic=topic, server="s1", exchange=exchange),
            "fanout": msgbus.Target(topic=topic, fanout=True, exchange=exchange),
        }
        got = Recorder()
        listener = listening.listen(addresses["server"], taker(got), **deadline_kw(listening))
        errors: dict[str, str] = {}
        try:
            # Sent at once, like calls (a TTL: no driver keeps them for a queue to appear).
            for name, target in addresses.items():
                try:
                    sender.send(target, body(name), ttl=WAIT, **deadline_kw(sender))
                except Exception as exc:  # noqa: BLE001 - reported below
                    errors[name] = f"{type(exc).__name__}: {exc}"
            arrived = send_markers_until_one_arrives(
                lambda raw: sender.send(addresses["fanout"], raw, ttl=WAIT,
                                        **deadline_kw(sender)), got)
            got.wait_for(lambda events: set(addresses) <= set(events), timeout=GRACE)
        finally:
            listener.stop()
        assert arrived, f"the listener received nothing within {WAIT:g}s"
        lost = [name for name in addresses if name not in got.events]
        if errors or lost:
            pytest.fail("listen() returned before its queues were bound: of the messages sent "
                        "right after it returned, "
                        + "; ".join([f"the one to the {n} address never arrived" for n in lost]
                                    + [f"the send to the {n} address raised {e}"
                                       for n, e in errors.items()])
                        + " (later ones did)", pytrace=False)

    def test_listen_for_notifications_returns_only_once_bound(self, bus: Bus) -> None:
        listening, sender = bus.transport().driver, bus.transport().driver
        target = msgbus.Target(topic=f"{bus.topic('nbound')}.info",
                               exchange=listening.default_exchange)
        got = Recorder()
        listener = listening.listen_for_notifications([target], None, taker(got),
                                                      **deadline_kw(listening))
        try:
            sender.send_notification(target, body("first"), **deadline_kw(sender))
            arrived = send_markers_until_one_arrives(
                lambda raw: sender.send_notification(target, raw, **deadline_kw(sender)), got)
            got.wait_for(lambda events: "first" in events, timeout=GRACE)
        finally:
            listener.stop()
        assert arrived, f"the listener received nothing within {WAIT:g}s"
        if "first" not in got.events:
            pytest.fail("listen_for_notifications() returned before its queue was bound: a "
                        "notification sent right after it returned never arrived (later ones "
                        "did)", pytrace=False)
