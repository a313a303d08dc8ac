"""Connections to the broker: the URL's hosts, failover, reconnect backoff, one link's life.

A :class:`Connector` turns the transport URL into broker endpoints and opens kombu connections,
trying the hosts in failover order. A :class:`Link` is one open connection with one channel,
used by a single thread at a time (a publisher slot or a consumer thread). :class:`RetryBudget`
holds the ``retry`` rule (None: forever, 0: never, N: at most N) and the backoff between tries
(:func:`msgbus.driver.amqp.reconnect_delays`: fast first, then backing off).

Deadlines: opening a link (TCP connect, TLS, the AMQP handshake, channel open) ends by
``connect_timeout`` and by the deadline of the send or listen it is opened for; so does every
blocking exchange with the broker made under :meth:`Link.bounded`. No message ever names a
password: endpoints describe themselves as ``host:port``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import itertools
import logging
import os
import random
import select
import socket
import ssl
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import amqp
import amqp.exceptions
import kombu
import kombu.exceptions
import kombu.transport.pyamqp

from msgbus.driver.amqp import ExchangeSpec, QueueSpec, default_port, reconnect_delays
from msgbus.exceptions import ConfigurationError
from msgbus.transport_url import TransportURL
from msgbus_kombu.frames import FrameReader
from msgbus_kombu.options import Settings

LOG = logging.getLogger(__name__)

#: Errors that mean the connection is gone (or never came up): reconnect and retry.
CONNECTION_ERRORS: tuple[type[BaseException], ...] = (
    amqp.exceptions.ConnectionError, amqp.exceptions.RecoverableConnectionError,
    kombu.exceptions.OperationalError, OSError, EOFError)
#: Errors the broker raised on one channel (the connection is still fine).
CHANNEL_ERRORS: tuple[type[BaseException], ...] = (amqp.exceptions.ChannelError,)


class ConnectFailed(Exception):
    """No host of the URL accepted a connection; ``str()`` names the addresses tried."""

    def __init__(self, message: str, errors: list[BaseException]) -> None:
        super().__init__(message)
        #: The error of each host, in the order tried.
        self.errors = errors


#: Anything that can go wrong with a link: it cannot be opened, it broke, or its channel did.
LINK_ERRORS: tuple[type[BaseException], ...] = (ConnectFailed, *CONNECTION_ERRORS,
                                                *CHANNEL_ERRORS)


class Stopped(Exception):
    """The driver or listener is shutting down: give up waiting."""


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


def endpoints_from_url(url: TransportURL, ssl: bool = False) -> list[Endpoint]:
    """The URL's hosts as endpoints; missing parts default to localhost, guest/guest, ``/`` and
    AMQP's port (5671 over TLS, else 5672: :func:`msgbus.driver.amqp.default_port`)."""
    vhost = url.virtual_host or "/"
    hosts = url.hosts or []
    port = default_port(ssl)
    if not hosts:
        return [Endpoint("localhost", port, "guest", "guest", vhost)]
    out = []
    for host in hosts:
        out.append(Endpoint(host.hostname or "localhost", host.port or port,
                            host.username if host.username is not None else "guest",
                            host.password if host.password is not None else "guest", vhost))
    return out


def ssl_options(settings: Settings, endpoint: Endpoint) -> dict[str, Any] | bool:
    """py-amqp's ``ssl`` argument for ``endpoint``: False, or the TLS options (CA verified)."""
    amqp_settings = settings.amqp
    if not amqp_settings.ssl:
        return False
    opts: dict[str, Any] = {}
    for key, path in (("ca_certs", amqp_settings.ssl_ca_file),
                      ("certfile", amqp_settings.ssl_cert_file),
                      ("keyfile", amqp_settings.ssl_key_file)):
        if path:
            if not os.path.exists(path):
                raise ConfigurationError(f"TLS file {path!r} ({key}) does not exist")
            opts[key] = path
    if amqp_settings.ssl_verify:
        opts["cert_reqs"] = ssl.CERT_REQUIRED
        opts["server_hostname"] = endpoint.host
    else:
        opts["cert_reqs"] = ssl.CERT_NONE
    return opts


class Connector:
    """Opens connections to the URL's hosts, failing over from one to the next."""

    def __init__(self, url: TransportURL, settings: Settings) -> None:
        self.settings = settings
        self.endpoints = endpoints_from_url(url, settings.amqp.ssl)
        for endpoint in self.endpoints:  # validate TLS files early, with a clear error
            ssl_options(settings, endpoint)
        self._next = 0
        self._lock = threading.Lock()
        self._counter = itertools.count(1)

    def describe(self) -> str:
        """The broker addresses (no credentials), e.g. ``127.0.0.1:5672,10.0.0.2:5672``."""
        return ",".join(e.describe() for e in self.endpoints)

    def _order(self) -> list[Endpoint]:
        with self._lock:
            start = self._next
        endpoints = self.endpoints[start:] + self.endpoints[:start]
        if self.settings.kombu.failover_strategy == "shuffle" and len(endpoints) > 1:
            random.shuffle(endpoints)
        return endpoints

    def _prefer(self, endpoint: Endpoint) -> None:
        with self._lock:
            self._next = self.endpoints.index(endpoint)

    def _advance(self, endpoint: Endpoint) -> None:
        with self._lock:
            if self.endpoints[self._next] == endpoint:
                self._next = (self._next + 1) % len(self.endpoints)

    def open(self, purpose: str, deadline: float | None = None) -> Link:
        """Connect to the first host that answers (each host tried once); raise ConnectFailed.

        Each host gets ``connect_timeout`` for everything up to an open channel; ``deadline``
        (monotonic) shortens that, so a call never waits past it.
        """
        texts: list[str] = []
        errors: list[BaseException] = []
        for endpoint in self._order():
            timeout = self.settings.amqp.connect_timeout
            if deadline is not None:
                timeout = min(timeout, deadline - time.monotonic())
                if timeout <= 0:
                    errors.append(TimeoutError("no time left to connect"))
                    texts.append(f"{endpoint.describe()}: no time left to connect")
                    break
            try:
                link = self._open_one(endpoint, purpose, timeout)
            except CONNECTION_ERRORS + CHANNEL_ERRORS as exc:
                errors.append(exc)
                texts.append(f"{endpoint.describe()}: {_describe_error(exc)}")
                self._advance(endpoint)
                continue
            self._prefer(endpoint)
            return link
        raise ConnectFailed("; ".join(texts), errors)

    def _open_one(self, endpoint: Endpoint, purpose: str, timeout: float) -> Link:
        amqp_settings = self.settings.amqp
        name = f"{self.settings.kombu.connection_name_prefix}:{os.getpid()}:{purpose}:" \
               f"{next(self._counter)}"
        timeout = max(0.05, timeout)
        until = time.monotonic() + timeout
        kconn = kombu.Connection(
            hostname=endpoint.host, port=endpoint.port, userid=endpoint.user,
            password=endpoint.password, virtual_host=endpoint.vhost,
            ssl=ssl_options(self.settings, endpoint), heartbeat=amqp_settings.heartbeat or 0,
            connect_timeout=timeout, transport=_BoundedTransport,
            transport_options={"client_properties": {"connection_name": name,
                                                     "product": "msgbus-kombu"},
                               "handshake_deadline": until})
        try:
            # one try of this host, no sleeping: retries and backoff are ours (RetryBudget)
            kconn.ensure_connection(max_retries=0, reraise_as_library_errors=False)
            return Link(kconn, endpoint, self.settings, until)
        except BaseException:
            _collect(kconn)
            raise


class _BoundedConnection(kombu.transport.pyamqp.Connection):
    """py-amqp's connection whose handshake ends by ``handshake_deadline`` (monotonic) as a
    whole: py-amqp gives each of the handshake's reads the full ``connect_timeout``."""

    def __init__(self, *args: Any, handshake_deadline: float | None = None,
                 **kwargs: Any) -> None:
        self._handshake_deadline = handshake_deadline
        super().__init__(*args, **kwargs)

    def drain_events(self, timeout: float | None = None) -> Any:
        until = self._handshake_deadline
        if until is not None and not self._handshake_complete:
            left = until - time.monotonic()
            if left <= 0:
                raise socket.timeout("the AMQP handshake did not finish in time")
            timeout = left if timeout is None else min(timeout, left)
        return super().drain_events(timeout)


class _BoundedTransport(kombu.transport.pyamqp.Transport):
    """kombu's py-amqp transport, making :class:`_BoundedConnection` connections."""

    Connection = _BoundedConnection


def _collect(kconn: kombu.Connection) -> None:
    try:
        kconn.collect()
    except Exception:  # noqa: BLE001 - tearing down a broken connection: nothing to report
        LOG.debug("error collecting a broken connection", exc_info=True)


def _describe_error(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    return text if type(exc).__name__ in text else f"{type(exc).__name__}: {text}"


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
        self._reader: FrameReader | None = None
        if not isinstance(self.sock, ssl.SSLSocket) and \
                not self.transport._read_buffer:
            self._reader = FrameReader(self.sock)
            self.transport.read_frame = self._reader.read_frame
        #: The owner's fast path for the frames it expects most (deliveries, confirms).
        self.hook: FrameHook | None = None
        self._poller = select.poll()
        self._poller.register(self.sock.fileno(), select.POLLIN)
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
        self.sock.settimeout(self._timeout_until(deadline))
        try:
            yield
        finally:
            if not self.closed:
                self.sock.settimeout(self.io_timeout)


    # reading
    def buffered(self) -> bool:
        """Whether bytes were already read from the socket but not yet handled (our read-ahead,
        py-amqp's partial frame, decrypted TLS data): a poll of the socket would not show them."""
        reader = self._reader
        if reader is not None:
            return reader.has_data()
        if self.transport._read_buffer:
            return True
        pending = getattr(self.sock, "pending", None)
        return bool(pending is not None and pending())

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
        hook when it takes it, else by py-amqp."""
        frame = self.transport.read_frame()
        hook = self.hook
        if hook is not None and hook(*frame):
            self.conn.bytes_recv += 1  # (py-amqp's heartbeat accounting)
            return
        self.conn.on_inbound_frame(frame)

    def write(self, data: bytes) -> None:
        """Write ready-made frames (the caller owns the link, so nobody writes meanwhile)."""
        self.transport.write(data)
        self.conn.bytes_sent += 1

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
        _collect(self.kconn)

    def abort(self) -> None:
        """Drop the connection without talking to the broker (it is broken)."""
        if self.closed:
            return
        self.closed = True
        _collect(self.kconn)


class RetryBudget:
    """How many more times to try, and how long to wait before the next try.

    ``retry`` None retries forever, 0 never, N at most N times; ``deadline`` (monotonic) bounds
    the total time as well; ``stop`` (an Event) aborts the wait with :class:`Stopped`.
    """

    def __init__(self, settings: Settings, retry: int | None, deadline: float | None = None,
                 stop: threading.Event | None = None) -> None:
        self.retry = None if retry is None or retry < 0 else retry
        self.deadline = deadline
        self.stop = stop
        self.failures = 0
        self._settings = settings
        self._delays: Iterator[float] | None = None  # made on the first failure only

    def exhausted(self) -> bool:
        """True when no further try is allowed (after :meth:`failed`)."""
        if self.retry is not None and self.failures > self.retry:
            return True
        return self.deadline is not None and time.monotonic() >= self.deadline

    def failed(self) -> bool:
        """Count a failure; wait out the backoff and return True to try again, False if spent."""
        self.failures += 1
        if self.exhausted():
            return False
        if self._delays is None:
            self._delays = reconnect_delays(self._settings.amqp)
        delay = next(self._delays)
        if self.deadline is not None:
            delay = min(delay, max(0.0, self.deadline - time.monotonic()))
        if self.stop is not None:
            if self.stop.wait(delay):
                raise Stopped()
        else:
            time.sleep(delay)
        return not (self.deadline is not None and time.monotonic() >= self.deadline)
