"""The I/O loop of one connection: pika's selector-loop interface, with an owner lock.

pika's SelectConnection runs on any loop that implements its ``AbstractSelectorIOLoop`` interface
(the hook pika offers for tornado and the like). This one is a small loop on :mod:`selectors` with
one addition: a lock held by whoever touches the connection's pika objects. The I/O thread holds
it at all times except while it waits for events; another thread that finds the lock free (the
connection is idle) may therefore do its pika work (a publish) itself, at once, instead of
queueing it and waking the I/O thread; a thread that finds it taken hands the work over with
:meth:`add_callback` as usual. Either way pika never runs in two threads at the same time.
"""

from __future__ import annotations

import collections
import heapq
import itertools
import logging
import selectors
import socket
import threading
import time
from typing import Any, Callable

from pika.adapters.utils.selector_ioloop_adapter import AbstractSelectorIOLoop

LOG = logging.getLogger(__name__)

#: Longest wait for events when no timer is due (seconds): a safety net, not a tick.
_MAX_WAIT = 5.0


class _Timer:
    """A call scheduled by :meth:`LockingIOLoop.call_later` (the handle returned)."""

    __slots__ = ("deadline", "callback", "cancelled")

    def __init__(self, deadline: float, callback: Callable[[], Any]) -> None:
        self.deadline = deadline
        self.callback = callback
        self.cancelled = False


class LockingIOLoop(AbstractSelectorIOLoop):
    """A selector I/O loop whose owner lock lets idle-time work run in the calling thread."""

    READ = selectors.EVENT_READ
    WRITE = selectors.EVENT_WRITE
    ERROR = 4  # never reported by selectors (errors show as readable/writable)

    def __init__(self) -> None:
        #: held by the I/O thread except while it waits; others may try it for direct work
        self.lock = threading.Lock()
        self._selector = selectors.DefaultSelector()
        self._handlers: dict[int, Callable[[int, int], None]] = {}
        self._timers: list[tuple[float, int, _Timer]] = []
        self._timer_seq = itertools.count()
        self._callbacks: collections.deque[Callable[[], Any]] = collections.deque()
        self._waiting = False  # the I/O thread is (about to be) blocked in select()
        self._stopping = False
        self._closed = False
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.setblocking(False)
        self._wake_w.setblocking(False)
        self._selector.register(self._wake_r.fileno(), selectors.EVENT_READ)

    # -- thread-safe ---------------------------------------------------------------------------

    def add_callback(self, callback: Callable[[], Any]) -> None:
        """Run ``callback`` in the I/O thread soon (thread-safe)."""
        self._callbacks.append(callback)
        if self._waiting:
            self._wake()

    add_callback_threadsafe = add_callback

    def stop(self) -> None:
        """Ask :meth:`start` to return (thread-safe)."""
        self._stopping = True
        self._wake()

    def _wake(self) -> None:
        try:
            self._wake_w.send(b"\0")
        except (BlockingIOError, InterruptedError):
            pass  # a wake-up byte is already pending
        except OSError:
            pass  # closed: nobody left to wake

    # -- I/O thread or lock holder ----------------------------------------------------------------

    def call_later(self, delay: float, callback: Callable[[], Any]) -> _Timer:
        timer = _Timer(time.monotonic() + max(delay, 0.0), callback)
        heapq.heappush(self._timers, (timer.deadline, next(self._timer_seq), timer))
        if self._waiting:
            self._wake()  # a lock holder while the I/O thread waits: it must see the new timer
        return timer

    def remove_timeout(self, timeout_handle: Any) -> None:
        if isinstance(timeout_handle, _Timer):
            timeout_handle.cancelled = True

    @classmethod
    def _selector_events(cls, events: int) -> int:
        mask = 0
        if events & cls.READ:
            mask |= selectors.EVENT_READ
        if events & (cls.WRITE | cls.ERROR):
            mask |= selectors.EVENT_WRITE
        return mask

    def add_handler(self, fd: int, handler: Callable[[int, int], None], events: int) -> None:
        self._handlers[fd] = handler
        self._selector.register(fd, self._selector_events(events))

    def update_handler(self, fd: int, events: int) -> None:
        self._selector.modify(fd, self._selector_events(events))

    def remove_handler(self, fd: int) -> None:
        self._handlers.pop(fd, None)
        try:
            self._selector.unregister(fd)
        except (KeyError, ValueError):
            pass

    # -- the loop ------------------------------------------------------------------------------

    def start(self) -> None:
        """Run until :meth:`stop`, holding :attr:`lock` except while waiting for events.

        An exception from a handler, timer or callback leaves the loop (the lock released); the
        caller may start it again.
        """
        with self.lock:
            while not self._stopping:
                self._run_once()

    def _timeout(self) -> float:
        if self._callbacks:
            return 0.0
        timers = self._timers
        while timers and timers[0][2].cancelled:
            heapq.heappop(timers)
        if not timers:
            return _MAX_WAIT
        return min(max(timers[0][0] - time.monotonic(), 0.0), _MAX_WAIT)

    def _run_once(self) -> None:
        self._waiting = True
        timeout = self._timeout()  # after _waiting is set: a callback added now wakes us
        self.lock.release()
        try:
            ready = self._selector.select(timeout)
        finally:
            self.lock.acquire()
            self._waiting = False
        wake_fd = self._wake_r.fileno()
        for key, mask in ready:
            fd = key.fd
            if fd == wake_fd:
                self._drain_wakeups()
                continue
            handler = self._handlers.get(fd)
            if handler is not None:
                events = (self.READ if mask & selectors.EVENT_READ else 0) | \
                    (self.WRITE if mask & selectors.EVENT_WRITE else 0)
                handler(fd, events)
        self._run_timers()
        for _ in range(len(self._callbacks)):  # later additions wait for the next turn
            self._callbacks.popleft()()

    def _drain_wakeups(self) -> None:
        try:
            while self._wake_r.recv(4096):
                pass
        except (BlockingIOError, InterruptedError):
            pass

    def _run_timers(self) -> None:
        timers = self._timers
        now = time.monotonic()
        while timers and timers[0][0] <= now:
            timer = heapq.heappop(timers)[2]
            if not timer.cancelled:
                timer.cancelled = True
                timer.callback()

    def close(self) -> None:
        """Release the loop's resources (after :meth:`start` returned)."""
        if self._closed:
            return
        self._closed = True
        self._selector.close()
        self._wake_r.close()
        self._wake_w.close()
        self._callbacks.clear()
        self._timers.clear()
