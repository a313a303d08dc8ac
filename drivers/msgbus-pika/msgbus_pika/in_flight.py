"""A count of publishes handed to the I/O thread and not settled yet, that threads can wait on.

Replies and pipelined casts are handed over without their sender waiting for the broker; closing
the transport waits (bounded) for this count to reach zero, and casts wait while it is at the
window.
"""

from __future__ import annotations

import threading


class InFlight:
    """Publishes on their way: :meth:`add` when handing one over, :meth:`done` once settled."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._count = 0

    @property
    def count(self) -> int:
        return self._count

    def add(self) -> None:
        with self._cond:
            self._count += 1

    def add_below(self, limit: int, timeout: float) -> bool:
        """Count one more once fewer than ``limit`` are in flight; False if not within
        ``timeout`` seconds (nothing counted then)."""
        with self._cond:
            if not self._cond.wait_for(lambda: self._count < limit, timeout):
                return False
            self._count += 1
            return True

    def done(self) -> None:
        with self._cond:
            self._count -= 1
            self._cond.notify_all()

    def flush(self, timeout: float) -> bool:
        """Wait until nothing is in flight; False if something still was after ``timeout``."""
        with self._cond:
            return self._cond.wait_for(lambda: self._count <= 0, timeout)
