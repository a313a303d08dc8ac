"""Dropping redelivered duplicates without dropping the redeliveries a listener asked for."""

from __future__ import annotations

import collections
import threading

from msgbus.recent_ids import RecentIds

__all__ = ["Deduplicator"]


class Deduplicator:
    """Remembers the ``_unique_id`` of recent notifications; thread-safe.

    A notification the listener requeued itself comes back with the same id: :meth:`expect`
    lets that one redelivery through.
    """

    def __init__(self, window: int) -> None:
        self._window = window
        self._recent = RecentIds(window)
        self._lock = threading.Lock()
        self._expected: collections.OrderedDict[str, None] = collections.OrderedDict()

    def is_duplicate(self, unique_id: str | None) -> bool:
        """Record ``unique_id``; True when it was seen before and no redelivery was expected."""
        if unique_id is None:
            return False
        with self._lock:
            if unique_id in self._expected:
                del self._expected[unique_id]
                return False
        return self._recent.seen(unique_id)

    def expect(self, unique_id: str | None) -> None:
        """Let the next delivery of ``unique_id`` through (call before requeueing it)."""
        if unique_id is None:
            return
        with self._lock:
            self._expected[unique_id] = None
            self._expected.move_to_end(unique_id)
            while len(self._expected) > self._window:
                self._expected.popitem(last=False)
