"""msgbus-kombu's fast path (msgbus_kombu.frames and the frame hooks) against py-amqp itself.

Broker-free: the frames the fast path writes are compared byte for byte with what py-amqp's own
frame writer makes of the same publish or settle, and what its reader and hooks
(:class:`~msgbus_kombu.frames.DeliveryReader`, :func:`~msgbus_kombu.frames.confirm_hook`) make of
a byte stream with what py-amqp's transport reader and method decoder make of it.
"""

from __future__ import annotations

import socket
import threading
import types
from typing import Any

import amqp.exceptions
import pytest
from amqp import spec
from amqp.basic_message import Message
from amqp.method_framing import frame_writer
from amqp.serialization import dumps, loads
from amqp.transport import Transport

from msgbus_kombu import frames
from msgbus_kombu.link import Link

CHANNEL = 7


def _amqp_writes(frame_max: int, method: tuple[int, int], argsig: str, args: tuple,
                 content: Message | None = None) -> bytes:
    """What py-amqp's frame writer writes for one method (with its content)."""
    written: list[bytes] = []
    conn = types.SimpleNamespace(frame_max=frame_max, bytes_sent=0)
    transport = types.SimpleNamespace(write=lambda data: written.append(bytes(data)))
    write = frame_writer(conn, transport)
    write(1, CHANNEL, method, dumps(argsig, args), content)
    return b"".join(written)


@pytest.mark.parametrize("expiration", [None, "60000"])
@pytest.mark.parametrize("mandatory", [False, True])
@pytest.mark.parametrize("size", [0, 1, 4000, 131064, 131065, 131072 * 3 + 5])
def test_publish_frames_match_py_amqp(expiration: str | None, mandatory: bool,
                                      size: int) -> None:
    frame_max = 131072
    body = bytes(range(256)) * (size // 256) + b"x" * (size % 256)
    exchange, key = "openstack", "compute.host-1"
    public = Link.message_properties(False, expiration)
    expected = _amqp_writes(frame_max, spec.Basic.Publish, "Bssbb",
                            (0, exchange, key, mandatory, False), Message(body, **public))
    ours = frames.publish_frames(CHANNEL, exchange, key, mandatory,
                                 Link.message_properties(True, expiration), body, frame_max)
    assert ours == expected


def test_publish_frames_refuse_a_long_routing_key() -> None:
    with pytest.raises(ValueError, match="too long"):
        frames.publish_frames(1, "", "k" * 256, False, b"", b"", 131072)


@pytest.mark.parametrize("tag", [1, 255, 2**32 + 3, 2**64 - 1])
@pytest.mark.parametrize("flag", [False, True])
def test_settle_frames_match_py_amqp(tag: int, flag: bool) -> None:
    assert frames.settle_frame(CHANNEL, 80, tag, int(flag)) == \
        _amqp_writes(131072, spec.Basic.Ack, "Lb", (tag, flag))
    assert frames.settle_frame(CHANNEL, 90, tag, int(flag)) == \
        _amqp_writes(131072, spec.Basic.Reject, "Lb", (tag, flag))


def _stream() -> bytes:
    """Frames of every kind a link reads: deliveries (small, empty, large), confirms, a
    heartbeat, a connection close."""
    parts = []
    for tag, body in ((1, b"hello"), (2, b""), (3, bytes(300000))):
        parts.append(_amqp_writes(131072, spec.Basic.Deliver, "sLbss",
                                  ("ctag-1", tag, False, "exch", "key"),
                                  Message(body, **Link.message_properties(False, None))))
    parts.append(_amqp_writes(131072, spec.Basic.Ack, "Lb", (9, True)))
    parts.append(b"\x08\x00\x00\x00\x00\x00\x00\xce")  # heartbeat
    parts.append(_amqp_writes(131072, spec.Connection.Close, "BsBB", (320, "bye", 0, 0)))
    return b"".join(parts)


def _read_all(read_frame: Any) -> list[tuple[int, int, bytes]]:
    out: list[tuple[int, int, bytes]] = []
    while True:
        try:
            frame_type, channel, payload = read_frame()
        except OSError:
            return out
        out.append((frame_type, channel, bytes(payload)))


def _feed(sock: socket.socket, data: bytes, step: int) -> threading.Thread:
    """Send ``data`` in pieces of ``step`` bytes (frames split anywhere), then close."""
    def run() -> None:
        for offset in range(0, len(data), step):
            sock.sendall(data[offset:offset + step])
        sock.close()
    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


def _py_amqp_frames(data: bytes) -> list[tuple[int, int, bytes]]:
    """py-amqp's transport reader on a real TCP connection carrying ``data``."""
    server = socket.create_server(("127.0.0.1", 0))
    port = server.getsockname()[1]
    transport = Transport(f"127.0.0.1:{port}", connect_timeout=5)
    transport.connect()
    peer, _ = server.accept()
    server.close()
    assert peer.recv(8) == b"AMQP\x00\x00\x09\x01"  # the protocol header py-amqp sent
    thread = _feed(peer, data, 1000)
    try:
        return _read_all(transport.read_frame)
    finally:
        thread.join(5)
        transport.close()


@pytest.mark.parametrize("step", [1, 7, 4096, 1 << 20])
def test_frame_reader_reads_what_py_amqp_reads(step: int) -> None:
    data = _stream()
    expected = _py_amqp_frames(data)
    ours_sock, peer = socket.socketpair()
    reader = frames.FrameReader(ours_sock)
    thread = _feed(peer, data, step)
    try:
        assert _read_all(reader.read_frame) == expected
    finally:
        thread.join(5)
        ours_sock.close()
    # deliveries: 3, 2 (an empty body has no body frame), 2 + 3 body frames; then 3 more
    assert len(expected) == 13


def test_frame_reader_refuses_a_bad_frame_end() -> None:
    ours_sock, peer = socket.socketpair()
    peer.sendall(b"\x08\x00\x00\x00\x00\x00\x00\x00")
    with pytest.raises(amqp.exceptions.UnexpectedFrame):
        frames.FrameReader(ours_sock).read_frame()
    ours_sock.close()
    peer.close()


class _Deliveries:
    """A :class:`frames.DeliveryReader` on :data:`CHANNEL`, recording what it delivers."""

    def __init__(self, channel: int = CHANNEL) -> None:
        self.delivered: list[tuple[int, bytes]] = []
        self.reader = frames.DeliveryReader(channel, lambda tag, body:
                                            self.delivered.append((tag, body)))
        self._hook = self.reader.hook


def _frames_of(data: bytes) -> list[tuple[int, int, bytes]]:
    ours_sock, peer = socket.socketpair()
    thread = _feed(peer, data, 1 << 20)
    try:
        return _read_all(frames.FrameReader(ours_sock).read_frame)
    finally:
        thread.join(5)
        ours_sock.close()


def test_delivery_hook_parses_what_py_amqp_parses() -> None:
    consumer = _Deliveries()
    left = [f for f in _frames_of(_stream()) if not consumer._hook(*f)]
    # the hook took the deliveries; py-amqp gets the confirm, the heartbeat and the close
    assert [f[0] for f in left] == [1, 8, 1]
    expected = []
    for frame_type, _, payload in _frames_of(_stream()):
        if frame_type == 1 and payload[:4] == b"\x00\x3c\x00\x3c":
            args, _ = loads("sLbss", payload, 4)
            expected.append(args[1])
    assert [tag for tag, _ in consumer.delivered] == expected == [1, 2, 3]
    assert [body for _, body in consumer.delivered] == [b"hello", b"", bytes(300000)]


def test_delivery_hook_leaves_other_channels_to_py_amqp() -> None:
    consumer = _Deliveries(CHANNEL + 1)
    assert not any(consumer._hook(*f) for f in _frames_of(_stream()))


@pytest.mark.parametrize("tag", [1, 2**40 + 1])
@pytest.mark.parametrize("multiple", [False, True])
def test_confirm_hook_parses_what_py_amqp_parses(tag: int, multiple: bool) -> None:
    settled: list[tuple[int, bool]] = []
    hook = frames.confirm_hook(CHANNEL, lambda tag, multiple: settled.append((tag, multiple)))
    ack = _amqp_writes(131072, spec.Basic.Ack, "Lb", (tag, multiple))
    nack = _amqp_writes(131072, spec.Basic.Nack, "Lbb", (tag, multiple, True))
    (ack_frame,), (nack_frame,) = _frames_of(ack), _frames_of(nack)
    assert hook(*ack_frame)
    assert not hook(*nack_frame)  # a nack is rare: py-amqp's events handle it
    assert not frames.confirm_hook(CHANNEL + 1, lambda *a: None)(*ack_frame)
    args, _ = loads("Lb", ack_frame[2], 4)
    assert settled == [(args[0], args[1])] == [(tag, multiple)]


def test_versions_guard_names_what_is_installed() -> None:
    """The installed py-amqp and kombu are releases the fast path was verified against here
    (CI installs them), and a release outside :data:`frames.VERIFIED` turns it off."""
    assert frames.unverified_versions() == []
    assert frames.VERSIONS_OK
    assert frames._series("6.0.1") not in frames.VERIFIED["amqp"]
    assert frames._series("garbage") is None


def test_fast_path_option_turns_the_fast_path_off() -> None:
    from oslo_config import cfg

    from msgbus_kombu.options import read_settings
    assert read_settings(cfg.ConfigOpts()).fast_path is frames.VERSIONS_OK
    assert read_settings(cfg.ConfigOpts(), {"fast_path": "false"}).fast_path is False
