"""Handing work from driver threads to an event loop with one wake-up per burst.

``loop.call_soon_threadsafe`` writes to the loop's wake-up pipe on every call; under load
(replies or requests arriving back to back) most of those writes are wasted. An inbox queues
what arrives and wakes the loop only when it is not already due to drain the queue.
"""

from __future__ import annotations

import asyncio
import collections
import threading
from typing import Any, Callable

__all__ = ["LoopInbox"]


class LoopInbox:
    """Runs callables posted from any thread on one event loop, waking it once per burst."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._lock = threading.Lock()
        self._items: collections.deque = collections.deque()
        self._scheduled = False

    def post(self, fn: Callable[..., Any], *args: Any) -> bool:
        """Have the loop run ``fn(*args)`` soon; False (dropped) when the loop is closed."""
        with self._lock:
            self._items.append((fn, args))
            if self._scheduled:
                return True
            self._scheduled = True
        try:
            self._loop.call_soon_threadsafe(self._drain)
        except RuntimeError:  # the loop is closed: nothing posted will ever run
            with self._lock:
                self._items.clear()
                self._scheduled = False
            return False
        return True

    def _drain(self) -> None:
        with self._lock:
            items, self._items = self._items, collections.deque()
            self._scheduled = False
        for fn, args in items:
            fn(*args)
