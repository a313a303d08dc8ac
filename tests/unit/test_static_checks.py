"""Lint and types stay clean at every commit: ruff over all the code, mypy over the core and the
drivers (the public API and the driver interface are typed; see ``[tool.mypy]``)."""

import pathlib
import shutil
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]


def _run(*cmd: str) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=300,
                          stdin=subprocess.DEVNULL, check=False)


def test_ruff_finds_nothing() -> None:
    exe = shutil.which("ruff")
    if exe is None:
        pytest.fail("ruff is not installed (it is in the [test] extra)")
    done = _run(exe, "check", "msgbus", "drivers", "tests", "benchmarks")
    assert done.returncode == 0, done.stdout + done.stderr


def test_mypy_finds_nothing() -> None:
    done = _run(sys.executable, "-m", "mypy")
    assert done.returncode == 0, done.stdout + done.stderr
