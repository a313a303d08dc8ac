"""The Batcher (size or timeout, whichever first) and the listener's Deduplicator."""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest

from msgbus.notify.batch import Batcher, check_batch_limits
from msgbus.notify.dedup import Deduplicator


class Sink:
    def __init__(self) -> None:
        self.cond = threading.Condition()
        self.batches: list[tuple[float, list[Any]]] = []

    def __call__(self, batch: list[Any]) -> None:
        with self.cond:
            self.batches.append((time.monotonic(), batch))
            self.cond.notify_all()

    def wait(self, n: int, timeout: float = 10) -> list[list[Any]]:
        with self.cond:
            assert self.cond.wait_for(lambda: len(self.batches) >= n, timeout), self.batches
            return [b for _, b in self.batches]


def test_flushes_at_size_on_the_adding_thread() -> None:
    sink = Sink()
    batcher = Batcher(sink, size=3, timeout=None)
    for i in range(7):
        batcher.add(i)
    assert [b for _, b in sink.batches] == [[0, 1, 2], [3, 4, 5]]
    batcher.close()
    assert [b for _, b in sink.batches][-1] == [6]


def test_flushes_at_timeout() -> None:
    sink = Sink()
    batcher = Batcher(sink, size=100, timeout=0.2)
    start = time.monotonic()
    batcher.add("a")
    batcher.add("b")
    assert sink.wait(1) == [["a", "b"]]
    assert sink.batches[0][0] - start >= 0.19
    batcher.add("c")  # a new batch starts its own clock
    assert sink.wait(2)[1] == ["c"]
    batcher.close()
    assert len(sink.batches) == 2


def test_size_wins_before_timeout() -> None:
    sink = Sink()
    batcher = Batcher(sink, size=2, timeout=30)
    start = time.monotonic()
    batcher.add(1)
    batcher.add(2)
    assert sink.wait(1) == [[1, 2]]
    assert time.monotonic() - start < 5
    batcher.close()


def test_close_flushes_the_rest_and_refuses_more() -> None:
    sink = Sink()
    batcher = Batcher(sink, size=10, timeout=30)
    batcher.add(1)
    batcher.close()
    assert [b for _, b in sink.batches] == [[1]]
    with pytest.raises(RuntimeError):
        batcher.add(2)
    batcher.close()  # idempotent


def test_a_failing_flush_does_not_kill_the_timer() -> None:
    calls: list[list[Any]] = []
    failed, done = threading.Event(), threading.Event()

    def flaky(batch: list[Any]) -> None:
        calls.append(batch)
        if len(calls) == 1:
            failed.set()
            raise RuntimeError("first flush fails")
        done.set()

    batcher = Batcher(flaky, size=None, timeout=0.05)
    batcher.add(1)
    assert failed.wait(10)
    batcher.add(2)
    assert done.wait(10)
    assert calls == [[1], [2]]
    batcher.close()


@pytest.mark.parametrize("size, timeout", [(0, None), (None, 0), (None, None), (-1, 1)])
def test_invalid_limits(size: int | None, timeout: float | None) -> None:
    with pytest.raises(ValueError):
        check_batch_limits(size, timeout)


def test_deduplicator_drops_repeats_but_not_expected_redeliveries() -> None:
    dedup = Deduplicator(window=16)
    assert not dedup.is_duplicate("a")
    assert dedup.is_duplicate("a")
    dedup.expect("a")
    assert not dedup.is_duplicate("a")  # the redelivery we asked for
    assert dedup.is_duplicate("a")  # but only once
    assert not dedup.is_duplicate(None) and not dedup.is_duplicate(None)


def test_deduplicator_window_is_bounded() -> None:
    dedup = Deduplicator(window=16)
    for i in range(40):
        dedup.is_duplicate(str(i))
        dedup.expect(f"x{i}")
    assert not dedup.is_duplicate("0")  # forgotten
    assert dedup.is_duplicate("39")
    assert len(dedup._expected) == 16
