"""Casts published ahead of their confirms (``cast_confirm_window``): none is lost or doubled.

A cast returns once written while the send connection has fewer than the window of casts
unconfirmed; the slot keeps each copy until the broker confirms it and publishes it again after
a cut. The server drops the copies the broker had already taken (same ``_unique_id``).
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from typing import Any

import pytest

import msgbus
from msgbus.testing.rabbitmq import TcpProxy
from msgbus.testing.harness import cast_through_cuts
from msgbus_kombu.frames import confirm_hook
from msgbus_kombu.copies import InFlight
from msgbus_kombu.slot import PublishSlot

from .helpers import PORT, RABBIT_URL, TUNINGS, Closer, Echo, make_conf, tuned_conf, unique

pytestmark = pytest.mark.timeout(120)


@pytest.fixture
def proxy() -> Iterator[TcpProxy]:
    with TcpProxy(PORT) as p:
        yield p


def _client(closer: Closer, url: str, topic: str, tuning: str = "defaults",
            **options: Any) -> msgbus.RPCClient:
    transport = closer.transport(url=url, conf=tuned_conf(tuning, **options))
    return msgbus.get_rpc_client(transport, msgbus.Target(topic=topic), timeout=10)


def _send_slots(client: msgbus.RPCClient) -> list[PublishSlot]:
    return list(client.transport.driver.publisher._slots)


@pytest.mark.parametrize("tuning", TUNINGS)
@pytest.mark.parametrize("window", [64, 0])
def test_casts_survive_send_connections_cut_mid_burst(proxy: TcpProxy, closer: Closer,
                                                      window: int, tuning: str) -> None:
    topic = unique("pipeline-cut")
    echo = Echo()
    closer.server(closer.transport(conf=tuned_conf(tuning)), topic, [echo])
    client = _client(closer, proxy.url, topic, tuning, cast_confirm_window=window)
    assert client.call({}, "echo", value="warm") == "warm"
    cast_through_cuts(client, echo, proxy.drop_all)
    assert client.call({}, "echo", value="end") == "end"
    assert all(slot.flush(10.0) == 0 for slot in _send_slots(client))


def test_closing_the_transport_settles_every_cast(closer: Closer) -> None:
    topic = unique("pipeline-close")
    echo = Echo()
    closer.server(closer.transport(), topic, [echo])
    transport = msgbus.get_rpc_transport(make_conf(), url=RABBIT_URL)
    client = msgbus.get_rpc_client(transport, msgbus.Target(topic=topic))
    try:
        for i in range(500):
            client.cast({}, "note", value=i)
    finally:
        transport.cleanup()
    assert all(slot.outstanding == 0 for slot in _send_slots(client))
    assert echo.wait_seen(lambda seen: len(seen) >= 500)
    assert sorted(echo.seen) == list(range(500))


def test_a_call_after_casts_confirms_them_too(closer: Closer) -> None:
    topic = unique("pipeline-call")
    echo = Echo()
    closer.server(closer.transport(), topic, [echo])
    client = _client(closer, RABBIT_URL, topic)
    for i in range(40):
        client.cast({}, "note", value=i)
    assert client.call({}, "echo", value="x") == "x"
    assert echo.wait_seen(lambda seen: len(seen) >= 40)
    assert all(slot.flush(10.0) == 0 for slot in _send_slots(client))


class TestConfirmBookkeeping:
    """The slot's accounting of confirms, fed the frames the broker sends (no connection)."""

    @staticmethod
    def _slot(tags: range) -> PublishSlot:
        slot = PublishSlot(connector=None, index=1, window=8)  # type: ignore[arg-type]
        slot._channel_id = 1
        for tag in tags:
            slot._unconfirmed[tag] = InFlight(None, f"key{tag}", b"body", b"")
        return slot

    @staticmethod
    def _ack_frame(tag: int, multiple: bool) -> tuple[int, int, bytes]:
        return 1, 1, b"\x00\x3c\x00\x50" + struct.pack(">QB", tag, 1 if multiple else 0)

    def test_multiple_and_single_acks(self) -> None:
        slot = self._slot(range(1, 7))
        hook = confirm_hook(1, slot._on_ack)  # the fast path's, as a fast link holds it
        assert hook(*self._ack_frame(3, True))
        assert list(slot._unconfirmed) == [4, 5, 6]
        assert hook(*self._ack_frame(5, False))
        assert list(slot._unconfirmed) == [4, 6]
        assert slot.outstanding == 2

    def test_nacked_casts_are_kept_to_publish_again(self) -> None:
        slot = self._slot(range(1, 5))
        slot._on_nack(2, True)
        assert list(slot._unconfirmed) == [3, 4]
        assert [c.routing_key for c in slot.replay] == ["key1", "key2"]
        assert slot.outstanding == 4

    def test_nacked_mandatory_casts_are_held_to_send_again_later(self) -> None:
        # A quorum queue electing a leader nacks every publish for a few hundred ms: casts
        # published mandatory go to the held casts (growing pauses, cast_hold_timeout), not to
        # an immediate replay that a count of attempts would exhaust.
        held: list[InFlight] = []
        slot = PublishSlot(connector=None, index=1, window=8,  # type: ignore[arg-type]
                           on_returned=held.append)
        slot._unconfirmed[1] = InFlight(None, "topic", b"body", b"", hold=True)
        slot._unconfirmed[2] = InFlight(None, "fanout", b"body", b"")
        slot._on_nack(2, True)
        assert [c.routing_key for c in held] == ["topic"]
        assert [c.routing_key for c in slot.replay] == ["fanout"]

    def test_a_lost_channel_keeps_unconfirmed_casts_in_order(self) -> None:
        slot = self._slot(range(1, 4))
        slot._unconfirmed[4] = None  # a send waiting for its own confirm: it retries itself
        slot._on_nack(1, False)
        slot._orphan()
        assert slot._unconfirmed == {}
        assert [c.routing_key for c in slot.replay] == ["key2", "key3", "key1"]

    def test_a_cast_never_confirmed_is_dropped_after_its_attempts(self, logs: Any) -> None:
        slot = self._slot(range(1, 1))
        slot._unconfirmed[1] = InFlight(None, "stubborn", b"", b"", attempts=4)
        slot._orphan()
        assert slot.replay == []
        assert any("stubborn" in m and "never confirmed" in m for m in logs.messages())

    def test_a_cast_is_not_published_again_past_its_attempts(self, logs: Any) -> None:
        slot = self._slot(range(1, 1))
        slot.replay.append(InFlight(None, "spent", b"", b"", attempts=4))
        slot._publish_replay(link=None, deadline=None)  # type: ignore[arg-type]  (nothing to write)
        assert slot.replay == [] and slot._unconfirmed == {}
        assert any("spent" in m and "never confirmed" in m for m in logs.messages())
