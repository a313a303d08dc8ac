"""A burst of deliveries is acknowledged with a few frames (Basic.Ack ``multiple``), on both
paths of the driver: the fast path sees the deliveries waiting in its read buffer, the public
path asks the socket whether more are ready before it sends the acks it holds."""

from __future__ import annotations

import threading
from typing import Any

import pytest

import msgbus
from msgbus.testing import rabbitmq
from msgbus_kombu import consuming
from msgbus_kombu.link import Link

from .helpers import Closer, delete_entities, unique

pytestmark = pytest.mark.timeout(60)


def test_a_burst_of_deliveries_is_acknowledged_with_few_frames(
        closer: Closer, transport_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    topic = f"{unique('ack-burst')}.info"
    transport = closer.transport(url=transport_url)
    closer.add(lambda: delete_entities([topic]))
    total = 100
    for i in range(total):  # all waiting in the queue before anyone consumes it
        transport.send_notification(msgbus.Target(topic=topic), b'{"n": %d}' % i)

    settles: list[tuple[int, bool, bool]] = []
    settle = Link.settle

    def counted(link: Link, tag: int, ack: bool, flag: bool) -> None:
        settles.append((tag, ack, flag))
        settle(link, tag, ack, flag)

    monkeypatch.setattr(Link, "settle", counted)
    # no pause for more deliveries to join a burst's acks: only reading what is ready batches
    monkeypatch.setattr(consuming, "_ACK_DELAY_MS", 0.0)
    seen: list[bytes] = []
    all_seen = threading.Event()

    def on_message(incoming: Any) -> None:  # acked on the consumer thread, as a server does
        incoming.ack()
        seen.append(incoming.body)
        if len(seen) == total:
            all_seen.set()

    listener = transport.listen_for_notifications([msgbus.Target(topic=topic)], None,
                                                  on_message)
    closer.add(listener.stop)
    assert all_seen.wait(20)
    listener.stop()  # sends the acks still held before it returns
    assert sorted(seen) == sorted(b'{"n": %d}' % i for i in range(total))
    assert all(ack for _, ack, _ in settles)
    assert max(tag for tag, _, _ in settles) == total
    assert len(settles) < total // 2, settles
    assert rabbitmq.list_queues()[topic]["messages"] == 0
