"""What the results were measured on: machine, library versions, broker version, date."""

from __future__ import annotations

import datetime
import importlib.metadata
import os
import platform
import subprocess
from pathlib import Path
from typing import Any

from benchmarks.broker import rabbitmq_version

LIBRARIES = ("msgbus", "oslo.messaging", "kombu", "amqp", "pika", "orjson")


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as info:
            for line in info:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def memory_gib() -> float | None:
    try:
        with open("/proc/meminfo", encoding="utf-8") as info:
            for line in info:
                if line.startswith("MemTotal:"):
                    return int(line.split()[1]) / (1024 * 1024)
    except (OSError, ValueError):
        pass
    return None


def library_versions() -> dict[str, str]:
    found = {"python": platform.python_version()}
    for name in LIBRARIES:
        try:
            found[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            found[name] = "not installed"
    return found


def source_revision() -> str:
    """The repository's commit (``+ local changes`` when the tree differs), or "unknown"."""
    root = Path(__file__).resolve().parent.parent
    try:
        head = subprocess.run(["git", "-C", str(root), "rev-parse", "--short", "HEAD"],
                              capture_output=True, text=True, timeout=30, check=True).stdout
        dirty = subprocess.run(["git", "-C", str(root), "status", "--porcelain", "--",
                                "msgbus", "drivers"], capture_output=True, text=True,
                               timeout=30, check=True).stdout
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return head.strip() + (" + local changes" if dirty.strip() else "")


def describe(with_broker: bool) -> dict[str, Any]:
    """Machine, versions and date as a dict for the report."""
    memory = memory_gib()
    info: dict[str, Any] = {
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "cores": os.cpu_count(),
        "cpu": cpu_model(),
        "memory": f"{memory:.0f} GiB" if memory else "unknown",
        "os": platform.platform(),
        "versions": library_versions(),
        "revision": source_revision(),
    }
    if with_broker:
        info["versions"]["RabbitMQ"] = rabbitmq_version() or "unknown"
    return info
