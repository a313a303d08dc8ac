"""pika:// casts the broker returns as unroutable (no queue bound for their topic or server).

The driver publishes casts to topic and server queues mandatory; a returned one is held and sent
again until a queue takes it or ``cast_hold_timeout`` passes, then dropped with an error log. The
caster never waits for that (restart scenarios: ``test_broker_faults.py``).
"""

from __future__ import annotations

import logging
import time

import pytest
from fault_helpers import wait_until
from pika_helpers import Closer, Echo, LogCapture, pika_url, unique

import msgbus
from msgbus.exceptions import MessageUndeliverable

pytestmark = pytest.mark.timeout(60)


def _dropped(logs: LogCapture) -> list[str]:
    return [m for m in logs.messages(logging.ERROR) if m.startswith("dropped ")]


def test_cast_to_a_topic_nobody_serves_is_dropped_after_the_hold(closer: Closer,
                                                                 logs: LogCapture) -> None:
    transport = closer.transport(pika_url(cast_hold_timeout=1))
    topic = unique("nobody")
    client = msgbus.get_rpc_client(transport, msgbus.Target(topic=topic))
    start = time.monotonic()
    for i in range(100):
        client.cast({}, "note", value=i)  # pipelined (retry None)
    client.prepare(retry=3).cast({}, "note", value="waited")  # waits for its confirm
    client.prepare(server="s").cast({}, "note", value="to a server")
    assert time.monotonic() - start < 1.0, "casts to an unserved topic must not block"
    driver = transport.driver
    assert wait_until(lambda: driver.describe()["held_casts"] == 102, timeout=5)
    assert not _dropped(logs)
    # Dropped between 1 s (cast_hold_timeout) and 1 s later (the longest pause between tries).
    assert wait_until(lambda: driver.describe()["held_casts"] == 0, timeout=5)
    assert 1.0 <= time.monotonic() - start < 3.0
    # (the queue empties first, then each drop is counted and logged: wait for the last one)
    assert wait_until(lambda: driver._resender.held.dropped == 102, timeout=2)
    # one error line per destination (the topic, the server's queue) and 10 s, not one per cast
    dropped = _dropped(logs)
    assert len(dropped) == 2, dropped
    assert any(f"routing key {topic!r}" in m and "cast_hold_timeout" in m for m in dropped)
    assert any(f"routing key '{topic}.s'" in m for m in dropped)


def test_held_casts_reach_a_server_that_starts_later(closer: Closer) -> None:
    """Until a server declared the topic's queue, its casts are held, then delivered once."""
    topic = unique("late-server")
    client = msgbus.get_rpc_client(closer.transport(), msgbus.Target(topic=topic))
    for i in range(50):
        client.cast({}, "note", value=i)
    assert wait_until(lambda: client.transport.driver.describe()["held_casts"] > 0, timeout=5)
    echo = Echo()
    closer.server(closer.transport(), topic, [echo])
    assert echo.wait_seen(lambda seen: len(seen) >= 50, timeout=10)
    assert sorted(echo.seen) == list(range(50))


def test_closing_tries_held_casts_once_more_and_logs_the_rest(closer: Closer,
                                                              logs: LogCapture) -> None:
    transport = msgbus.get_rpc_transport(url=pika_url())
    client = msgbus.get_rpc_client(transport, msgbus.Target(topic=unique("closing")))
    for i in range(20):
        client.cast({}, "note", value=i)
    start = time.monotonic()
    transport.cleanup()
    assert time.monotonic() - start < 2.0
    assert logs.wait_for("closing the transport with 20 cast(s) that no queue took",
                         level=logging.ERROR, timeout=1)


def test_mandatory_sends_are_not_held(closer: Closer) -> None:
    """A send the caller asked to be mandatory (a call's request) raises MessageUndeliverable
    at once, and fanout casts are not held."""
    transport = closer.transport()
    topic = unique("mandatory")
    start = time.monotonic()
    with pytest.raises(MessageUndeliverable):
        transport.driver.send(msgbus.Target(topic=topic, exchange="openstack"), b"{}",
                              mandatory=True)
    with pytest.raises(MessageUndeliverable):
        transport.driver.send(msgbus.Target(topic=topic, exchange="openstack"), b"{}", ttl=5,
                              mandatory=True, deadline=time.monotonic() + 5)
    assert time.monotonic() - start < 1.0
    msgbus.get_rpc_client(transport, msgbus.Target(topic=topic, fanout=True)).cast(
        {}, "note", value=1)
    assert transport.driver.describe()["held_casts"] == 0
