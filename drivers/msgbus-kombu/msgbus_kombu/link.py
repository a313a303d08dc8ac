"""One open connection to the broker with one channel: :class:`Link`.

A link is used by a single thread at a time (a publisher slot or a consumer thread). With the
fast path (:mod:`msgbus_kombu.frames`) it reads frames through a
:class:`~msgbus_kombu.frames.FrameReader` (plain TCP) and hands each to its owner's hook
(:attr:`Link.hook`) or to py-amqp, and writes ready-made frames; without it, it reads with
py-amqp's ``blocking_read``, publishes with ``basic_publish`` and settles with
``basic_ack``/``basic_reject``. It remembers what it declared, and bounds
every blocking exchange made under :meth:`Link.bounded` by a deadline as well as by the I/O
timeout. Opening links (hosts, failover, the bounded handshake) is :mod:`msgbus_kombu.connection`.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import select
import selectors
import socket
import time
from collections.abc import Callable, Iterator
from typing import Any

import amqp
import amqp.exceptions
import kombu
import kombu.exceptions

from msgbus.driver.amqp import (CONTENT_ENCODING, CONTENT_TYPE, DELIVERY_MODE_PERSISTENT,
                                ExchangeSpec, QueueSpec)
from msgbus_kombu.frames import (FrameReader, install_reader, library_buffered, properties_bytes,
                                 publish_frames,
                                 settle_frame)
from msgbus_kombu.options import Settings

LOG = logging.getLogger(__name__)

#: Errors that mean the connection is gone (or never came up): reconnect and retry.
CONNECTION_ERRORS: tuple[type[BaseException], ...] = (
    amqp.exceptions.ConnectionError, amqp.exceptions.RecoverableConnectionError,
    kombu.exceptions.OperationalError, OSError, EOFError)
#: Errors the broker raised on one channel (the connection is still fine).
CHANNEL_ERRORS: tuple[type[BaseException], ...] = (amqp.exceptions.ChannelError,)



@dataclasses.dataclass(frozen=True)
class Endpoint:
    """One broker address with its credentials (the password is never shown)."""

    host: str
    port: int
    user: str
    password: str = dataclasses.field(repr=False)
    vhost: str

    def describe(self) -> str:
        """``host:port``, fit for log lines and error messages."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"


def _collect(kconn: kombu.Connection) -> None:
    try:
        kconn.collect()
    except Exception:  # noqa: BLE001 - tearing down a broken connection: nothing to report
        LOG.debug("error collecting a broken connection", exc_info=True)



#: A message's properties as a link publishes them: encoded bytes on the fast path
#: (:func:`msgbus_kombu.frames.properties_bytes`), else keyword arguments of ``amqp.Message``.
Properties = Any


class Poller:
    """Waits until file descriptors are readable: ``select.poll`` where it exists, else the
    ``selectors`` module (a process that ran ``eventlet.monkey_patch()`` has no poll)."""

    def __init__(self, *fds: int) -> None:
        make_poll = getattr(select, "poll", None)
        if make_poll is not None:
            poll = make_poll()
            for fd in fds:
                poll.register(fd, select.POLLIN)
            #: ``poll(milliseconds or None)`` -> [(fd, event)], as ``select.poll``'s
            self.poll: Callable[..., list[tuple[int, int]]] = poll.poll
            self._selector: selectors.BaseSelector | None = None
            return
        self._selector = selector = selectors.DefaultSelector()
        for fd in fds:
            selector.register(fd, selectors.EVENT_READ)
        self.poll = self._select

    def _select(self, timeout_ms: float | None = None) -> list[tuple[int, int]]:
        assert self._selector is not None
        timeout = None if timeout_ms is None else max(0.0, timeout_ms) / 1000.0
        return [(key.fd, events) for key, events in self._selector.select(timeout)]

    def close(self) -> None:
        if self._selector is not None:
            self._selector.close()


#: Handles a frame (type, channel, payload) itself and returns True, or returns False to leave
#: it to py-amqp.
FrameHook = Callable[[int, int, bytes], bool]


class Link:
    """One AMQP connection with one channel, used by one thread at a time.

    Remembers what it declared (exchanges, queues, bindings) so repeated sends do not declare
    again; a new Link (after a reconnect) starts with an empty memory.
    """

    def __init__(self, kconn: kombu.Connection, endpoint: Endpoint, settings: Settings,
                 deadline: float | None = None) -> None:
        self.kconn = kconn
        self.endpoint = endpoint
        self.settings = settings
        self.conn: amqp.Connection = kconn.connection  # connects now if not yet connected
        self.transport = self.conn.transport
        self.sock: socket.socket = self.conn.sock
        self.io_timeout = settings.io_timeout
        self.sock.settimeout(self._timeout_until(deadline))
        #: Whether this link uses the fast path (:mod:`msgbus_kombu.frames`).
        self.fast = settings.fast_path
        self._reader: FrameReader | None = (install_reader(self.transport, self.sock)
                                            if self.fast else None)
        #: The owner's fast path for the frames it expects most (deliveries, confirms); only
        #: read on a fast link.
        self.hook: FrameHook | None = None
        self._poller = Poller(self.sock.fileno())
        #: TLS: the bytes decrypted but not yet read (a poll of the socket does not show them)
        self._tls_pending: Callable[[], int] | None = getattr(self.sock, "pending", None)
        self.channel: amqp.Channel = self._new_channel()
        if deadline is not None:
            self.sock.settimeout(self.io_timeout)
        self.declared: set[Any] = set()
        self.closed = False

    def _new_channel(self) -> amqp.Channel:
        channel = self.conn.channel()
        channel.auto_decode = False  # bodies stay bytes, as the core expects
        return channel

    def _timeout_until(self, deadline: float | None) -> float:
        """The socket timeout for a blocking exchange that must end by ``deadline``."""
        if deadline is None:
            return self.io_timeout
        left = deadline - time.monotonic()
        if left <= 0:
            raise socket.timeout("no time left before the deadline")
        return min(self.io_timeout, left)

    @contextlib.contextmanager
    def bounded(self, deadline: float | None) -> Iterator[None]:
        """Blocking reads and writes inside end by ``deadline`` (socket.timeout, an OSError,
        when it passes) as well as by the I/O timeout."""
        if deadline is None:
            yield
            return
        previous = self.sock.gettimeout()  # an enclosing bounded() keeps its bound afterwards
        self.sock.settimeout(self._timeout_until(deadline))
        try:
            yield
        finally:
            if not self.closed:
                self.sock.settimeout(previous)


    # reading
    def buffered(self) -> bool:
        """Whether bytes were already read from the socket but not yet handled (our read-ahead,
        py-amqp's partial frame, decrypted TLS data): a poll of the socket would not show them."""
        reader = self._reader
        if reader is not None:
            return reader.has_data()
        if self.fast and library_buffered(self.transport):
            return True
        pending = self._tls_pending
        return pending is not None and pending() > 0

    def wait_readable(self, timeout: float) -> bool:
        """Whether something can be read within ``timeout`` seconds."""
        if self.buffered():
            return True
        return bool(self._poller.poll(max(0.0, timeout) * 1000.0))

    def pending(self) -> bool:
        """Whether a frame (or part of one) is waiting to be read, without blocking."""
        return self.wait_readable(0.0)

    def read_frame(self) -> None:
        """Read and handle one frame (blocks up to the socket's I/O timeout): by the owner's
        hook when it takes it, else by py-amqp.

        Without the fast path, py-amqp's ``blocking_read`` reads frame after frame while more
        are ready, until one completes a method (a delivery is three frames). Not
        ``drain_events(timeout)``: it sets the socket's timeout twice per frame (two system
        calls), and after a lone heartbeat frame it waits on for a method or its timeout."""
        if not self.fast:
            blocking_read = self.conn.blocking_read
            while not blocking_read(None) and self.pending():
                pass
            return
        frame = self.transport.read_frame()
        hook = self.hook
        if hook is not None and hook(*frame):
            self.conn.bytes_recv += 1  # (py-amqp's heartbeat accounting)
            return
        self.conn.on_inbound_frame(frame)

    def write(self, data: bytes) -> None:
        """Write ready-made frames (fast path; the caller owns the link, so nobody writes
        meanwhile)."""
        self.transport.write(data)
        self.conn.bytes_sent += 1

    @staticmethod
    def message_properties(fast: bool, expiration: str | None) -> Properties:
        """The properties of oslo.messaging's messages, as :meth:`publish` takes them."""
        props: dict[str, Any] = {"content_type": CONTENT_TYPE,
                                 "content_encoding": CONTENT_ENCODING,
                                 "delivery_mode": DELIVERY_MODE_PERSISTENT}
        if expiration is not None:
            props["expiration"] = expiration
        return properties_bytes(props) if fast else props

    def publish(self, exchange: str, routing_key: str, mandatory: bool, properties: Properties,
                body: bytes) -> None:
        """Publish one message on the link's channel (a confirm, if any, comes later)."""
        if self.fast:
            self.write(publish_frames(self.channel.channel_id, exchange, routing_key, mandatory,
                                      properties, body, self.conn.frame_max))
            return
        self.channel.basic_publish(amqp.Message(body, **properties), exchange, routing_key,
                                   mandatory)

    def settle(self, tag: int, ack: bool, flag: bool) -> None:
        """Basic.Ack (``flag``: multiple) or Basic.Reject (``flag``: requeue) of ``tag``."""
        if self.fast:
            self.write(settle_frame(self.channel.channel_id, 80 if ack else 90, tag, int(flag)))
        elif ack:
            self.channel.basic_ack(tag, multiple=flag)
        else:
            self.channel.basic_reject(tag, requeue=flag)

    def drain_pending(self) -> None:
        """Handle every frame already waiting (heartbeats, a close from the broker)."""
        while self.pending():
            self.read_frame()

    def heartbeat_check(self) -> None:
        """Send a heartbeat if due; raise if the broker has been silent for too long."""
        self.kconn.heartbeat_check(rate=self.settings.kombu.heartbeat_rate)

    # declaring (each at most once per link; ``deadline`` bounds waiting for the broker)
    def declare_exchange(self, spec: ExchangeSpec, deadline: float | None = None) -> None:
        if spec.name == "" or ("x", spec.name) in self.declared:
            return
        with self.bounded(deadline):
            self.channel.exchange_declare(spec.name, spec.type, durable=spec.durable,
                                          auto_delete=spec.auto_delete)
        self.declared.add(("x", spec.name))

    def declare_queue(self, spec: QueueSpec, deadline: float | None = None) -> None:
        """Declare the queue (and its exchange and binding), once per link."""
        if ("q", spec.name) not in self.declared:
            with self.bounded(deadline):
                self.channel.queue_declare(spec.name, durable=spec.durable, exclusive=False,
                                           auto_delete=spec.auto_delete,
                                           arguments=dict(spec.arguments) or None)
            self.declared.add(("q", spec.name))
        if spec.exchange is not None:
            self.declare_exchange(spec.exchange, deadline)
            key = ("b", spec.name, spec.exchange.name, spec.routing_key)
            if key not in self.declared:
                with self.bounded(deadline):
                    self.channel.queue_bind(spec.name, spec.exchange.name, spec.routing_key)
                self.declared.add(key)

    def forget_exchange(self, name: str) -> None:
        """Drop a remembered declaration (the broker deleted the exchange, e.g. auto-delete)."""
        self.declared.discard(("x", name))

    def reopen_channel(self) -> None:
        """Open a fresh channel after the broker closed ours (a channel error)."""
        old = self.channel
        try:
            if old.is_open:
                old.close()
        except CONNECTION_ERRORS + CHANNEL_ERRORS:
            pass
        self.channel = self._new_channel()
        self.declared.clear()

    # closing
    def close(self, timeout: float = 2.0) -> None:
        """Close politely, waiting at most ``timeout`` for the broker; never raises."""
        if self.closed:
            return
        self.closed = True
        try:
            self.sock.settimeout(timeout)
            self.conn.close()
        except Exception:  # noqa: BLE001 - the link is going away either way
            LOG.debug("error closing connection to %s", self.endpoint.describe(), exc_info=True)
        self._poller.close()
        _collect(self.kconn)

    def interrupt(self) -> None:
        """Shut the socket down (from any thread): a read blocked on it returns at once."""
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass

    def abort(self) -> None:
        """Drop the connection without talking to the broker (it is broken)."""
        if self.closed:
            return
        self.closed = True
        self._poller.close()
        _collect(self.kconn)
