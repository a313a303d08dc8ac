"""pika's SelectConnection, tuned: one write per message, written at once, read in large pieces.

Three costs of pika's select adapter dominate, and all are removed here through pika's adapter
hooks (``_output_marshaled_frames``, ``_adapter_emit_data``, ``_proto_connection_made``):

* pika hands every frame of a message (method, content header, body) to its transport on its
  own, and the transport sends each with its own ``send()``: with TCP_NODELAY that is three TCP
  segments per message, three system calls here and three reads in the broker. The frames of
  one method are joined first.
* the transport only ever writes when the I/O loop reports the socket writable, so every write
  costs a poller update, a loop iteration and another poller update. When nothing is queued in
  the transport, the data is sent right away (plain TCP only); whatever the socket does not take
  goes through the transport as before, keeping the order.
* the transport reads 4 KiB per ``recv()`` (and at most 100 KiB per read event), and always
  once more until the socket says it would block: a small message costs two ``recv()`` calls, a
  1 MiB message 257. Here reads are 64 KiB (256 KiB per event at most), and a read that returns
  less than asked for ends the turn (the loop is level-triggered: anything that arrived since is
  reported again at once).

It is used only with the pika release series it was verified against (:data:`VERIFIED`, checked
at import: :data:`VERSION_OK`, logged once when it does not match) and when the transport's
settings ask for it (:func:`connection_class`); otherwise, or if a pika release lacks the hooks
or the attributes used, the plain SelectConnection is used: correctness never depends on this
module, only speed. Tests run the driver's suites with both.
"""

from __future__ import annotations

import functools
import logging
from importlib import metadata
from typing import Any, Sequence

from pika.adapters.select_connection import SelectConnection

try:  # pika's plain-TCP transport: writing to its socket directly is safe (TLS is not)
    from pika.adapters.utils.io_services_utils import (
        _AsyncPlaintextTransport as _PlainTransport,
    )
except ImportError:  # pragma: no cover - other pika releases
    _PlainTransport = None  # type: ignore[assignment,misc]


LOG = logging.getLogger(__name__)

#: pika release series (major, minor) these hooks were verified against.
VERIFIED = frozenset({(1, 4)})


def _version_ok() -> bool:
    version = metadata.version("pika")
    parts = version.split(".")
    try:
        series = (int(parts[0]), int(parts[1]))
    except (IndexError, ValueError):
        series = None
    if series in VERIFIED:
        return True
    LOG.info("msgbus-pika's connection hooks are off: they were not verified against pika %s; "
             "the driver uses pika's plain SelectConnection", version)
    return False


#: Whether the installed pika is a release the hooks were verified against.
VERSION_OK: bool = _version_ok()

#: Bytes per ``recv()`` and at most per read event (pika: 4 KiB and 100 KiB).
RECV_BYTES = 64 * 1024
CONSUME_BYTES = 256 * 1024


class FastSelectConnection(SelectConnection):
    """A SelectConnection writing each method with its content in one go, reading in bulk."""

    def _proto_connection_made(self, transport: Any) -> None:
        super()._proto_connection_made(transport)
        if isinstance(getattr(transport, "_MAX_RECV_BYTES", None), int):
            transport._MAX_RECV_BYTES = RECV_BYTES
        if isinstance(getattr(transport, "_MAX_CONSUME_BYTES", None), int):
            transport._MAX_CONSUME_BYTES = CONSUME_BYTES
        if _PlainTransport is not None and type(transport) is _PlainTransport and all(
                hasattr(transport, name) for name in
                ("_consume", "_sigint_safe_recv", "RxEndOfFile", "_protocol", "_sock", "_state",
                  "_STATE_ACTIVE")):
            transport._consume = functools.partial(_read_until_short, transport)

    def _output_marshaled_frames(self, marshaled_frames: Sequence[bytes]) -> None:
        if len(marshaled_frames) == 1:
            super()._output_marshaled_frames(marshaled_frames)
            return
        data = b"".join(marshaled_frames)
        self.bytes_sent += len(data)
        self.frames_sent += len(marshaled_frames)
        self._adapter_emit_data(data)

    def _adapter_emit_data(self, data: bytes) -> None:
        transport: Any = getattr(self, "_transport", None)
        if _PlainTransport is not None and type(transport) is _PlainTransport \
                and transport.get_write_buffer_size() == 0 \
                and transport._state == transport._STATE_ACTIVE:
            sock = transport._sock
            try:
                sent = sock.send(data)
            except (BlockingIOError, InterruptedError):
                sent = 0
            except OSError:
                sent = 0  # the transport meets the error itself and reports the loss
            if sent >= len(data):
                return
            data = data[sent:]
        super()._adapter_emit_data(data)


def _read_until_short(transport: Any) -> None:
    """The plain transport's read step: hand the protocol what ``recv()`` returns, and stop as
    soon as a read comes back short (the socket is drained) or enough was read for one turn.

    Errors propagate to the transport's own handler (would-block, resets), as pika's do.
    """
    consumed = 0
    while consumed < CONSUME_BYTES and transport._state == transport._STATE_ACTIVE:
        data = transport._sigint_safe_recv(transport._sock, RECV_BYTES)
        if not data:
            raise transport.RxEndOfFile()
        consumed += len(data)
        transport._protocol.data_received(data)
        if len(data) < RECV_BYTES:
            return


def _hooks_present() -> bool:
    return all(callable(getattr(SelectConnection, name, None))
               for name in ("_output_marshaled_frames", "_adapter_emit_data",
                            "_proto_connection_made"))


#: Whether pika has the adapter hooks :class:`FastSelectConnection` overrides.
HOOKS_PRESENT: bool = _hooks_present()


def connection_class(fast: bool = True) -> type[SelectConnection]:
    """The class :class:`~msgbus_pika.io_connection.IoConnection` opens connections with:
    :class:`FastSelectConnection` when ``fast`` and the installed pika was verified and has the
    hooks, else pika's own SelectConnection."""
    if fast and VERSION_OK and HOOKS_PRESENT:
        return FastSelectConnection
    return SelectConnection


__all__ = ["FastSelectConnection", "connection_class"]
