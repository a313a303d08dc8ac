"""Transport: one driver instance behind the client and server APIs, chosen by URL scheme."""

from __future__ import annotations

import logging
import threading
import time
from typing import TYPE_CHECKING, Any, Iterable, Sequence

from oslo_config import cfg

from msgbus import options
from msgbus.arguments import check_conf
from msgbus.driver.base import Capability, Driver, Listener, OnMessage, expand_capabilities
from msgbus.driver.loader import driver_entry, load_driver_class
from msgbus.exceptions import DriverLoadFailure, InvalidTransportURL, TransportClosedError
from msgbus.target import Target
from msgbus.transport_url import TransportHost, TransportURL

if TYPE_CHECKING:
    from msgbus.executors.send_pool import SendPool
    from msgbus.rpc.reply_retry import ReplyRetrier
    from msgbus.rpc.reply_waiter import ReplyWaiter

LOG = logging.getLogger(__name__)

__all__ = ["Transport", "RPCTransport", "NotificationTransport", "TransportOptions",
           "TransportURL", "TransportHost", "get_transport", "get_rpc_transport",
           "set_transport_defaults", "normalize_retry"]


def normalize_retry(retry: int | None) -> int | None:
    """The one meaning of ``retry`` (oslo.messaging's): None or negative retries forever
    (returned as None), 0 never, N at most N times. Drivers only ever see the result."""
    if retry is None:
        return None
    if isinstance(retry, bool) or not isinstance(retry, int):
        raise TypeError(f"retry must be an int or None (None or -1: retry forever, 0: never, "
                        f"N: at most N times), not {retry!r}")
    return None if retry < 0 else retry


class TransportOptions:
    """Per-call delivery options: ``at_least_once`` makes sends mandatory (no silent loss)."""

    def __init__(self, at_least_once: bool = False) -> None:
        self.at_least_once = at_least_once


class Transport:
    """A messaging transport: the configured driver plus what the core shares across clients.

    Users get one from :func:`get_rpc_transport` or :func:`get_notification_transport`; clients
    and servers built on the same transport share its connections and its reply address.
    """

    def __init__(self, driver: Driver, conf: cfg.ConfigOpts,
                 allowed_remote_exmods: Iterable[str] = ()) -> None:
        self._driver = driver
        self.conf = conf
        self.url = driver.url
        self.allowed_remote_exmods = list(allowed_remote_exmods)
        self._lock = threading.Lock()
        self._reply_waiter: ReplyWaiter | None = None
        self._reply_retrier: ReplyRetrier | None = None
        self._send_pool: SendPool | None = None
        self._closed = False
        #: whether the driver takes ``deadline=`` (interface version 2 and later)
        self._deadlines = getattr(driver, "api_version", 1) >= 2
        self._capabilities = expand_capabilities(driver.capabilities)

    @property
    def driver(self) -> Driver:
        return self._driver

    @property
    def capabilities(self) -> frozenset[Capability]:
        return self._capabilities

    @property
    def closed(self) -> bool:
        """Whether :meth:`cleanup` was called: nothing can be sent or started any more."""
        return self._closed

    def _check_open(self, what: str) -> None:
        if self._closed:
            raise TransportClosedError(f"cannot {what}: transport {self.url.masked} was closed "
                                       "(cleanup() was called); make a new one with "
                                       "get_rpc_transport() or get_notification_transport()")

    def _deadline(self, deadline: float | None) -> dict[str, Any]:
        """The ``deadline`` keyword for the driver (none for interface version 1 drivers)."""
        return {"deadline": deadline} if self._deadlines else {}

    def _resolve(self, target: Target) -> Target:
        if target.exchange:
            return target
        return target(exchange=self._driver.default_exchange)

    # used by the RPC client
    def reply_waiter(self, deadline: float | None = None) -> "ReplyWaiter":
        """The transport's one reply waiter, made (with its reply address) on first use; the
        first call's ``deadline`` bounds setting it up."""
        waiter = self._reply_waiter
        if waiter is not None:
            return waiter
        self._check_open("call")
        with self._lock:
            if self._reply_waiter is None:
                from msgbus.rpc.reply_waiter import ReplyWaiter
                self._reply_waiter = ReplyWaiter(
                    self._driver, self.allowed_remote_exmods,
                    window=self.conf.rpc_duplicate_window, listen_kwargs=self._deadline(deadline))
            return self._reply_waiter

    def send(self, target: Target, body: bytes, *, ttl: float | None = None,
             retry: int | None = None, mandatory: bool = False,
             deadline: float | None = None) -> None:
        """Publish an RPC request body to ``target``; ``deadline`` (monotonic) bounds it."""
        self._check_open("send")
        self._driver.send(self._resolve(target), body, ttl=ttl, retry=normalize_retry(retry),
                          mandatory=mandatory, **self._deadline(deadline))

    def send_reply(self, reply_address: str, body: bytes, *, retry: int | None = None,
                   deadline: float | None = None) -> None:
        """Publish a reply body to a caller's reply address (one try if it does not exist)."""
        self._check_open("send a reply")
        self._driver.send_reply(reply_address, body, retry=normalize_retry(retry),
                                **self._deadline(deadline))

    def reply_retrier(self) -> "ReplyRetrier":
        """Sends again, in the background, replies whose reply queue did not exist yet."""
        retrier = self._reply_retrier
        if retrier is not None:
            return retrier
        with self._lock:
            if self._reply_retrier is None:
                from msgbus.rpc.reply_retry import ReplyRetrier
                self._reply_retrier = ReplyRetrier(self.send_reply,
                                                   self.conf.reply_missing_queue_timeout)
            return self._reply_retrier

    def send_pool(self) -> "SendPool":
        """Threads that send for asyncio code (awaited calls and casts of every client on this
        transport: a driver's send blocks until the broker confirms), made on first use and
        shut down by :meth:`cleanup`."""
        pool = self._send_pool
        if pool is not None:
            return pool
        self._check_open("send")
        with self._lock:
            if self._send_pool is None:
                from msgbus.executors.send_pool import SendPool, send_threads
                self._send_pool = SendPool(send_threads(self.conf))
            return self._send_pool

    def send_notification(self, target: Target, body: bytes, *, retry: int | None = None,
                          deadline: float | None = None) -> None:
        """Publish a notification body (``target.topic`` is ``<topic>.<priority>``)."""
        self._check_open("send a notification")
        self._driver.send_notification(self._resolve(target), body,
                                       retry=normalize_retry(retry), **self._deadline(deadline))

    # used by servers and listeners
    def _listen_deadline(self) -> dict[str, Any]:
        return self._deadline(time.monotonic() + self.conf.listen_timeout)

    def listen(self, target: Target, on_message: OnMessage) -> Listener:
        """Consume an RPC server's queues; fails after ``listen_timeout`` without the broker."""
        self._check_open("start a server")
        return self._driver.listen(self._resolve(target), on_message, **self._listen_deadline())

    def listen_for_notifications(self, targets: Sequence[Target], pool: str | None,
                                 on_message: OnMessage) -> Listener:
        """Consume notification queues; fails after ``listen_timeout`` without the broker."""
        self._check_open("start a notification listener")
        return self._driver.listen_for_notifications([self._resolve(t) for t in targets],
                                                     pool, on_message, **self._listen_deadline())

    def cleanup(self) -> None:
        """Close the driver: listeners stop, private queues go, connections close. Afterwards
        every send, call and server start on this transport raises TransportClosedError."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            waiter, self._reply_waiter = self._reply_waiter, None
            retrier, self._reply_retrier = self._reply_retrier, None
            pool, self._send_pool = self._send_pool, None
        if pool is not None:  # sends still queued run and fail: the transport is closed
            pool.shutdown(wait=False)
        if waiter is not None:
            waiter.close()
        if retrier is not None:
            retrier.close()
        self._driver.close()

    def __enter__(self) -> "Transport":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.cleanup()

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.url.masked}>"


class RPCTransport(Transport):
    """A transport meant for RPC."""


class NotificationTransport(Transport):
    """A transport meant for notifications."""


def set_transport_defaults(control_exchange: str) -> None:
    """Set the default of the ``control_exchange`` option (the exchange of unnamed targets)."""
    cfg.set_defaults(options.transport_opts, control_exchange=control_exchange)


def _make(cls: type[Transport], conf: cfg.ConfigOpts | None,
          url: "str | TransportURL | None", allowed_remote_exmods: Iterable[str] | None,
          url_option: str = "transport_url") -> Transport:
    conf = options.register_opts(conf) if conf is not None else options.new_conf()
    options.warn_unsupported_metrics(conf)
    if url is None:
        url = getattr(conf, url_option, None) or conf.transport_url
    if url is None:
        raise InvalidTransportURL("None", "no transport URL: pass url= (for example "
                                  "'rabbit://user:pass@host:5672/' or 'fake://') or set the "
                                  "transport_url option")
    parsed = TransportURL.parse(conf, url)
    scheme = parsed.transport
    if not scheme:
        raise InvalidTransportURL(parsed.masked, "the URL names no transport (scheme://...)")
    driver_cls = load_driver_class(scheme)
    try:
        driver = driver_cls(conf, parsed, conf.control_exchange)
    except (DriverLoadFailure, InvalidTransportURL):
        raise
    except Exception as exc:
        raise DriverLoadFailure(scheme, _constructor_failure(scheme, driver_cls, exc)) from exc
    return cls(driver, conf, allowed_remote_exmods or ())


def _constructor_failure(scheme: str, driver_cls: type, exc: Exception) -> str:
    """Why a driver's constructor failed, naming the class and where it was installed from."""
    entry = driver_entry(scheme)
    where = f" ({entry.origin})" if entry else ""
    return (f"{driver_cls.__module__}.{driver_cls.__qualname__}{where} raised "
            f"{type(exc).__name__} while the transport was being made: {exc}")


def get_rpc_transport(conf: cfg.ConfigOpts | None = None,
                      url: "str | TransportURL | None" = None,
                      allowed_remote_exmods: Iterable[str] | None = None) -> RPCTransport:
    """A transport for RPC clients and servers; ``conf`` is optional, ``url`` picks the driver.

    ``allowed_remote_exmods`` lists the modules whose exceptions a client may rebuild from a
    remote failure (builtins and msgbus's own always are).
    """
    check_conf(conf, "get_rpc_transport")
    return _make(RPCTransport, conf, url, allowed_remote_exmods)  # type: ignore[return-value]


def get_transport(conf: cfg.ConfigOpts | None = None, url: "str | TransportURL | None" = None,
                  allowed_remote_exmods: Iterable[str] | None = None) -> Transport:
    """Same as :func:`get_rpc_transport` (oslo.messaging's older name)."""
    check_conf(conf, "get_transport")
    return _make(Transport, conf, url, allowed_remote_exmods)
