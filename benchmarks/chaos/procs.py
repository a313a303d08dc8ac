"""Child processes of the chaos tool: own session, a one-word handshake on stdout, bounded stop.

A child stops when its stdin closes, so a dying orchestrator never leaves it behind; it runs in
its own session so that Ctrl-C reaches only the orchestrator, which then stops it in order.
"""

from __future__ import annotations

import os
import select
import subprocess
import sys
import time
from pathlib import Path
from typing import IO

from benchmarks.servers import REPO_ROOT

#: How long a child may take to stop after its stdin closed before it is killed (seconds).
STOP_TIMEOUT = 20.0


class ChildError(RuntimeError):
    """A child process died, or did not answer in time."""


def log_tail(path: Path, lines: int = 15) -> str:
    """The last ``lines`` lines of a log file (empty when unreadable)."""
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


class Child:
    """``python -m MODULE ARGS...`` with stdin and stdout as pipes and stderr in a log file."""

    def __init__(self, label: str, module: str, args: list[str], log_path: Path) -> None:
        self.label = label
        self.log_path = log_path
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO_ROOT),
                                                          env.get("PYTHONPATH")]))
        env["PYTHONUNBUFFERED"] = "1"
        with open(log_path, "wb") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", module, *args], stdin=subprocess.PIPE,
                stdout=subprocess.PIPE, stderr=log, env=env, cwd=str(REPO_ROOT),
                start_new_session=True)

    @property
    def alive(self) -> bool:
        """Whether the process is still running."""
        return self.proc.poll() is None

    def expect(self, word: str, timeout: float) -> None:
        """Wait until the child prints the line ``word``; ChildError if it dies or is late."""
        out: IO[bytes] = self.proc.stdout  # type: ignore[assignment]
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise ChildError(f"{self.label} did not say {word} within {timeout:g}s; log:\n"
                                 f"{log_tail(self.log_path)}")
            readable, _, _ = select.select([out], [], [], remaining)
            if not readable:
                continue
            line = out.readline()
            if not line:
                code = self.proc.wait(timeout=STOP_TIMEOUT)
                raise ChildError(f"{self.label} exited {code} before saying {word}; log:\n"
                                 f"{log_tail(self.log_path)}")
            if line.strip() == word.encode():
                return

    def close_stdin(self) -> None:
        """Tell the child to finish (it watches for end of file on stdin)."""
        stdin = self.proc.stdin
        if stdin is not None and not stdin.closed:
            try:
                stdin.close()
            except OSError:
                pass

    def stop(self, timeout: float = STOP_TIMEOUT) -> int | None:
        """Close stdin, wait up to ``timeout`` s, then kill; the exit code (None: killed)."""
        self.close_stdin()
        killed = False
        try:
            self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            killed = True
            self.proc.kill()
            try:
                self.proc.wait(timeout=STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                pass
        if self.proc.stdout is not None:
            self.proc.stdout.close()
        return None if killed else self.proc.returncode


def stop_all(children: list[Child]) -> None:
    """Stop every child, the last started first; an interruption while stopping one kills it and
    the rest are still stopped before the interruption goes on."""
    interrupted: BaseException | None = None
    for child in reversed(children):
        try:
            child.stop()
        except BaseException as exc:  # noqa: BLE001 - re-raised once all are stopped
            interrupted = interrupted or exc
            if child.alive:
                child.proc.kill()
    if interrupted is not None:
        raise interrupted
