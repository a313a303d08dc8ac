"""Call-monitor heartbeats: while a method runs, tell the caller every ``_timeout / 2`` seconds
that the server is still working on it. One scheduler thread serves every call of a server."""

from __future__ import annotations

import heapq
import itertools
import logging
import threading
import time
from typing import Callable

LOG = logging.getLogger(__name__)


class HeartbeatScheduler:
    """Calls each registered ``beat`` every ``interval`` seconds until it is cancelled."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._heap: list[tuple[float, int, float, Callable[[], None]]] = []
        self._active: set[int] = set()
        self._ids = itertools.count()
        self._thread: threading.Thread | None = None
        self._stopped = False

    def add(self, interval: float, beat: Callable[[], None]) -> int:
        """Start beating; returns a handle for :meth:`cancel`."""
        with self._cond:
            handle = next(self._ids)
            self._active.add(handle)
            heapq.heappush(self._heap, (time.monotonic() + interval, handle, interval, beat))
            if self._thread is None:
                self._stopped = False
                self._thread = threading.Thread(target=self._run, name="msgbus-heartbeat",
                                                daemon=True)
                self._thread.start()
            self._cond.notify()
            return handle

    def cancel(self, handle: int) -> None:
        with self._cond:
            self._active.discard(handle)

    def _run(self) -> None:
        while True:
            with self._cond:
                while True:
                    if self._stopped:
                        self._thread = None
                        return
                    while self._heap and self._heap[0][1] not in self._active:
                        heapq.heappop(self._heap)
                    if not self._heap:
                        self._cond.wait()
                        continue
                    due, handle, interval, beat = self._heap[0]
                    delay = due - time.monotonic()
                    if delay <= 0:
                        heapq.heapreplace(self._heap, (due + interval, handle, interval, beat))
                        break
                    self._cond.wait(delay)
            try:
                beat()
            except Exception:
                LOG.exception("failed to send a call-monitor heartbeat")

    def stop(self) -> None:
        """End the scheduler thread; pending beats are dropped."""
        with self._cond:
            self._stopped = True
            self._active.clear()
            self._heap.clear()
            self._cond.notify()
