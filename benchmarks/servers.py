"""Starting and stopping benchmark servers: a subprocess per server, or a thread for fakes.

A server subprocess (``python -m benchmarks.serve``) prints ``READY`` once it consumes and stops
when its stdin closes, so a dying harness never leaves servers behind; every wait is bounded.
"""

from __future__ import annotations

import os
import select
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import IO

from benchmarks.contenders.base import Contender, ServerHandle

START_TIMEOUT = 60.0
STOP_TIMEOUT = 30.0
REPO_ROOT = Path(__file__).resolve().parent.parent


def _tail(path: Path, lines: int = 15) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


class ServerProcess(ServerHandle):
    """A server of ``contender`` in its own Python process (its CPU is read from /proc)."""

    def __init__(self, contender: str, topic: str, name: str, log_dir: Path) -> None:
        self.name = name
        self._log_path = log_dir / f"server-{contender}-{name}.log"
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO_ROOT),
                                                          env.get("PYTHONPATH")]))
        with open(self._log_path, "wb") as log:
            self._proc = subprocess.Popen(
                [sys.executable, "-m", "benchmarks.serve", contender, topic, name],
                stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=log, env=env,
                cwd=str(REPO_ROOT))
        self.pid = self._proc.pid
        try:
            self._wait_ready()
        except Exception:
            self.stop()
            raise

    def _wait_ready(self) -> None:
        out: IO[bytes] = self._proc.stdout  # type: ignore[assignment]
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(f"server {self.name} not ready in {START_TIMEOUT}s:\n"
                                   f"{_tail(self._log_path)}")
            readable, _, _ = select.select([out], [], [], remaining)
            if readable:
                line = out.readline()
                if not line:
                    self._proc.wait(timeout=STOP_TIMEOUT)
                    raise RuntimeError(f"server {self.name} exited with "
                                       f"{self._proc.returncode} before it was ready:\n"
                                       f"{_tail(self._log_path)}")
                if line.strip() == b"READY":
                    return

    def stop(self) -> None:
        if self._proc.poll() is None:
            try:
                self._proc.stdin.close()  # type: ignore[union-attr]
            except OSError:
                pass
            try:
                self._proc.wait(timeout=STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait(timeout=STOP_TIMEOUT)
        if self._proc.stdout is not None:
            self._proc.stdout.close()


class InProcessServer(ServerHandle):
    """A server in a thread of this process (for in-process fake brokers)."""

    def __init__(self, contender: Contender, topic: str, name: str) -> None:
        self.name = name
        self.pid = None
        self._stop = threading.Event()
        ready = threading.Event()
        self._error: BaseException | None = None

        def run() -> None:
            try:
                contender.serve(topic, name, ready.set, self._stop)
            except BaseException as exc:  # noqa: BLE001 - re-raised by the starter
                self._error = exc
                ready.set()

        self._thread = threading.Thread(target=run, name=f"bench-server-{name}", daemon=True)
        self._thread.start()
        if not ready.wait(START_TIMEOUT):
            raise TimeoutError(f"in-process server {name} not ready in {START_TIMEOUT}s")
        if self._error is not None:
            raise RuntimeError(f"in-process server {name} failed: {self._error!r}")

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(STOP_TIMEOUT)


def start_server(contender: Contender, topic: str, name: str, log_dir: Path) -> ServerHandle:
    """A running server of ``contender`` on ``topic``, in the process the contender needs."""
    if contender.in_process:
        return InProcessServer(contender, topic, name)
    return ServerProcess(contender.name, topic, name, log_dir)
