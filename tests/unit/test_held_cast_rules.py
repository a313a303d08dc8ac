"""msgbus.driver.held_casts: a drop is counted before the cast leaves the queue, so whoever sees
the held count fall (a driver's describe(), a test waiting for it) sees the drop counted."""

from __future__ import annotations

import threading

from msgbus.driver.held_casts import HeldCasts


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


class Watched(HeldCasts):
    """Records (held count, dropped) each time a log line for a drop is decided, i.e. after
    the cast has left the queue."""

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.seen: list[tuple[int, int]] = []

    def _should_log(self, kind: str, where: str) -> int:
        if kind == "dropped":
            self.seen.append((len(self), self.dropped))
        return super()._should_log(kind, where)


def test_timed_out_casts_are_counted_before_they_leave_the_queue() -> None:
    clock = Clock()
    held = Watched(hold_timeout=1.0, max_bytes=10_000, clock=clock)
    for n in range(5):
        held.hold(n, "k", 10)
    clock.now += 1.0
    assert held.take_due() == []  # all past the hold: dropped, none handed out to send again
    assert len(held) == 0 and held.dropped == 5
    assert held.seen and all(dropped == 5 for _, dropped in held.seen)


def test_casts_over_the_memory_bound_are_counted_before_they_leave() -> None:
    held = Watched(hold_timeout=60.0, max_bytes=25, clock=Clock())
    for n in range(5):
        held.hold(n, "k", 10)
    # the k-th drop was counted (and the cast gone) by the time its log line was decided
    assert held.seen == [(2, 1), (2, 2), (2, 3)]
    assert len(held) == 2 and held.dropped == 3


def test_a_reader_never_sees_the_queue_empty_before_the_drops_are_counted() -> None:
    clock = Clock()
    held = HeldCasts(hold_timeout=1.0, max_bytes=10_000_000, clock=clock)
    total = 2000
    for n in range(total):
        held.hold(n, "k", 10)
    clock.now += 1.0
    wrong: list[int] = []
    done = threading.Event()

    def watch() -> None:
        while not done.is_set():
            dropped = held.dropped
            if len(held) == 0 and held.dropped != total:
                wrong.append(dropped)
                return

    watcher = threading.Thread(target=watch)
    watcher.start()
    try:
        assert held.take_due() == []
    finally:
        done.set()
        watcher.join()
    assert held.dropped == total and not wrong
