"""What the harness asks of the local RabbitMQ node: its pid, version, and leftover cleanup."""

from __future__ import annotations

import subprocess

from benchmarks.contenders.base import RABBIT_HOST, RABBIT_PORT

CTL_TIMEOUT = 30.0


def _rabbitmqctl(*args: str) -> str | None:
    try:
        done = subprocess.run(["rabbitmqctl", *args], capture_output=True, text=True,
                              timeout=CTL_TIMEOUT, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return done.stdout if done.returncode == 0 else None


def broker_pid() -> int | None:
    """The OS pid of the local RabbitMQ node (its beam.smp process), or None."""
    out = _rabbitmqctl("eval", "os:getpid().") or ""
    digits = "".join(ch for ch in out if ch.isdigit())
    return int(digits) if digits else None


def rabbitmq_version() -> str | None:
    """``rabbitmqctl version`` of the local node, or None when it cannot be asked."""
    lines = (_rabbitmqctl("version") or "").strip().splitlines()
    return lines[-1].strip() if lines else None


def queues_named(fragment: str) -> list[str] | None:
    """Names of the queues on the node that contain ``fragment`` (None: could not list)."""
    out = _rabbitmqctl("list_queues", "-q", "--no-table-headers", "name")
    if out is None:
        return None
    return [name.strip() for name in out.splitlines() if fragment in name]


def delete(queues: list[str], exchanges: list[str]) -> list[str]:
    """Delete queues and exchanges by name (missing ones are fine); the problems met."""
    import pika
    params = pika.ConnectionParameters(host=RABBIT_HOST, port=RABBIT_PORT,
                                       credentials=pika.PlainCredentials("guest", "guest"))
    try:
        connection = pika.BlockingConnection(params)
    except Exception as exc:  # noqa: BLE001 - reported, the run goes on
        return [f"cleanup: cannot connect: {exc!r}"]
    problems = []
    try:
        channel = connection.channel()
        for queue in queues:
            channel.queue_delete(queue)
        for exchange in exchanges:
            channel.exchange_delete(exchange)
    except Exception as exc:  # noqa: BLE001 - reported in the results
        problems.append(f"cleanup: {exc!r}")
    finally:
        if connection.is_open:
            connection.close()
    return problems
