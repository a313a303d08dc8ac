"""msgbus-pika's hooks into pika (msgbus_pika.select_connection) against pika itself.

Broker-free: what :class:`FastSelectConnection` hands its transport for a message is compared
byte for byte with what pika's own SelectConnection hands it, and the choice between the two
follows the version guard and the setting. The driver's suites run on both classes
(tests/pika/conftest.py).
"""

from __future__ import annotations

import types
from typing import Any

import pika.frame
import pika.spec
import pytest
from pika.adapters.select_connection import SelectConnection

from msgbus_pika import select_connection
from msgbus_pika.select_connection import FastSelectConnection


def _emitted(cls: type[SelectConnection], frames: list[bytes]) -> tuple[list[bytes], int, int]:
    """The writes a connection of ``cls`` hands its (non-TCP) transport for ``frames``, and its
    byte and frame counters."""
    conn: Any = object.__new__(cls)  # no I/O: only the output path is exercised
    writes: list[bytes] = []
    conn._transport = types.SimpleNamespace(write=lambda data: writes.append(bytes(data)))
    conn.bytes_sent = conn.frames_sent = 0
    conn._output_marshaled_frames(frames)
    return writes, conn.bytes_sent, conn.frames_sent


def _publish_frames(body: bytes, frame_max: int = 131072) -> list[bytes]:
    props = pika.spec.BasicProperties(content_type="application/json",
                                      content_encoding="utf-8", delivery_mode=2)
    frames = [pika.frame.Method(1, pika.spec.Basic.Publish(exchange="openstack",
                                                          routing_key="topic.host")).marshal(),
              pika.frame.Header(1, len(body), props).marshal()]
    chunk = frame_max - 8
    frames += [pika.frame.Body(1, body[i:i + chunk]).marshal()
               for i in range(0, len(body), chunk)]
    return frames


@pytest.mark.parametrize("size", [0, 10, 300000])
def test_fast_connection_writes_what_pika_writes(size: int) -> None:
    frames = _publish_frames(bytes(range(256)) * (size // 256) + b"y" * (size % 256))
    plain, plain_bytes, plain_frames = _emitted(SelectConnection, frames)
    fast, fast_bytes, fast_frames = _emitted(FastSelectConnection, frames)
    assert b"".join(fast) == b"".join(plain) == b"".join(frames)
    assert len(fast) == 1  # one write for the whole message
    assert (fast_bytes, fast_frames) == (plain_bytes, plain_frames)


def test_a_single_frame_goes_through_pika_unchanged() -> None:
    frame = [pika.frame.Heartbeat().marshal()]
    assert _emitted(FastSelectConnection, frame) == _emitted(SelectConnection, frame)


def test_connection_class_follows_the_guard_and_the_setting(
        monkeypatch: pytest.MonkeyPatch) -> None:
    assert select_connection.VERSION_OK and select_connection.HOOKS_PRESENT
    assert select_connection.connection_class() is FastSelectConnection
    assert select_connection.connection_class(False) is SelectConnection
    monkeypatch.setattr(select_connection, "VERSION_OK", False)
    assert select_connection.connection_class() is SelectConnection
