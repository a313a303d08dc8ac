"""One contender under the fault schedule: start its server and load, fault the node, measure.

The server and the load are separate processes (:mod:`benchmarks.chaos.server`,
:mod:`benchmarks.chaos.load`); this module starts them, applies :func:`faults.run_schedule`,
stops the load, waits until the server's cast count settles, and hands the files to
:func:`analyze.analyze`. Every wait is bounded, and both children are stopped on every way out.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from benchmarks.chaos import analyze, faults
from benchmarks.chaos.load import FINISH_GRACE
from benchmarks.chaos.procs import Child, ChildError, stop_all
from msgbus.testing.rabbitmq import RabbitNode, list_connections

#: Load before the first fault, and after the broker is back, before the load stops (seconds).
BASELINE = 2.0
AFTERMATH = 5.0
#: The server's cast count is settled when it has not grown for QUIET s (at most SETTLE s).
QUIET = 2.0
SETTLE = 30.0
#: How long a child may take to say READY (seconds).
READY_TIMEOUT = 90.0


@dataclass
class Settings:
    """The experiment's knobs (the command line's options)."""

    threads: int = 32
    timeout: float = 10.0
    drops: int = 3
    drop_gap: float = 6.0
    down: float = 4.5
    cast_rate: float = 100.0
    query: str = ""


def contender_url(name: str, node: RabbitNode, query: str) -> str:
    """The transport URL of benchmark contender ``name`` on the private node."""
    library, _, scheme = name.partition("-")
    url = node.url_for(scheme)
    if library == "msgbus" and query:
        url += "?" + query.lstrip("?")
    return url


def wait_idle(node: RabbitNode, timeout: float = 15.0) -> int:
    """Wait (bounded) until the node has no client connection left; how many remain."""
    deadline = time.monotonic() + timeout
    while True:
        remaining = len(list_connections(node=node.name))
        if not remaining or time.monotonic() > deadline:
            return remaining
        time.sleep(0.5)


def settle(cast_log: Path) -> float:
    """Wait until the server's cast log stops growing (bounded); seconds waited."""
    start = last_change = time.monotonic()
    size = -1
    while time.monotonic() - start < SETTLE:
        current = cast_log.stat().st_size if cast_log.exists() else 0
        if current != size:
            size, last_change = current, time.monotonic()
        elif time.monotonic() - last_change >= QUIET:
            break
        time.sleep(0.1)
    return time.monotonic() - start


def run_contender(name: str, node: RabbitNode, settings: Settings,
                  work_dir: Path) -> dict[str, Any]:
    """Run the experiment for one contender; its metrics, fault events and log paths."""
    faults.ensure_running(node)
    leftover = wait_idle(node)
    topic = f"chaos-{uuid.uuid4().hex[:8]}-{name}"
    url = contender_url(name, node, settings.query)
    cast_log = work_dir / f"casts-{name}.txt"
    journal = work_dir / f"journal-{name}.jsonl"
    children: list[Child] = []

    def pause(seconds: float) -> None:
        """Sleep, checking every 0.2 s that both children still run."""
        deadline = time.monotonic() + seconds
        while True:
            for child in children:
                if not child.alive:
                    raise ChildError(f"{child.label} died during the run; see {child.log_path}")
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return
            time.sleep(min(0.2, remaining))

    try:
        server = Child(f"{name} server", "benchmarks.chaos.server",
                       [name, url, topic, "chaos-server", str(cast_log)],
                       work_dir / f"server-{name}.log")
        children.append(server)
        server.expect("READY", READY_TIMEOUT)
        load = Child(f"{name} load", "benchmarks.chaos.load",
                     ["--contender", name, "--url", url, "--topic", topic, "--out", str(journal),
                      "--threads", str(settings.threads), "--timeout", str(settings.timeout),
                      "--cast-rate", str(settings.cast_rate)],
                     work_dir / f"load-{name}.log")
        children.append(load)
        load.expect("READY", READY_TIMEOUT)
        pause(BASELINE)
        events = faults.run_schedule(node, settings.drops, settings.drop_gap, settings.down,
                                     pause)
        pause(AFTERMATH)
        load.close_stdin()
        load.expect("DONE", settings.timeout + FINISH_GRACE + 30.0)
        load.stop()
        settled = settle(cast_log)
        queued = {queue: info["messages"] for queue, info in node.list_queues().items()
                  if queue == topic or queue.startswith(topic + ".")}
        server.stop()
        metrics = analyze.analyze(analyze.read_journal(journal), analyze.read_processed(cast_log),
                                  events, settings.timeout)
    finally:
        stop_all(children)
    return {"contender": name, "status": "ok", "url": url, "topic": topic, "metrics": metrics,
            "events": events, "settle_s": round(settled, 2), "queued_at_end": queued,
            "connections_before": leftover,
            "logs": {"server": str(server.log_path), "load": str(load.log_path)}}
