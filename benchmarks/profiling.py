"""Optional sampling profiles of the client and server processes with py-spy (``--profile DIR``).

py-spy samples a running process from outside (no code change); with ``--gil`` it records only
the thread holding the GIL, i.e. Python code on the CPU. :func:`summarize` turns the collapsed
stacks into the functions taking the most of it, by own time and including callees.
"""

from __future__ import annotations

import collections
import shutil
import signal
import subprocess
from pathlib import Path

RATE = 1000  # samples per second


class Profile:
    """One py-spy recording of process ``pid`` into ``<out_dir>/<label>.folded``."""

    def __init__(self, pid: int, label: str, out_dir: Path) -> None:
        self.label = label
        self.path = out_dir / f"{label}.folded"
        exe = shutil.which("py-spy")
        if exe is None:
            raise RuntimeError("--profile needs py-spy (pip install py-spy)")
        self._log = open(out_dir / f"{label}.py-spy.log", "wb")  # noqa: SIM115 - closed in stop
        self._proc = subprocess.Popen(
            [exe, "record", "--pid", str(pid), "--rate", str(RATE), "--format", "raw", "--gil",
             "--output", str(self.path)], stdout=self._log, stderr=subprocess.STDOUT)

    def stop(self) -> None:
        """Stop sampling and let py-spy write its file (bounded)."""
        if self._proc.poll() is None:
            self._proc.send_signal(signal.SIGINT)
            try:
                self._proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait(timeout=10)
        self._log.close()


def _frame_name(frame: str) -> str:
    # py-spy frames read "function (path/to/file.py:123)": keep function and short path
    name, _, where = frame.partition(" (")
    where = where.rstrip(")")
    path, _, _line = where.rpartition(":")
    parts = Path(path).parts
    short = "/".join(parts[-2:]) if parts else path
    return f"{name} ({short})"


def summarize(path: Path, top: int = 20) -> str:
    """The ``top`` functions by own samples and by inclusive samples, as text."""
    own: collections.Counter[str] = collections.Counter()
    inclusive: collections.Counter[str] = collections.Counter()
    total = 0
    try:
        lines = path.read_text(errors="replace").splitlines()
    except OSError as exc:
        return f"no profile: {exc}"
    for line in lines:
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        frames = [_frame_name(f) for f in stack.split(";")]
        # the first frame is the thread ("process 123:..." / "thread (0x..)"): not code
        code = [f for f in frames if "(" in f and not f.startswith(("thread", "process"))]
        if not code:
            continue
        total += count
        own[code[-1]] += count
        for frame in set(code):
            inclusive[frame] += count
    if not total:
        return "no samples"
    out = [f"{total} samples at {RATE}/s (only threads holding the GIL)", "", "own time:"]
    out += [f"  {100 * n / total:5.1f}%  {name}" for name, n in own.most_common(top)]
    out += ["", "including callees:"]
    out += [f"  {100 * n / total:5.1f}%  {name}" for name, n in inclusive.most_common(top)]
    return "\n".join(out)
