"""One stack's measurements on the cluster: calls (threads calling ``echo``), casts (until the
servers counted them all) and fanout casts (until every server counted them all)."""

from __future__ import annotations

import multiprocessing
import statistics
import threading
import time
import uuid
from typing import Any

from benchmarks.cluster.stacks import Stack, library, serve, transport

#: Servers (processes) of the topic: calls and casts are balanced over them, fanout reaches all.
SERVERS = ("s1", "s2")
#: Bound of one call (seconds) and of starting a server process.
TIMEOUT = 60.0
PAYLOAD = "x" * 100


def measure(stack: Stack, url: str, calls: int, casts: int, fanouts: int,
            threads: int) -> dict[str, Any]:
    """Start the servers, run the three scenarios on one client, stop everything."""
    topic = f"bench-cluster-{uuid.uuid4().hex[:8]}"
    ctx = multiprocessing.get_context("spawn")
    stop = ctx.Event()
    procs = []
    tr = None
    try:
        for name in SERVERS:
            ready = ctx.Event()
            proc = ctx.Process(target=serve, args=(stack, url, topic, name, ready, stop),
                               daemon=True)
            proc.start()
            procs.append(proc)
            if not ready.wait(TIMEOUT):
                raise RuntimeError(f"{stack.name}: server {name} did not start in {TIMEOUT:g}s")
        lib = library(stack)
        tr = transport(stack, url)
        client = lib.get_rpc_client(tr, lib.Target(topic=topic), timeout=TIMEOUT)
        result: dict[str, Any] = {"stack": stack.name, "topic": topic}
        result.update(_calls(client, calls, threads))
        result.update(_casts(client, casts))
        result.update(_fanout(client, fanouts))
        return result
    finally:
        stop.set()
        for proc in procs:
            proc.join(TIMEOUT)
            if proc.is_alive():
                proc.kill()
        if tr is not None:
            tr.cleanup()


def _calls(client: Any, total: int, threads: int) -> dict[str, float]:
    for _ in range(20):  # warm-up: connections, reply queue
        client.call({}, "echo", payload=PAYLOAD)
    per_thread = max(1, total // threads)
    latencies: list[float] = []
    lock = threading.Lock()

    def run() -> None:
        mine = []
        for _ in range(per_thread):
            t0 = time.perf_counter()
            client.call({}, "echo", payload=PAYLOAD)
            mine.append(time.perf_counter() - t0)
        with lock:
            latencies.extend(mine)

    workers = [threading.Thread(target=run) for _ in range(threads)]
    start = time.perf_counter()
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    took = time.perf_counter() - start
    latencies.sort()
    return {"calls_per_s": len(latencies) / took,
            "call_p50_ms": statistics.median(latencies) * 1000,
            "call_p99_ms": latencies[int(len(latencies) * 0.99) - 1] * 1000}


def _counted(client: Any, key: str) -> int:
    return sum(client.prepare(server=s).call({}, "count", key=key, n=0) for s in SERVERS)


def _casts(client: Any, total: int) -> dict[str, float]:
    start = time.perf_counter()
    for _ in range(total):
        client.cast({}, "tick")
    deadline = time.monotonic() + TIMEOUT
    while _counted(client, "tick") < total:
        if time.monotonic() > deadline:
            raise RuntimeError(f"only {_counted(client, 'tick')} of {total} casts processed")
        time.sleep(0.005)
    return {"casts_per_s": total / (time.perf_counter() - start)}


def _fanout(client: Any, total: int) -> dict[str, float]:
    fan = client.prepare(fanout=True)
    start = time.perf_counter()
    for _ in range(total):
        fan.cast({}, "fan")
    for s in SERVERS:
        got = client.prepare(server=s).call({}, "count", key="fan", n=total)
        if got < total:
            raise RuntimeError(f"server {s} processed {got} of {total} fanout casts")
    return {"fanout_per_s": total / (time.perf_counter() - start)}
