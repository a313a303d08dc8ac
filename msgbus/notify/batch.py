"""Collects items into batches flushed at a size or after a timeout, whichever comes first."""

from __future__ import annotations

import logging
import threading
import time
from typing import Any, Callable

LOG = logging.getLogger(__name__)

__all__ = ["Batcher", "check_batch_limits"]


def check_batch_limits(size: int | None, timeout: float | None) -> None:
    """ValueError unless ``size`` (>= 1) and ``timeout`` (> 0 s) make a usable batch policy."""
    if size is not None and size < 1:
        raise ValueError(f"batch size must be at least 1, not {size}")
    if timeout is not None and timeout <= 0:
        raise ValueError(f"batch timeout must be positive, not {timeout}")
    if size is None and timeout is None:
        raise ValueError("a batch needs a size, a timeout or both")


class Batcher:
    """Buffers items and hands them to ``flush`` in lists.

    A batch is flushed when it holds ``size`` items (on the adding thread), or ``timeout``
    seconds after its first item arrived (on the batcher's own thread, which sleeps on a condition
    until then: no polling). ``size`` None means no size limit, ``timeout`` None no time limit.
    ``close`` flushes what is left and stops the thread.
    """

    def __init__(self, flush: Callable[[list[Any]], None], size: int | None,
                 timeout: float | None, name: str = "msgbus-batcher") -> None:
        check_batch_limits(size, timeout)
        self._flush = flush
        self._size = size
        self._timeout = timeout
        self._cond = threading.Condition()
        self._items: list[Any] = []
        self._deadline: float | None = None
        self._closed = False
        self._thread: threading.Thread | None = None
        if timeout is not None:
            self._thread = threading.Thread(target=self._run, name=name, daemon=True)
            self._thread.start()

    def add(self, item: Any) -> None:
        """Buffer ``item``; flushes on this thread when the batch is full."""
        with self._cond:
            if self._closed:
                raise RuntimeError("batcher is closed")
            self._items.append(item)
            if self._size is not None and len(self._items) >= self._size:
                batch = self._take()
            else:
                if len(self._items) == 1 and self._timeout is not None:
                    self._deadline = time.monotonic() + self._timeout
                    self._cond.notify_all()
                return
        self._flush(batch)

    def _take(self) -> list[Any]:
        # caller holds the lock
        batch, self._items, self._deadline = self._items, [], None
        return batch

    def _run(self) -> None:
        while True:
            with self._cond:
                while True:
                    if self._closed:
                        return
                    if self._deadline is None:
                        self._cond.wait()
                        continue
                    left = self._deadline - time.monotonic()
                    if left <= 0:
                        batch = self._take()
                        break
                    self._cond.wait(left)
            try:
                self._flush(batch)
            except Exception:  # the timer thread must outlive a failing flush
                LOG.exception("flushing a batch of %d items failed", len(batch))

    def close(self) -> None:
        """Flush the remaining items (if any) and stop the timer thread."""
        with self._cond:
            if self._closed:
                return
            self._closed = True
            batch = self._take()
            self._cond.notify_all()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join()
        if batch:
            self._flush(batch)
