"""A count of publishes handed to the I/O thread and not settled yet, that threads can wait on.

Pipelined casts and held casts sent again are handed over without their sender waiting for the
broker; closing the transport waits (bounded) for such a count to reach zero, and casts wait while
theirs is at the window.
"""

from __future__ import annotations

import threading
import time
from typing import Callable

#: How often :meth:`InFlight.flush` asks whether waiting on is pointless (seconds).
_HOPELESS_CHECK = 0.1


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

    def flush(self, timeout: float, hopeless: Callable[[], bool] | None = None) -> bool:
        """Wait until nothing is in flight; False if something still was after ``timeout``, or
        as soon as ``hopeless()`` says waiting longer is pointless (checked every 0.1 s)."""
        end = time.monotonic() + timeout
        with self._cond:
            while self._count > 0:
                left = end - time.monotonic()
                if left <= 0 or (hopeless is not None and hopeless()):
                    return False
                self._cond.wait(left if hopeless is None else min(left, _HOPELESS_CHECK))
            return True
