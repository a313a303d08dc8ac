"""Threads for the driver calls of asyncio code: bounded, started on demand, gone when idle.

A driver's send blocks until the broker confirms it, so awaited calls and casts (and an
``asyncio`` server's replies and acks) run off the event loop. The loop's default executor is
too small for that (``min(32, cpus + 4)`` threads: six on two cores, so six sends in flight)
and is the application's; a :class:`SendPool` has about as many threads as the AMQP drivers
keep send connections (``rpc_conn_pool_size``), starts them only while work waits for one, and
lets each end after a while without work. Work is fire-and-forget (no Future per send): the
caller hands over a function that reports its own outcome.
"""

from __future__ import annotations

import collections
import logging
import threading
from typing import Any, Callable

LOG = logging.getLogger(__name__)

__all__ = ["SendPool", "DEFAULT_SEND_THREADS", "IDLE_SECONDS", "send_threads"]

#: Threads when the transport's configuration names no ``rpc_conn_pool_size`` (the AMQP
#: drivers' default send connections).
DEFAULT_SEND_THREADS = 30
#: Seconds a thread waits for work before it ends.
IDLE_SECONDS = 2.0


def send_threads(conf: Any) -> int:
    """As many send threads as the AMQP drivers keep send connections (``rpc_conn_pool_size``,
    when the configuration has it)."""
    size = getattr(conf, "rpc_conn_pool_size", None)
    return size if isinstance(size, int) and size > 0 else DEFAULT_SEND_THREADS


class SendPool:
    """Runs ``fn(*args)`` on at most ``size`` threads, in order of submission."""

    def __init__(self, size: int, name: str = "msgbus-aio-send",
                 idle_seconds: float = IDLE_SECONDS) -> None:
        self._size = max(1, size)
        self._name = name
        self._idle_seconds = idle_seconds
        self._cond = threading.Condition(threading.Lock())
        self._work: collections.deque = collections.deque()  # (fn, args)
        self._threads = 0  # alive
        self._waiting = 0  # alive and waiting for work
        self._started = 0  # ever (names only)
        self._workers: set[int] = set()  # idents of the threads alive
        self._closed = False

    @property
    def threads(self) -> int:
        """Threads alive now."""
        return self._threads

    def submit(self, fn: Callable[..., Any], *args: Any) -> None:
        """Run ``fn(*args)`` on a pool thread soon; RuntimeError once the pool is shut down.
        ``fn`` must report its own outcome: an exception it raises is only logged."""
        with self._cond:
            if self._closed:
                raise RuntimeError("the send pool is shut down")
            self._work.append((fn, args))
            # Each waiting thread takes one item: start one more when they are too few.
            if len(self._work) > self._waiting and self._threads < self._size:
                self._start_thread()
            elif self._waiting:
                self._cond.notify()

    def _start_thread(self) -> None:
        # caller holds the lock
        self._threads += 1
        self._started += 1
        thread = threading.Thread(target=self._worker, daemon=True,
                                  name=f"{self._name}-{self._started}")
        try:
            thread.start()
        except BaseException:
            self._threads -= 1
            raise

    def _worker(self) -> None:
        cond = self._cond
        work = self._work
        cond.acquire()
        self._workers.add(threading.get_ident())
        try:
            while True:
                while not work:
                    if self._closed:
                        return
                    self._waiting += 1
                    try:
                        woke = cond.wait(self._idle_seconds)
                    finally:
                        self._waiting -= 1
                    if not woke and not work and not self._closed:
                        return  # idle too long
                fn, args = work.popleft()
                cond.release()
                try:
                    fn(*args)
                except BaseException:  # noqa: BLE001 - fn reports its outcome; never lose a thread
                    LOG.exception("unhandled error in %r on the send pool", fn)
                finally:
                    cond.acquire()
        finally:
            self._threads -= 1
            self._workers.discard(threading.get_ident())
            if self._closed:
                cond.notify_all()  # shutdown(wait=True) may be waiting for the last thread
            cond.release()

    def shutdown(self, wait: bool = False) -> None:
        """Accept no more work; threads end once the work already queued ran. With ``wait``,
        return only then (a pool thread calling this does not wait for itself)."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()
            if not wait:
                return
            own = 1 if threading.get_ident() in self._workers else 0
            while self._threads > own:
                self._cond.wait()
