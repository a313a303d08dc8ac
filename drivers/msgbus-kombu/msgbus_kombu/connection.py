"""Connections to the broker: the URL's hosts, failover, opening links, reconnect backoff.

A :class:`Connector` turns the transport URL into broker endpoints and opens kombu connections,
trying the hosts in failover order; each becomes a :class:`~msgbus_kombu.link.Link` (one
connection with one channel, used by one thread at a time). :class:`RetryBudget`
holds the ``retry`` rule (None: forever, 0: never, N: at most N) and the backoff between tries
(:func:`msgbus.driver.amqp.reconnect_delays`: fast first, then backing off).

Deadlines: opening a link (TCP connect, TLS, the AMQP handshake, channel open) ends by
``connect_timeout`` and by the deadline of the send or listen it is opened for; so does every
blocking exchange with the broker made under :meth:`~msgbus_kombu.link.Link.bounded`. No
message ever names a password: endpoints describe themselves as ``host:port``.
"""

from __future__ import annotations

import inspect
import itertools
import logging
import os
import random
import socket
import ssl
import threading
import time
from collections.abc import Iterator
from typing import Any

import amqp.transport
import kombu
import kombu.exceptions
import kombu.transport.pyamqp

from msgbus.driver.amqp import default_port, reconnect_delays, tls_version
from msgbus.exceptions import ConfigurationError
from msgbus.transport_url import TransportURL
from msgbus_kombu.link import CHANNEL_ERRORS, CONNECTION_ERRORS, Endpoint, Link, _collect
from msgbus_kombu.options import Settings

LOG = logging.getLogger(__name__)

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


def endpoints_from_url(url: TransportURL, ssl: bool = False) -> list[Endpoint]:
    """The URL's hosts as endpoints; missing parts default to localhost, guest/guest, ``/`` and
    5672 (over TLS too, as oslo.messaging: :func:`msgbus.driver.amqp.default_port`)."""
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
    pinned = tls_version(amqp_settings.ssl_version)
    if pinned is not None:
        if not _pins_tls_versions():
            raise ConfigurationError(
                f"ssl_version {amqp_settings.ssl_version!r} needs a py-amqp that can pin the TLS "
                "version (5.3 or later): upgrade py-amqp, or leave ssl_version empty")
        opts["tls_minimum_version"] = opts["tls_maximum_version"] = pinned
    return opts


def _pins_tls_versions() -> bool:
    """Whether the installed py-amqp takes ``tls_minimum_version``/``tls_maximum_version`` among
    its TLS options (releases since 5.3)."""
    wrap = getattr(amqp.transport.SSLTransport, "_wrap_socket_sni", None)
    return wrap is not None and "tls_maximum_version" in inspect.signature(wrap).parameters


def login_method(settings: Settings) -> str:
    """py-amqp's ``login_method`` for ``rabbit_login_method``; a ConfigurationError saying what
    to change when the driver cannot log in that way."""
    method = settings.amqp.login_method
    if method == "RABBIT-CR-DEMO":
        raise ConfigurationError("rabbit_login_method RABBIT-CR-DEMO (a RabbitMQ demo mechanism) "
                                 "is not supported by py-amqp: use AMQPLAIN, PLAIN or EXTERNAL")
    if method == "EXTERNAL" and not (settings.amqp.ssl and settings.amqp.ssl_cert_file):
        raise ConfigurationError("rabbit_login_method EXTERNAL logs in with the TLS client "
                                 "certificate: set ssl = true and ssl_cert_file")
    return method


class Connector:
    """Opens connections to the URL's hosts, failing over from one to the next."""

    def __init__(self, url: TransportURL, settings: Settings) -> None:
        self.settings = settings
        self.endpoints = endpoints_from_url(url, settings.amqp.ssl)
        self._login_method = login_method(settings)
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
            login_method=self._login_method, ssl=ssl_options(self.settings, endpoint),
            heartbeat=amqp_settings.heartbeat or 0,
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

    #: py-amqp's capabilities less ``connection.blocked``: the driver does not act on the
    #: broker's blocked notices, and while it is asked for, py-amqp's ``basic_publish`` reads
    #: the socket (a failing non-blocking read) before every message it publishes.
    negotiate_capabilities = {**kombu.transport.pyamqp.Connection.negotiate_capabilities,
                              "connection.blocked": False}

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


def _describe_error(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    return text if type(exc).__name__ in text else f"{type(exc).__name__}: {text}"


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
