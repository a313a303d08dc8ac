"""Timing and CPU measurement: percentiles, this process's CPU, another process's CPU from /proc.

CPU of a process other than ours (an RPC server, the RabbitMQ node) is read from
``/proc/<pid>/stat`` (user + system time, in clock ticks), so measuring it costs that process
nothing; our own CPU comes from :func:`time.process_time`.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field

_TICKS_PER_SECOND = os.sysconf("SC_CLK_TCK")


def percentile(samples: list[float], fraction: float) -> float:
    """The ``fraction`` (0..1) percentile of ``samples`` by nearest rank; NaN when empty."""
    if not samples:
        return float("nan")
    ordered = sorted(samples)
    rank = max(0, min(len(ordered) - 1, round(fraction * len(ordered) + 0.5) - 1))
    return ordered[rank]


def proc_cpu_seconds(pid: int) -> float | None:
    """User + system CPU seconds of process ``pid`` so far, or None if it cannot be read."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as stat:
            raw = stat.read().decode("ascii", "replace")
    except OSError:
        return None
    # the command name (field 2) is in parentheses and may hold spaces: split after it
    fields = raw[raw.rfind(")") + 2:].split()
    # fields[0] is field 3 (state); utime and stime are fields 14 and 15
    return (int(fields[11]) + int(fields[12])) / _TICKS_PER_SECOND


def own_cpu_seconds() -> float:
    """CPU seconds (user + system, all threads) of this process so far."""
    return time.process_time()


@dataclass
class CpuSample:
    """CPU seconds of the client (this process), the servers and the broker at one instant."""

    client: float
    servers: float | None
    broker: float | None


@dataclass
class CpuMeter:
    """Reads client, server and broker CPU; the difference of two samples is a scenario's cost."""

    server_pids: list[int] = field(default_factory=list)
    broker: int | None = None

    def sample(self) -> CpuSample:
        servers: float | None = None
        if self.server_pids:
            readings = [proc_cpu_seconds(pid) for pid in self.server_pids]
            servers = None if None in readings else sum(r for r in readings if r is not None)
        broker = proc_cpu_seconds(self.broker) if self.broker else None
        return CpuSample(own_cpu_seconds(), servers, broker)

    @staticmethod
    def per_op_us(before: CpuSample, after: CpuSample, ops: int) -> dict[str, float | None]:
        """Microseconds of CPU per operation between two samples, per process kind."""
        def per(b: float | None, a: float | None) -> float | None:
            if a is None or b is None or ops <= 0:
                return None
            return (a - b) / ops * 1e6

        client = per(before.client, after.client)
        server = per(before.servers, after.servers)
        total = None if client is None else client + (server or 0.0)
        return {"cpu_per_call_us": total, "client_cpu_per_call_us": client,
                "server_cpu_per_call_us": server,
                "broker_cpu_per_call_us": per(before.broker, after.broker)}
