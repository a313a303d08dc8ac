"""The measured scenarios; each runs for about a fixed duration, so sizes adapt to the stack.

Every scenario takes a :class:`Bench` (a contender's session plus what it needs around it) and
returns named metrics. Throughput scenarios loop for :attr:`Sizes.duration` seconds; the cast
scenarios send in rounds sized from the rate seen so far and count only what the servers have
processed (a final call waits on the server's count).
"""

from __future__ import annotations

import asyncio
import statistics
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from benchmarks.contenders.base import CALL_TIMEOUT, Contender, ServerHandle, Session
from benchmarks.stats import CpuMeter, percentile

Metrics = dict[str, float | None]


@dataclass(frozen=True)
class Sizes:
    """How long and how often: the full run or ``--quick``."""

    duration: float
    warmup: int
    first_call_reps: int
    min_calls: int = 3


FULL = Sizes(duration=2.0, warmup=20, first_call_reps=5)
QUICK = Sizes(duration=0.3, warmup=3, first_call_reps=2)


@dataclass
class Bench:
    """What a scenario works with."""

    contender: Contender
    session: Session | None  # None for a contender with asyncio scenarios only
    topic: str
    sizes: Sizes
    meter: CpuMeter
    start_server: Callable[[str], ServerHandle]


def _session(bench: Bench) -> Session:
    if bench.session is None:
        raise RuntimeError(f"{bench.contender.name} has no thread-based session")
    return bench.session


def _warm(bench: Bench, payload: Any, count: int | None = None) -> None:
    for _ in range(bench.sizes.warmup if count is None else count):
        _session(bench).echo(payload)


def _check_echo(sent: Any, got: Any) -> None:
    if got != sent:
        raise AssertionError(f"echo returned {len(got) if got else got!r} units, "
                             f"sent {len(sent)}")


def sequential(bench: Bench) -> Metrics:
    """Calls one after the other: calls/s, latency p50/p99 and CPU per call."""
    payload = _session(bench).payload(16)
    _warm(bench, payload)
    latencies: list[float] = []
    cpu_before = bench.meter.sample()
    start = time.perf_counter()
    deadline = start + bench.sizes.duration
    now = start
    while now < deadline or len(latencies) < bench.sizes.min_calls:
        got = _session(bench).echo(payload)
        end = time.perf_counter()
        latencies.append(end - now)
        now = end
    elapsed = now - start
    cpu_after = bench.meter.sample()
    _check_echo(payload, got)
    metrics: Metrics = {
        "seq_calls_per_s": len(latencies) / elapsed,
        "seq_p50_ms": percentile(latencies, 0.50) * 1e3,
        "seq_p99_ms": percentile(latencies, 0.99) * 1e3,
        "seq_calls": float(len(latencies)),
    }
    metrics.update(CpuMeter.per_op_us(cpu_before, cpu_after, len(latencies)))
    return metrics


def concurrent(threads: int) -> Callable[[Bench], Metrics]:
    """Calls from ``threads`` threads sharing the session, against one server: calls/s."""
    def scenario(bench: Bench) -> Metrics:
        payload = _session(bench).payload(16)
        _warm(bench, payload)
        counts = [0] * threads
        errors: list[BaseException] = []
        window: list[float] = []

        def open_window() -> None:  # runs once, before the barrier lets everyone go
            now = time.perf_counter()
            window[:] = [now, now + bench.sizes.duration]

        gate = threading.Barrier(threads + 1, action=open_window)

        def worker(index: int) -> None:
            try:
                _session(bench).echo(payload)  # per-thread setup (a connection for raw pika)
                gate.wait(CALL_TIMEOUT)
                deadline = window[1]
                done = 0
                while time.perf_counter() < deadline:
                    _session(bench).echo(payload)
                    done += 1
                counts[index] = done
            except BaseException as exc:  # noqa: BLE001 - re-raised after join
                errors.append(exc)
                gate.abort()

        pool = [threading.Thread(target=worker, args=(i,), daemon=True,
                                 name=f"bench-client-{i}") for i in range(threads)]
        for thread in pool:
            thread.start()
        try:
            gate.wait(CALL_TIMEOUT * 2)
        except threading.BrokenBarrierError:
            pass
        for thread in pool:
            thread.join(bench.sizes.duration + CALL_TIMEOUT * 2)
        if errors:
            raise errors[0]
        elapsed = time.perf_counter() - window[0]
        if any(thread.is_alive() for thread in pool):
            raise TimeoutError(f"{threads} calling threads did not finish")
        return {f"conc{threads}_calls_per_s": sum(counts) / elapsed}

    scenario.__name__ = f"concurrent_{threads}"
    return scenario


def payload_calls(size: int, key: str) -> Callable[[Bench], Metrics]:
    """Sequential calls whose request and reply each carry ``size`` bytes: calls/s."""
    def scenario(bench: Bench) -> Metrics:
        payload = _session(bench).payload(size)
        _warm(bench, payload, count=min(bench.sizes.warmup, 3))
        calls = 0
        start = time.perf_counter()
        deadline = start + bench.sizes.duration
        while time.perf_counter() < deadline or calls < bench.sizes.min_calls:
            got = _session(bench).echo(payload)
            calls += 1
        elapsed = time.perf_counter() - start
        _check_echo(payload, got)
        return {f"{key}_calls_per_s": calls / elapsed}

    scenario.__name__ = f"payload_{key}"
    return scenario


def _rounds(bench: Bench, send: Callable[[], None], settle: Callable[[int], None]) -> float:
    """Send in rounds until the duration is used up; messages per second, all processed."""
    total = 0
    size = 10
    start = time.perf_counter()
    while True:
        for _ in range(size):
            send()
        total += size
        settle(total)
        elapsed = time.perf_counter() - start
        remaining = bench.sizes.duration - elapsed
        if remaining <= 0:
            return total / elapsed
        size = max(10, min(size * 4, int(total / elapsed * remaining) + 1))


def casts(bench: Bench) -> Metrics:
    """Casts to the topic until the server has processed all of them: casts/s."""
    session = _session(bench)
    base = session.wait_count(0)

    def settle(total: int) -> None:
        got = session.wait_count(base + total)
        if got < base + total:
            raise RuntimeError(f"server processed {got - base} of {total} casts in time")

    return {"casts_per_s": _rounds(bench, session.tick, settle)}


def fanout(bench: Bench) -> Metrics:
    """Fanout casts to three servers, until every server processed all: casts/s."""
    session = _session(bench)
    extra = [bench.start_server(name) for name in ("s2", "s3")]
    try:
        names = ["s1"] + [srv.name for srv in extra]
        bases = {name: session.wait_count(0, server=name) for name in names}

        def settle(total: int) -> None:
            for name in names:
                got = session.wait_count(bases[name] + total, server=name)
                if got < bases[name] + total:
                    raise RuntimeError(f"server {name} processed {got - bases[name]} of "
                                       f"{total} fanout casts in time")

        return {"fanout_per_s": _rounds(bench, session.fanout_tick, settle)}
    finally:
        for srv in extra:
            srv.stop()


def first_call(bench: Bench) -> Metrics:
    """A fresh transport (connection) until its first reply; the median of a few: ms."""
    times = [bench.contender.first_call_seconds(bench.topic)
             for _ in range(bench.sizes.first_call_reps)]
    return {"first_call_ms": statistics.median(times) * 1e3}


def _rss_bytes() -> int:
    """This process's resident memory (Linux ``/proc/self/statm``)."""
    import os
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def async_calls(inflight: int) -> Callable[[Bench], Metrics]:
    """``inflight`` asyncio tasks in one process, each awaiting calls one after the other on
    one shared async session: calls/s, latency p50/p99, CPU per call (client + server) and, by
    how much resident memory grew with them all in flight, memory per in-flight call."""
    def scenario(bench: Bench) -> Metrics:
        return asyncio.run(_async_calls(bench, inflight))

    scenario.__name__ = f"async_{inflight}"
    return scenario


async def _async_calls(bench: Bench, inflight: int) -> Metrics:
    session = await bench.contender.open_async_session(bench.topic)
    try:
        payload = session.payload(16)
        for _ in range(bench.sizes.warmup):
            _check_echo(payload, await session.echo(payload))
        latencies: list[float] = []
        rss_before = _rss_bytes()
        rss_in_flight: list[int] = []
        loop = asyncio.get_running_loop()
        loop.call_later(bench.sizes.duration / 2, lambda: rss_in_flight.append(_rss_bytes()))
        cpu_before = bench.meter.sample()
        start = time.perf_counter()
        deadline = start + bench.sizes.duration

        async def caller() -> None:
            while True:
                began = time.perf_counter()
                got = await session.echo(payload)
                end = time.perf_counter()
                latencies.append(end - began)
                if got != payload:
                    _check_echo(payload, got)
                if end >= deadline:
                    return

        await asyncio.wait_for(asyncio.gather(*(caller() for _ in range(inflight))),
                               bench.sizes.duration + CALL_TIMEOUT * 2)
        elapsed = time.perf_counter() - start
        cpu_after = bench.meter.sample()
    finally:
        await session.close()
    key = f"async{inflight}"
    cpu = CpuMeter.per_op_us(cpu_before, cpu_after, len(latencies))
    metrics: Metrics = {
        f"{key}_calls_per_s": len(latencies) / elapsed,
        f"{key}_p50_ms": percentile(latencies, 0.50) * 1e3,
        f"{key}_p99_ms": percentile(latencies, 0.99) * 1e3,
        f"{key}_cpu_per_call_us": cpu["cpu_per_call_us"],
        f"{key}_server_cpu_per_call_us": cpu["server_cpu_per_call_us"],
    }
    if cpu["broker_cpu_per_call_us"] is not None:
        metrics[f"{key}_broker_cpu_per_call_us"] = cpu["broker_cpu_per_call_us"]
    if rss_in_flight:
        metrics[f"{key}_kb_per_inflight"] = max(0, rss_in_flight[0] - rss_before) / 1024 / inflight
    return metrics


ASYNC_SCENARIOS: list[tuple[str, Callable[[Bench], Metrics]]] = [
    # the largest first: memory per call in flight is read before smaller runs warm the heap
    ("async_1000", async_calls(1000)),
    ("async_100", async_calls(100)),
    ("async_1", async_calls(1)),
]


def for_contender(contender: Contender) -> list[tuple[str, Callable[[Bench], Metrics]]]:
    """The scenarios a contender runs: its group's thread-based ones and/or the asyncio ones."""
    chosen = for_group(contender.group) if contender.runs_sync else []
    return chosen + (ASYNC_SCENARIOS if contender.runs_async else [])


def for_group(group: str) -> list[tuple[str, Callable[[Bench], Metrics]]]:
    """The scenarios of a contender group, in running order."""
    common = [("sequential", sequential), ("concurrent_8", concurrent(8))]
    if group == "fake":
        return common + [("casts", casts)]
    return [
        ("sequential", sequential),
        ("concurrent_1", concurrent(1)),
        ("concurrent_8", concurrent(8)),
        ("concurrent_32", concurrent(32)),
        ("payload_1k", payload_calls(1024, "p1k")),
        ("payload_64k", payload_calls(64 * 1024, "p64k")),
        ("payload_1m", payload_calls(1024 * 1024, "p1m")),
        ("casts", casts),
        ("fanout", fanout),
        ("first_call", first_call),
    ]
