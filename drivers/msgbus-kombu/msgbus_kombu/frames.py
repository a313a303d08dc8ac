"""The fast path: AMQP frames written and read by hand on the hot paths (publishing, reading).

py-amqp builds a publish from several objects and reads a frame with three system calls; the
driver's sends write ready-made frames (:func:`publish_frames`) and its links read through one
buffered ``recv_into`` per burst (:class:`FrameReader`), and consumers settle deliveries with
one small frame each (:func:`settle_frame`); the links' owners take the frames they expect most
(deliveries: :class:`DeliveryReader`; confirms: :func:`confirm_hook`) before py-amqp would.
Everything else goes through py-amqp. This is the
one module that builds frames itself or reaches into py-amqp's transport
(:func:`install_reader`, :func:`library_buffered`).

It is used only with the py-amqp and kombu releases it was verified against (:data:`VERIFIED`,
checked at import: :data:`VERSIONS_OK`, logged once when they do not match) and while the
``fast_path`` option is on; otherwise the driver uses py-amqp's public API alone
(``basic_publish``, ``Connection.blocking_read``, ``basic_ack``/``basic_reject``). Unit tests
compare what this module writes and reads with py-amqp's own frame writer and reader, byte for
byte.
"""

from __future__ import annotations

import logging
import socket
import ssl
import struct
from collections.abc import Callable
from importlib import metadata
from typing import Any

import amqp.exceptions
from amqp.basic_message import Message

LOG = logging.getLogger(__name__)

#: Release series (major, minor) the fast path was verified against, per distribution: it reads
#: py-amqp's transport internals (``read_frame``, ``_read_buffer``) and its heartbeat counters.
VERIFIED: dict[str, frozenset[tuple[int, int]]] = {
    "amqp": frozenset({(5, 4)}),
    "kombu": frozenset({(5, 3), (5, 4), (5, 5), (5, 6), (5, 7)}),
}


def _series(version: str) -> tuple[int, int] | None:
    parts = version.split(".")
    try:
        return int(parts[0]), int(parts[1])
    except (IndexError, ValueError):
        return None


def unverified_versions() -> list[str]:
    """The installed distributions (``name version``) whose release the fast path was not
    verified against; empty when it may be used."""
    out = []
    for name, series in VERIFIED.items():
        try:
            version = metadata.version(name)
        except metadata.PackageNotFoundError:
            version = "(not installed)"
        if _series(version) not in series:
            out.append(f"{name} {version}")
    return out


def _check_versions() -> bool:
    unverified = unverified_versions()
    if unverified:
        LOG.info("msgbus-kombu's fast path is off: it was not verified against %s; the driver "
                 "uses py-amqp's public API only", ", ".join(unverified))
    return not unverified


#: Whether the installed py-amqp and kombu are releases the fast path was verified against.
VERSIONS_OK: bool = _check_versions()

#: Basic.Ack (class 60, method 80): the broker confirms a published message.
ACK_PREFIX = b"\x00\x3c\x00\x50"
_DELIVER_PREFIX = b"\x00\x3c\x00\x3c"  # Basic.Deliver (class 60, method 60)
_METHOD_PUBLISH = b"\x00\x3c\x00\x28"  # Basic.Publish (60, 40), then ticket 0
_FRAME_END = b"\xce"


def settle_frame(channel: int, method: int, tag: int, flag: int) -> bytes:
    """Basic.Ack (method 80; ``flag``: multiple) or Basic.Reject (method 90; ``flag``: requeue)
    of delivery ``tag``, as one method frame."""
    return struct.pack(">BHIHHQBB", 1, channel, 13, 60, method, tag, flag, 0xCE)


def install_reader(transport: Any, sock: socket.socket) -> "FrameReader | None":
    """Make py-amqp's ``transport`` read frames through a :class:`FrameReader` on ``sock``
    (plain TCP, nothing buffered yet); None when that cannot be done (TLS), and py-amqp reads."""
    if isinstance(sock, ssl.SSLSocket) or transport._read_buffer:
        return None
    reader = FrameReader(sock)
    transport.read_frame = reader.read_frame
    return reader


def library_buffered(transport: Any) -> bool:
    """Whether py-amqp's own reader holds bytes it read but has not handled yet."""
    return bool(transport._read_buffer)


def _shortstr(text: str) -> bytes:
    raw = text.encode()
    if len(raw) > 255:
        raise ValueError(f"AMQP short string too long ({len(raw)} bytes): {text[:60]!r}...")
    return bytes((len(raw),)) + raw


def properties_bytes(properties: dict[str, Any]) -> bytes:
    """The encoded content-header properties (flags and values) of ``properties``."""
    return Message(b"", **properties)._serialize_properties()


def publish_frames(channel: int, exchange: str, routing_key: str, mandatory: bool,
                   properties: bytes, body: bytes, frame_max: int) -> bytes:
    """Basic.Publish, its content header and body frame(s), ready to write in one go."""
    method = b"".join((_METHOD_PUBLISH, b"\x00\x00", _shortstr(exchange), _shortstr(routing_key),
                       b"\x01" if mandatory else b"\x00"))
    header = struct.pack(">HHQ", 60, 0, len(body)) + properties
    parts = [struct.pack(">BHI", 1, channel, len(method)), method, _FRAME_END,
             struct.pack(">BHI", 2, channel, len(header)), header, _FRAME_END]
    chunk = max(4096, frame_max - 8)
    for offset in range(0, len(body), chunk):
        piece = body[offset:offset + chunk]
        parts += (struct.pack(">BHI", 3, channel, len(piece)), piece, _FRAME_END)
    return b"".join(parts)


class FrameReader:
    """Reads AMQP frames from a plain TCP socket with one ``recv`` per burst of data.

    Installed as the py-amqp transport's ``read_frame``, so every read on the link (ours and
    py-amqp's own waits) goes through it; py-amqp's reader makes three system calls a frame.
    """

    __slots__ = ("_recv_into", "_buf", "_pos", "_scratch", "_view")

    #: Bytes asked of one ``recv_into``. Reading into a buffer kept for the reader's life costs
    #: the same whatever this size; a plain ``recv`` of this size would allocate (and shrink) a
    #: fresh 256 KiB object on every read, several times the cost of a small read itself.
    CHUNK = 262144

    def __init__(self, sock: socket.socket) -> None:
        self._recv_into = sock.recv_into
        self._scratch = bytearray(self.CHUNK)
        self._view = memoryview(self._scratch)
        self._buf = bytearray()
        self._pos = 0

    def has_data(self) -> bool:
        return len(self._buf) > self._pos

    def _fill(self) -> None:
        count = self._recv_into(self._scratch)
        if not count:
            raise OSError("Server unexpectedly closed connection")
        buf = self._buf
        if self._pos and self._pos == len(buf):
            buf.clear()
            self._pos = 0
        elif self._pos > self.CHUNK:
            del buf[:self._pos]
            self._pos = 0
        buf += self._view[:count]

    def read_frame(self, _unpack: Any = struct.unpack_from) -> tuple[int, int, bytes]:
        buf = self._buf
        while len(buf) - self._pos < 7:
            self._fill()
        frame_type, channel, size = _unpack(">BHI", buf, self._pos)
        while len(buf) - self._pos < size + 8:  # (_fill may move the unread data forward)
            self._fill()
        start = self._pos + 7
        end = start + size
        if buf[end] != 0xCE:
            raise amqp.exceptions.UnexpectedFrame(
                f"Received frame_end {buf[end]:#04x} while expecting 0xce")
        payload = bytes(buf[start:end])
        self._pos = end + 1
        return frame_type, channel, payload


class DeliveryReader:
    """A consumer's fast path: takes Basic.Deliver and its content frames on ``channel`` and
    hands each delivery's tag and body to ``deliver``; every other frame is left to py-amqp."""

    __slots__ = ("channel", "tag", "_size", "_parts", "_deliver")

    def __init__(self, channel: int, deliver: Callable[[int, bytes], None]) -> None:
        self.channel = channel
        #: The delivery being read (its content frames still to come), else None.
        self.tag: int | None = None
        self._size = 0
        self._parts: list[bytes] = []
        self._deliver = deliver

    def hook(self, frame_type: int, channel: int, payload: bytes,
             _unpack: Any = struct.unpack_from) -> bool:
        """A link's hook: True when the frame was taken."""
        if channel != self.channel:
            return False
        if frame_type == 1:
            if payload[:4] != _DELIVER_PREFIX:
                return False
            self.tag = _unpack(">Q", payload, 5 + payload[4])[0]  # after the consumer tag
            self._size = -1
            return True
        if self.tag is None:
            return False
        if frame_type == 2:
            self._size = _unpack(">Q", payload, 4)[0]
            self._parts = []
            if self._size == 0:
                self._done(b"")
            return True
        if frame_type == 3:
            parts = self._parts
            parts.append(payload)
            if len(parts) == 1 and len(payload) >= self._size:
                self._done(payload)
            elif sum(map(len, parts)) >= self._size:
                self._done(b"".join(parts))
            return True
        return False

    def _done(self, body: bytes) -> None:
        tag, self.tag, self._parts = self.tag, None, []
        self._deliver(tag, body)  # type: ignore[arg-type]


def confirm_hook(channel: int, on_ack: Callable[[int, bool], None]
                 ) -> Callable[[int, int, bytes], bool]:
    """A publisher's fast path: a link hook that hands each Basic.Ack on ``channel`` (delivery
    tag, multiple) to ``on_ack``; everything else (nacks, returns) is left to py-amqp."""
    def hook(frame_type: int, frame_channel: int, payload: bytes,
             _unpack: Any = struct.unpack_from) -> bool:
        if frame_type == 1 and payload[:4] == ACK_PREFIX and frame_channel == channel:
            on_ack(_unpack(">Q", payload, 4)[0], len(payload) > 12 and bool(payload[12] & 1))
            return True
        return False
    return hook
