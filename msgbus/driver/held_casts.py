"""Casts the broker could not route yet, kept and sent again: one rule for every AMQP driver.

After a broker restart, non-durable queues are gone until their servers declare them again; a
cast published in that window would be dropped by the broker without a word. AMQP drivers
therefore publish casts to topic and server queues as mandatory (see
:func:`msgbus.driver.amqp.holds_when_unroutable`); the broker returns one it cannot route, and
the driver hands it to a :class:`HeldCasts`. The driver then sends each held cast again when it
is due (backing off from 50 ms to 1 s), until a queue takes it or ``cast_hold_timeout`` passes;
then it is dropped with an error log. A drop is counted (:attr:`HeldCasts.dropped`) under the
lock, before the cast leaves the queue: whoever sees the held count fall sees the drop counted.
``cast_hold_max_bytes`` bounds the memory: past it, the oldest held casts are dropped, with an
error log. A cast to a topic that nobody serves thus never blocks its sender and never grows
memory without bound. (A copy on its way to the broker is in neither count until it returns.)

Thread-safe; no broker library is imported here (a driver stores what it needs to re-publish in
``payload``).
"""

from __future__ import annotations

import collections
import dataclasses
import logging
import threading
import time
from typing import Any, Callable

LOG = logging.getLogger(__name__)

#: First and longest pause between two sends of one held cast (seconds).
FIRST_PAUSE = 0.05
MAX_PAUSE = 1.0
#: At most one log line per destination and kind (held, dropped) in this many seconds; the
#: next one says how many casts it stands for.
LOG_EVERY = 10.0


@dataclasses.dataclass
class Held:
    """One returned cast: what the driver needs to publish it again, and its history."""

    payload: Any
    #: where it was going, for log lines (exchange and routing key)
    where: str
    size: int
    since: float
    attempts: int = 1
    due: float = 0.0


class HeldCasts:
    """Returned casts waiting to be sent again (see the module docstring)."""

    def __init__(self, hold_timeout: float, max_bytes: int,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.hold_timeout = hold_timeout
        self.max_bytes = max_bytes
        self._clock = clock
        self._lock = threading.Lock()
        self._items: collections.deque[Held] = collections.deque()
        self._bytes = 0
        #: how many were dropped (timed out or over the memory bound), for tests and stats
        self.dropped = 0
        #: (kind, destination) -> (time of its last log line, casts not yet logged)
        self._logged: dict[tuple[str, str], tuple[float, int]] = {}

    def _should_log(self, kind: str, where: str) -> int:
        """How many casts a log line now would stand for, or 0 to stay quiet (see LOG_EVERY)."""
        now = self._clock()
        with self._lock:
            last, unlogged = self._logged.get((kind, where), (-LOG_EVERY, 0))
            if now - last < LOG_EVERY:
                self._logged[(kind, where)] = (last, unlogged + 1)
                return 0
            if len(self._logged) > 1024:  # destinations come and go: forget old ones
                self._logged.clear()
            self._logged[(kind, where)] = (now, 0)
        return unlogged + 1

    def __len__(self) -> int:
        return len(self._items)

    def hold(self, payload: Any, where: str, size: int, previous: Held | None = None) -> None:
        """Keep a cast the broker returned; ``previous`` when it was a held one sent again."""
        now = self._clock()
        if previous is None:
            item = Held(payload, where, size, now, due=now + FIRST_PAUSE)
            count = self._should_log("held", where)
            if count:
                LOG.info("the broker had no queue for %d cast(s) to %s (its server may be "
                         "declaring it again); sending each again for up to %.0fs", count,
                         where, self.hold_timeout)
        else:
            item = previous
            item.attempts += 1
            pause = min(MAX_PAUSE, FIRST_PAUSE * 2 ** min(item.attempts - 1, 10))
            item.due = now + pause
        if now - item.since >= self.hold_timeout:  # returned from a try begun before the end
            with self._lock:
                self.dropped += 1
            self._log_drop(item, self._timed_out())
            return
        with self._lock:
            self._items.append(item)
            self._bytes += item.size
            over = []
            while self._bytes > self.max_bytes and self._items:
                self.dropped += 1  # (counted before it leaves the queue)
                oldest = self._items.popleft()
                self._bytes -= oldest.size
                over.append(oldest)
        for oldest in over:
            self._log_drop(oldest, f"more than cast_hold_max_bytes ({self.max_bytes}) of casts "
                                   "are waiting for a queue")

    def _timed_out(self) -> str:
        return f"no queue took it within cast_hold_timeout ({self.hold_timeout:g}s)"

    def _log_drop(self, item: Held, why: str) -> None:
        """Log a drop already counted in :attr:`dropped` (one line per destination and
        LOG_EVERY)."""
        count = self._should_log("dropped", item.where)
        if count:
            LOG.error("dropped %d cast(s) to %s (the last after %d unroutable attempt(s) over "
                      "%.1fs): %s. Is a server running for this topic?", count, item.where,
                      item.attempts, self._clock() - item.since, why)

    def take_due(self) -> list[Held]:
        """Remove and return the casts due to be sent again now (the driver sends each and,
        if the broker returns it again, passes it back to :meth:`hold` as ``previous``). Those
        whose ``cast_hold_timeout`` has passed are dropped instead (counted before they leave)."""
        now = self._clock()
        with self._lock:
            due = [item for item in self._items if item.due <= now]
            expired = [item for item in due if now - item.since >= self.hold_timeout]
            if due:
                self.dropped += len(expired)
                self._items = collections.deque(i for i in self._items if i.due > now)
                self._bytes -= sum(item.size for item in due)
        for item in expired:
            self._log_drop(item, self._timed_out())
        return [item for item in due if now - item.since < self.hold_timeout]

    def take_all(self) -> list[Held]:
        """Remove and return every held cast (the transport is closing)."""
        with self._lock:
            items, self._items = list(self._items), collections.deque()
            self._bytes = 0
        return items

    def next_due(self) -> float | None:
        """Seconds until the next held cast is due (0 when one is due now), None when empty."""
        with self._lock:
            if not self._items:
                return None
            soonest = min(item.due for item in self._items)
        return max(0.0, soonest - self._clock())
