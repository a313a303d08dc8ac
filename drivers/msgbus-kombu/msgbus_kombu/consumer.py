"""Connection life of a consumer: one connection and one thread per listener, restored after
every reconnect.

A :class:`ConsumerThread` declares its queues (with their exchanges and bindings), consumes them
and hands each delivery to the listener callback on its own thread. It reconnects with backoff
(failing over across the URL's hosts) and then declares and consumes again, so a server keeps
serving through a broker restart; stopping cancels the consumers, deletes private queues and
lets late acknowledgements through before closing.

``start`` waits for the first setup within the listen's deadline; after that the thread
reconnects forever, every ~0.1 s at first (:func:`msgbus.driver.amqp.reconnect_delays`).
The read loop and the hand-off of deliveries are :mod:`msgbus_kombu.consuming`; batched
acknowledgements (from any thread) are :mod:`msgbus_kombu.acks`.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

import amqp.exceptions

from msgbus.driver.amqp import QUEUE_RECHECK_AFTER_RECONNECT, QueueSpec, reconnect_delays
from msgbus.driver.base import IncomingMessage, Listener
from msgbus.exceptions import ConfigurationError, MessageDeliveryFailure, MessagingException
from msgbus_kombu.connection import LINK_ERRORS, ConnectFailed, Connector
from msgbus_kombu.consuming import Consuming
from msgbus_kombu.link import CHANNEL_ERRORS, CONNECTION_ERRORS, Link
from msgbus_kombu.options import Settings
from msgbus_kombu.recheck import QueueVanished, missing_queue

LOG = logging.getLogger(__name__)

#: A connection that lived this long (seconds) was healthy: reconnecting starts a new backoff.
_HEALTHY_SECONDS = 5.0
#: While the broker stays unreachable, one failed attempt in this many is logged as an error
#: (about one every 10 s during the fast reconnection phase; the others at debug level).
_LOG_EVERY = 100

#: Errors at connection time that retrying will not fix (credentials, vhost, permissions).
FATAL_CONNECT_ERRORS = (amqp.exceptions.AccessRefused, amqp.exceptions.NotAllowed)


class ConsumerThread(Consuming):
    """A connection consuming ``queues`` for one listener, on its own thread.

    ``private`` names the queues that belong to this listener alone (those whose QueueSpec is
    private: a per-listener fanout queue, the reply queue): they are deleted when it stops
    (:meth:`keep_queue` takes one out). ``no_ack`` consumes without acknowledgements (replies).
    """

    def __init__(self, connector: Connector, settings: Settings, queues: Sequence[QueueSpec],
                 on_message: Callable[[IncomingMessage], None], *, purpose: str,
                 private: Sequence[str] = (), no_ack: bool = False,
                 driver_stop: threading.Event | None = None) -> None:
        self.purpose = purpose
        self._connector = connector
        self._settings = settings
        self._queues = list(queues)
        self._names = list(dict.fromkeys(q.name for q in self._queues))
        #: basic.consume arguments per queue (x-stream-offset, x-cancel-on-ha-failover)
        self._consume_args: dict[str, dict[str, Any] | None] = {}
        for q in reversed(self._queues):
            self._consume_args[q.name] = dict(q.consumer_arguments) or None
        self._private = list(private)
        self._on_message = on_message
        self._no_ack = no_ack
        self._driver_stop = driver_stop
        self._stop = threading.Event()
        self._ready = threading.Event()
        self._callbacks_done = threading.Event()
        self._first_error: BaseException | None = None
        self._last_error: BaseException | None = None
        self._start_deadline: float | None = None
        self._declared_once = False
        self._link: Link | None = None
        self._generation = 0
        self._ident: int | None = None
        self._channel_id = 0
        self._init_consuming()
        self._init_acks(settings.amqp.prefetch)
        self._thread = threading.Thread(target=self._run, name=f"msgbus-kombu-{purpose}",
                                        daemon=True)

    # lifecycle
    def start(self, deadline: float | None = None,
              late: type[MessagingException] = MessageDeliveryFailure) -> None:
        """Start the thread and return once its queues are declared, bound and consumed.

        ``deadline`` (monotonic) bounds the wait and the first setup: then the thread is told
        to end and ``late`` is raised, naming the broker and the last error (a fatal first
        error, such as refused credentials, is raised at once)."""
        self._start_deadline = deadline
        self._thread.start()
        while not self._ready.is_set():
            left = 0.5 if deadline is None else min(0.5, deadline - time.monotonic())
            if left <= 0 or self._ready.wait(left):
                break
            if self._first_error is not None or not self._thread.is_alive() or \
                    self._stopping():
                break
        if self._ready.is_set():
            return
        # No callback ran: tell the thread to end, without waiting for a connect in progress.
        self._stop.set()
        self._wake()
        error = self._first_error
        if isinstance(error, MessagingException):
            raise error
        if self._driver_stop is not None and self._driver_stop.is_set():
            raise MessageDeliveryFailure(f"{self.purpose}: the transport was closed while "
                                         "starting to consume")
        last = self._last_error
        waited = "" if deadline is None else " in time"
        raise late(
            f"{self.purpose}: could not consume from the AMQP broker at "
            f"{self._connector.describe()}{waited}: "
            f"{last if last is not None else 'no answer from the broker yet'}")

    @property
    def ready(self) -> bool:
        return self._ready.is_set()

    def stop(self) -> None:
        """Stop consuming; returns when no callback is running or will start.

        Deliveries already handed out can still be settled for ``listener_drain_timeout``
        seconds, then the connection closes (unsettled ones go back to their queue).
        """
        self._stop.set()
        self._wake()
        if threading.get_ident() == self._ident or not self._thread.is_alive():
            return
        waited = 0.0
        while not self._callbacks_done.wait(30.0):
            waited += 30.0
            if not self._thread.is_alive():
                break
            LOG.warning("%s: still waiting after %.0fs for a listener callback to return",
                        self.purpose, waited)

    def _is_stream(self, name: str) -> bool:
        args = self._consume_args[name]
        return args is not None and "x-stream-offset" in args

    def _stream_tags_wanted(self) -> bool:
        return any(self._is_stream(name) for name in self._names)

    def _consume_arguments(self, name: str) -> dict[str, Any] | None:
        """basic.consume arguments of queue ``name``: a stream is read on from the offset after
        the last delivery seen (as oslo.messaging does), from its spec's offset at first."""
        args = self._consume_args[name]
        if name in self._stream_next and args is not None:
            return {**args, "x-stream-offset": self._stream_next[name]}
        return args

    def keep_queue(self, name: str) -> None:
        """Leave queue ``name`` to the broker when stopping (its x-expires drops it) instead of
        deleting it: a reply queue a late reply may still be routed to. Call before stop()."""
        self._private = [n for n in self._private if n != name]

    def join(self, timeout: float) -> None:
        """Wait for the thread to end (after :meth:`stop`)."""
        if self._thread.is_alive() and threading.get_ident() != self._ident:
            self._thread.join(timeout)

    def _wait(self, seconds: float) -> bool:
        """Sleep ``seconds`` unless stopped first; True when stopping."""
        deadline = time.monotonic() + seconds
        while True:
            if self._stopping():
                return True
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            self._stop.wait(min(left, 0.25))

    # the thread
    def _run(self) -> None:
        self._ident = threading.get_ident()
        delays = reconnect_delays(self._settings.amqp)
        failures = 0  # in a row, for the log: the first, then one in _LOG_EVERY
        try:
            while not self._stopping():
                try:
                    link = self._setup()
                except LINK_ERRORS as exc:
                    self._last_error = exc
                    if self._handle_setup_error(exc):
                        return
                    delay = next(delays)
                    failures += 1
                    LOG.log(logging.ERROR if failures % _LOG_EVERY == 1 else logging.DEBUG,
                            "%s: cannot consume from the AMQP broker at %s: %s; retrying in "
                            "%.1fs (attempt %d)", self.purpose, self._connector.describe(), exc,
                            delay, failures)
                    if self._wait(delay):
                        return
                    continue
                except Exception:  # a bug or an odd broker answer: log it, try again later
                    delay = next(delays)
                    LOG.exception("%s: unexpected error setting up consumers; retrying in "
                                  "%.1fs", self.purpose, delay)
                    if self._wait(delay):
                        return
                    continue
                failures = 0
                connected_at = time.monotonic()
                if self._ready.is_set():
                    LOG.info("%s: consuming again from %s after reconnecting", self.purpose,
                             link.endpoint.describe())
                    self._rechecks = [connected_at + d for d in QUEUE_RECHECK_AFTER_RECONNECT]
                self._ready.set()
                try:
                    self._serve(link)
                except Exception as exc:  # noqa: BLE001 - the thread must live on
                    self._link = None
                    link.abort()
                    if isinstance(exc, amqp.exceptions.ConsumerCancelled):
                        # the broker cancelled us (a deleted queue): a stream made anew has
                        # offsets of its own, so read it from its end again (as oslo does)
                        self._stream_next.clear()
                    if self._stopping():
                        return
                    if isinstance(exc, (*CONNECTION_ERRORS, *CHANNEL_ERRORS)):
                        LOG.warning("%s: connection to %s lost (%s); reconnecting",
                                    self.purpose, link.endpoint.describe(), exc)
                    else:
                        LOG.exception("%s: unexpected error while consuming; reconnecting",
                                      self.purpose)
                    if time.monotonic() - connected_at > _HEALTHY_SECONDS:
                        delays = reconnect_delays(self._settings.amqp)  # a fresh backoff
                    else:  # lost again right away: do not hammer the broker
                        if self._wait(next(delays)):
                            return
                    continue
                self._finish(link)
                return
        except Exception:
            LOG.exception("%s: consumer thread failed", self.purpose)
        finally:
            self._callbacks_done.set()
            if self._link is not None:
                self._link.abort()
                self._link = None
            self._delete_private_elsewhere()
            self._close_pipe()

    def _recheck_queues(self) -> None:
        """From the read loop, when a check is due after a reconnect: ask the broker on a
        thread of its own (see :mod:`msgbus_kombu.recheck`), so the loop never waits for it;
        a queue found gone is reported through :meth:`_raise_if_vanished`."""
        generation = self._generation

        def check() -> None:
            missing = missing_queue(self._connector, self.purpose, self._names)
            if missing is not None and generation == self._generation:
                self._vanished = missing
                self._wake()

        threading.Thread(target=check, name=f"{self.purpose} queue check",
                         daemon=True).start()

    def _raise_if_vanished(self) -> None:
        missing, self._vanished = self._vanished, None
        if missing is not None:
            self._rechecks = []
            raise QueueVanished(f"queue {missing!r} vanished after the reconnect (a cluster "
                                f"node's clean-up after it died?); declaring it again")

    def _handle_setup_error(self, exc: BaseException) -> bool:
        """Record a first error that retrying cannot fix; True when the thread should end."""
        if self._ready.is_set():
            return False
        causes = exc.errors if isinstance(exc, ConnectFailed) else [exc]
        if (causes and all(isinstance(e, FATAL_CONNECT_ERRORS) for e in causes)) or \
                isinstance(exc, CHANNEL_ERRORS):
            self._first_error = ConfigurationError(
                f"{self.purpose}: the AMQP broker at {self._connector.describe()} refused: "
                f"{exc}")
            LOG.error("%s", self._first_error)
            return True
        return False

    def _setup(self) -> Link:
        """Connect, declare, bind and consume; while :meth:`start` waits, by its deadline."""
        deadline = None if self._ready.is_set() else self._start_deadline
        link = self._connector.open(self.purpose, deadline)
        try:
            prefetch = self._settings.amqp.prefetch
            if prefetch and not self._no_ack:
                with link.bounded(deadline):
                    link.channel.basic_qos(0, prefetch, False)
            for spec in self._queues:
                link.declare_queue(spec, deadline)
            self._declared_once = True
            self._generation += 1
            self._unsettled = set()
            self._commands.clear()
            self._acks = []
            self._link = link
            self._channel_id = link.channel.channel_id
            self._use_link(link)
            self._stream_tags = {}
            with link.bounded(deadline):
                for name in self._names:
                    tag = link.channel.basic_consume(name, callback=self._on_deliver,
                                                     no_ack=self._no_ack,
                                                     arguments=self._consume_arguments(name))
                    if self._is_stream(name):
                        self._stream_tags[tag] = name
        except BaseException:
            self._link = None
            link.abort()
            raise
        return link

    def _finish(self, link: Link) -> None:
        """Stop consuming, delete private queues, let late acks through, then close."""
        try:
            for tag in list(link.channel.callbacks):
                link.channel.basic_cancel(tag)
            self._run_commands()  # settled before stop(): sent before stop() returns
            self._flush_acks()
        except (*CONNECTION_ERRORS, *CHANNEL_ERRORS) as exc:
            LOG.info("%s: cancelling consumers failed: %s", self.purpose, exc)
            self._callbacks_done.set()
            self._link = None
            link.abort()
            return
        self._callbacks_done.set()
        try:
            self._delete_private(link)
            self._linger(link)
        except (*CONNECTION_ERRORS, *CHANNEL_ERRORS) as exc:
            LOG.info("%s: connection ended while stopping: %s", self.purpose, exc)
            self._link = None
            link.abort()
            return
        self._link = None
        link.close()
        self._declared_once = False

    def _delete_private(self, link: Link) -> None:
        for name in self._private:
            link.channel.queue_delete(name)
        self._private = []

    def _delete_private_elsewhere(self) -> None:
        """Delete private queues over a short-lived connection (ours is gone)."""
        if not self._private or not self._declared_once:
            return
        try:
            link = self._connector.open(f"{self.purpose}-cleanup")
        except LINK_ERRORS as exc:
            LOG.info("%s: could not delete queue(s) %s (%s); the broker drops them after %ds "
                     "unused", self.purpose, ", ".join(self._private), exc,
                     self._settings.amqp.transient_ttl_ms // 1000)
            return
        try:
            self._delete_private(link)
        except (*CONNECTION_ERRORS, *CHANNEL_ERRORS) as exc:
            LOG.info("%s: could not delete private queues: %s", self.purpose, exc)
        finally:
            link.close()

class KombuListener(Listener):
    """What ``listen`` and ``listen_for_notifications`` return: one consumer thread."""

    def __init__(self, consumer: ConsumerThread, on_stop: Callable[[KombuListener], None]) -> None:
        self.consumer = consumer
        self._on_stop = on_stop

    def stop(self) -> None:
        self.consumer.stop()
        self._on_stop(self)
