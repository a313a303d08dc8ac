"""Ported tests run side by side in their own processes, their outcomes reported in pytest.

oslo's logging-handler scenarios each wait 15 s for stray events after the one they expect;
run one after the other they would take 150 s per driver. They use distinct topics (oslo runs
its suite in parallel), so each runs in its own process (:mod:`.worker`: ``cfg.CONF`` is per
process) while pytest shows one item per test whose outcome is the process's. The processes of
one driver start together when the first test of its module runs, and run while the module's
other tests do (their topics differ); pytest runs the drivers' modules one after the other and
a module's relays wait for their processes, so two drivers never consume the same queues.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import IO

__all__ = ["SubprocessRuns"]

#: Bound for one test's process (oslo's longest such test needs ~20 s).
RUN_TIMEOUT = 240.0


class SubprocessRuns:
    """The worker processes of one pytest session, by (driver, class, method)."""

    def __init__(self) -> None:
        self._running: dict[tuple[str, str, str], tuple[subprocess.Popen[bytes], IO[bytes]]] = {}
        self._started: set[tuple[str, str, str]] = set()
        self._dir = tempfile.TemporaryDirectory(prefix="msgbus-oslo-functional-")

    def start(self, driver: str, variables: dict[str, str], tests: list[tuple[str, str]]) -> None:
        """Start a process for each (class, method) of ``driver`` not started yet, with
        ``variables`` (the driver's :func:`.drivers.environment`) in its environment."""
        env = {**os.environ, **variables}
        worker = str(Path(__file__).with_name("worker.py"))
        for class_name, method in tests:
            key = (driver, class_name, method)
            if key not in self._started:
                self._started.add(key)
                # output to a file, not a pipe: a worker must never block on a full pipe
                log = tempfile.TemporaryFile(dir=self._dir.name)
                proc = subprocess.Popen(
                    [sys.executable, worker, class_name, method, self._outcome_file(key)],
                    env=env, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT)
                self._running[key] = (proc, log)

    def _outcome_file(self, key: tuple[str, str, str]) -> str:
        return os.path.join(self._dir.name, "-".join(key) + ".json")

    def outcome(self, driver: str, class_name: str, method: str) -> dict[str, str]:
        """Wait (bounded) for that test's process and return its outcome."""
        key = (driver, class_name, method)
        proc, log = self._running.pop(key)
        with log:
            try:
                proc.wait(timeout=RUN_TIMEOUT)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
            try:
                return dict(json.loads(Path(self._outcome_file(key)).read_text()))
            except (OSError, ValueError):
                log.seek(0)
                tail = log.read().decode(errors="replace")[-5000:]
                return {"outcome": "failed", "detail": f"worker exited {proc.returncode} "
                        f"without an outcome (bound {RUN_TIMEOUT:.0f} s); its output's end:\n"
                        + tail}

    def close(self) -> None:
        """End the processes whose outcome nobody asked for (a deselected or aborted run)."""
        for proc, log in self._running.values():
            proc.kill()
            proc.wait()
            log.close()
        self._running.clear()
        self._dir.cleanup()
