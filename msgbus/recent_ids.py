"""A bounded memory of recently seen message ids, for dropping redelivered duplicates."""

from __future__ import annotations

import collections
import threading


class RecentIds:
    """Remembers the last ``size`` ids; ``seen`` tells whether an id came before. Thread-safe."""

    def __init__(self, size: int = 4096) -> None:
        self._size = size
        self._order: collections.deque[str] = collections.deque()
        self._ids: set[str] = set()
        self._lock = threading.Lock()

    def seen(self, unique_id: str) -> bool:
        """Record ``unique_id``; True when it was already among the remembered ids."""
        with self._lock:
            if unique_id in self._ids:
                return True
            self._ids.add(unique_id)
            self._order.append(unique_id)
            if len(self._order) > self._size:
                self._ids.discard(self._order.popleft())
            return False
