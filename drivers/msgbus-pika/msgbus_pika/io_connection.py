"""One AMQP connection and the thread that runs its pika I/O loop.

pika connections are not thread-safe, so every pika object of a connection (the connection, its
channels, consumers and publishes) is touched only by the connection's own I/O thread, which runs
pika's SelectConnection on a private IOLoop. Other threads hand work over with :meth:`call_soon`
(a queue plus one wake-up of the loop) and wait on futures or locks that the I/O thread settles.

The I/O thread also keeps the connection up: it connects lazily, walks the URL's hosts in turn
(:func:`msgbus.driver.amqp.host_order`), waits :func:`~msgbus.driver.amqp.reconnect_delays` between
rounds of failed attempts, and tells its observers (a publisher, a consumer) when the connection
opens, when it is lost and when an attempt fails, so that they can restore their channels.

Reconnection timing: a connection that was lost after it had been up a while is opened again at
once; while attempts fail, they follow ``reconnect_delays`` (every ~0.1 s during the first
``reconnect_fast_period``, then backing off), so a broker that is back is used again within a
fraction of a second. Those delays start over only once a connection has stayed up for
``_MIN_HEALTHY_SECONDS``: a broker that accepts connections and drops them at once is therefore
tried less and less often, not ten times a second for ever. (Before the fast phase, the delays
grew 1 s, 3 s, 5 s, 7 s, ... from the start of an outage: attempts at about 0, 1, 4, 9, 16 and
25 s, so a broker whose restart took 10 s was used again up to 6 s after it was back.)
"""

from __future__ import annotations

import collections
import concurrent.futures
import enum
import logging
import ssl
import threading
import time
from typing import Any, Callable, Protocol

from pika.adapters.select_connection import SelectConnection

from msgbus.driver.amqp import host_order, reconnect_delays
from msgbus.transport_url import TransportHost
from msgbus_pika.errors import describe_error
from msgbus_pika.io_loop import LockingIOLoop
from msgbus_pika.options import PikaSettings
from msgbus_pika.parameters import address, connection_parameters
from msgbus_pika import select_connection

LOG = logging.getLogger(__name__)

#: While attempts fail (every ~0.1 s at first), one WARNING this often; the others at DEBUG.
_WARN_EVERY = 10.0
#: A connection that dies sooner than this after opening is re-opened only after a back-off
#: delay, and only one that lived longer starts the reconnect delays over (see above).
_MIN_HEALTHY_SECONDS = 1.0


class State(enum.Enum):
    """Where the connection stands; changed only by the I/O thread."""

    IDLE = "idle"              # not started
    CONNECTING = "connecting"  # an attempt is in progress
    OPEN = "open"
    BACKOFF = "backoff"        # waiting before the next attempt
    CLOSED = "closed"          # close() was called


class Observer(Protocol):
    """What a publisher or consumer learns about its connection (called in the I/O thread)."""

    def on_open(self, connection: SelectConnection) -> None:
        """The connection opened (first time or after a loss): set up channels."""

    def on_lost(self, reason: BaseException) -> None:
        """An open connection was lost; a reconnection follows."""

    def on_attempt_failed(self, error: str) -> None:
        """A connection attempt failed (``error`` names the broker address, no password)."""

    def on_closing(self) -> None:
        """close() was called: fail or finish whatever is pending."""


class IoConnection:
    """A pika SelectConnection kept open by its own I/O thread, with thread-safe hand-off."""

    def __init__(self, settings: PikaSettings, hosts: list[TransportHost], vhost: str,
                 context: ssl.SSLContext | None, name: str) -> None:
        self.settings = settings
        self.name = name
        self._hosts_list = hosts
        self._vhost = vhost
        self._context = context
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._thread_ident: int | None = None
        self._ioloop: LockingIOLoop | None = None
        self._closed = False
        self._jobs: collections.deque[Callable[[], None]] = collections.deque()
        self._wake_pending = False
        self._observers: list[Observer] = []
        # I/O thread state
        self.state = State.IDLE
        self.connection: SelectConnection | None = None  # only while OPEN
        self._attempt: SelectConnection | None = None    # opening or open
        self._hosts = host_order(hosts)
        self._delays = reconnect_delays(settings.amqp)
        self._round_failures = 0
        self._opened_at = 0.0
        self._timer: Any = None
        self._ever_opened = False
        #: the broker address of the current or last attempt (never a password)
        self.address = address(settings, hosts[0]) if hosts else "?"
        #: the reason of the last failed attempt or loss, for error messages
        self.last_error = ""
        #: connection attempts that failed since the connection was last open
        self.failed_attempts = 0
        self._warned_at = 0.0

    # -- any thread ---------------------------------------------------------------------------

    def add_observer(self, observer: Observer) -> None:
        """Register an observer; call before :meth:`start`."""
        self._observers.append(observer)

    @property
    def closed(self) -> bool:
        return self._closed

    def in_loop_thread(self) -> bool:
        """True when called from this connection's I/O thread."""
        return threading.get_ident() == self._thread_ident

    def start(self) -> None:
        """Start the I/O thread and the first connection attempt (idempotent)."""
        with self._lock:
            if self._thread is not None or self._closed:
                return
            self._ioloop = LockingIOLoop()
            self._thread = threading.Thread(target=self._run, name=f"msgbus-pika {self.name}",
                                            daemon=True)
            self._ioloop.add_callback(self._connect)
            self._thread.start()

    def call_soon(self, fn: Callable[[], None]) -> None:
        """Run ``fn()`` in the I/O thread, soon; exceptions are logged there. Thread-safe."""
        loop = self._ioloop
        if loop is None:
            self.start()
            loop = self._ioloop
        self._jobs.append(fn)
        # One wake-up per batch: the I/O thread clears the flag before it drains the queue, and
        # a caller appends before it reads the flag, so a job is never left behind.
        if not self._wake_pending and loop is not None:
            self._wake_pending = True
            loop.add_callback(self._drain)

    def try_run_now(self, fn: Callable[[], None]) -> bool:
        """Run ``fn()`` in this thread if the connection is idle (its loop lock is free and no
        handed-over work is queued), else return False and do nothing. Thread-safe.

        The I/O thread holds the lock except while it waits for events, so ``fn`` never runs
        alongside it; ``fn`` may publish but must not block.
        """
        if threading.get_ident() == self._thread_ident:
            fn()
            return True
        loop = self._ioloop
        if loop is None or self._jobs or not loop.lock.acquire(blocking=False):
            return False
        try:
            fn()
        finally:
            loop.lock.release()
        return True

    def run_in_loop(self, fn: Callable[[], None]) -> None:
        """Run ``fn()`` now when already in the I/O thread, else hand it over."""
        if threading.get_ident() == self._thread_ident:
            fn()
        else:
            self.call_soon(fn)

    def submit(self, fn: Callable[[concurrent.futures.Future], None]) -> concurrent.futures.Future:
        """Call ``fn(future)`` in the I/O thread; ``fn`` (or a callback it arms) settles it."""
        future: concurrent.futures.Future = concurrent.futures.Future()

        def run() -> None:
            try:
                fn(future)
            except Exception as exc:  # settle rather than leave the caller waiting
                if not future.done():
                    future.set_exception(exc)

        self.call_soon(run)
        return future

    def close(self, timeout: float | None = None, join: float | None = None) -> None:
        """Close the connection and end the I/O thread: the broker gets up to ``timeout``
        seconds to confirm, and this waits up to ``join`` seconds (default ``timeout`` + 1) for
        the thread to end."""
        timeout = self.settings.shutdown_timeout if timeout is None else timeout
        join = timeout + 1.0 if join is None else join
        with self._lock:
            already = self._closed
            self._closed = True
            thread = self._thread
        if thread is None:
            return
        if not already:
            self.call_soon(lambda: self._shutdown(timeout))
        if not self.in_loop_thread() and join > 0:
            thread.join(join)
            if thread.is_alive():
                LOG.log(logging.WARNING if join >= timeout else logging.DEBUG,
                        "%s: I/O thread did not end within %.1fs", self.name, join)

    # -- I/O thread (or a thread inside try_run_now) -------------------------------------------

    def call_later(self, delay: float, fn: Callable[[], None]) -> Any:
        """Schedule ``fn`` in the I/O thread after ``delay`` seconds; returns a handle."""
        assert self._ioloop is not None
        return self._ioloop.call_later(delay, fn)

    def remove_timeout(self, handle: Any) -> None:
        if self._ioloop is not None and handle is not None:
            self._ioloop.remove_timeout(handle)

    def _run(self) -> None:
        self._thread_ident = threading.get_ident()
        loop = self._ioloop
        assert loop is not None
        try:
            while True:
                try:
                    loop.start()
                    break
                except Exception as exc:
                    if self.state is State.CLOSED:
                        LOG.exception("%s: error in the pika I/O loop while closing", self.name)
                        break
                    if self.state is State.CONNECTING:
                        LOG.warning("%s: connection attempt to %s failed inside pika (%s); "
                                    "aborting it", self.name, self.address, describe_error(exc))
                        with loop.lock:
                            self._abort_attempt()
                    else:
                        LOG.exception("%s: unexpected error in the pika I/O loop; carrying on",
                                      self.name)
        finally:
            with loop.lock:
                self._drop_jobs()
            loop.close()

    def _abort_attempt(self) -> None:
        """After an error escaped pika while connecting (pika 1.3/1.4 raise from a socket that
        is reset between connect() and getpeername(), e.g. a broker still booting), abort the
        attempt: pika's workflow would otherwise wait for its stack timeout (twice
        ``connect_timeout``) before it reports a failure and the next attempt can start."""
        attempt = self._attempt
        if attempt is None or attempt.is_closing or attempt.is_closed:
            return
        try:
            attempt.close()  # reported as a failed attempt: _on_open_error follows
        except Exception as exc:
            LOG.debug("%s: aborting the attempt failed: %s", self.name, describe_error(exc))

    def _drop_jobs(self) -> None:
        # Jobs handed over after the loop ended: run them so that nothing waits forever; they see
        # the CLOSED state and fail their work.
        while self._jobs:
            self._safe(self._jobs.popleft())

    def _safe(self, fn: Callable[[], None]) -> None:
        try:
            fn()
        except Exception:
            LOG.exception("%s: error in a task of the I/O thread", self.name)

    def _drain(self) -> None:
        self._wake_pending = False
        jobs = self._jobs
        while jobs:
            self._safe(jobs.popleft())

    def _notify(self, method: str, *args: Any) -> None:
        for observer in self._observers:
            try:
                getattr(observer, method)(*args)
            except Exception:
                LOG.exception("%s: error in %s.%s", self.name, type(observer).__name__, method)

    def _connect(self) -> None:
        self._timer = None
        if self.state is State.CLOSED:
            return
        host = next(self._hosts)
        self.address = address(self.settings, host)
        self.state = State.CONNECTING
        try:
            params = connection_parameters(self.settings, host, self._vhost, self._context,
                                           self.name)
            self._attempt = select_connection.connection_class(self.settings.fast_path)(
                params, on_open_callback=self._on_open, on_open_error_callback=self._on_open_error,
                on_close_callback=self._on_closed, custom_ioloop=self._ioloop)
        except Exception as exc:
            self._attempt = None
            self._on_open_error(None, exc)

    def _on_open(self, connection: SelectConnection) -> None:
        if self.state is State.CLOSED:
            return
        self.state = State.OPEN
        self.connection = connection
        self._round_failures = 0
        self.failed_attempts = 0
        self._opened_at = time.monotonic()
        if self._ever_opened:
            LOG.info("%s: reconnected to %s", self.name, self.address)
        else:
            LOG.debug("%s: connected to %s", self.name, self.address)
        self._ever_opened = True
        self._notify("on_open", connection)

    def _next_delay(self) -> float:
        self._round_failures += 1
        if self._round_failures < len(self._hosts_list):
            return 0.0  # fail over to the next host at once
        self._round_failures = 0
        return next(self._delays)

    def _on_open_error(self, connection: Any, error: BaseException) -> None:
        self._attempt = None
        if self.state is State.CLOSED:
            self._stop_loop()
            return
        self.last_error = f"{self.address}: {describe_error(error)}"
        self.failed_attempts += 1
        delay = self._next_delay()
        now = time.monotonic()
        level = logging.DEBUG
        if self.failed_attempts == 1 or now - self._warned_at >= _WARN_EVERY:
            level, self._warned_at = logging.WARNING, now
        LOG.log(level, "%s: cannot connect to %s (%s; %d failed attempt(s)); next attempt in "
                "%.1fs", self.name, self.address, describe_error(error), self.failed_attempts,
                delay)
        self.state = State.BACKOFF
        self._notify("on_attempt_failed", self.last_error)
        if self.state is State.BACKOFF:
            self._timer = self.call_later(delay, self._connect)

    def _on_closed(self, connection: SelectConnection, reason: BaseException) -> None:
        self.connection = None
        self._attempt = None
        if self.state is State.CLOSED:
            self._stop_loop()
            return
        self.last_error = f"{self.address}: connection lost ({describe_error(reason)})"
        if time.monotonic() - self._opened_at < _MIN_HEALTHY_SECONDS:
            delay = next(self._delays)
        else:  # a healthy connection: reconnect at once, and count an outage from here
            self._delays = reconnect_delays(self.settings.amqp)
            delay = 0.0
        LOG.warning("%s: connection to %s lost (%s); reconnecting%s", self.name, self.address,
                    describe_error(reason), f" in {delay:.1f}s" if delay else "")
        self.state = State.BACKOFF
        self._notify("on_lost", reason)
        if self.state is State.BACKOFF:
            self._timer = self.call_later(delay, self._connect)

    def _shutdown(self, timeout: float) -> None:
        previous, self.state = self.state, State.CLOSED
        self.remove_timeout(self._timer)
        self._timer = None
        self._notify("on_closing")
        attempt = self._attempt
        if previous in (State.OPEN, State.CONNECTING) and attempt is not None \
                and not (attempt.is_closing or attempt.is_closed):
            try:
                attempt.close()
            except Exception as exc:
                LOG.debug("%s: close failed: %s", self.name, describe_error(exc))
                self._stop_loop()
                return
            # If the broker does not answer Connection.Close, stop anyway.
            self.call_later(timeout, self._stop_loop)
        else:
            self._stop_loop()

    def _stop_loop(self) -> None:
        if self._ioloop is not None:
            self._ioloop.stop()
