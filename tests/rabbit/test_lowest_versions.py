"""Both AMQP drivers on the lowest kombu, py-amqp and pika releases their setup.cfg declare.

A virtualenv on top of this environment (``--system-site-packages``: msgbus and both drivers as
installed here) gets exactly those lower bounds from PyPI, then runs the conformance suite of
each driver there, fault scenarios included, once (the ``fast`` parameter: on releases the fast
paths were not verified against, the drivers fall back to the libraries' public API and pika's
plain SelectConnection by themselves, which this also checks).
"""

from __future__ import annotations

import configparser
import pathlib
import re
import subprocess
import sys

import pytest
from packaging.version import Version

ROOT = pathlib.Path(__file__).resolve().parents[2]
#: The broker libraries whose lower bounds are tested, by the driver that declares them.
LIBRARIES = {"msgbus-kombu": ("kombu", "amqp"), "msgbus-pika": ("pika",)}

pytestmark = pytest.mark.timeout(1200)


def lower_bounds() -> dict[str, str]:
    """``{"kombu": "5.3", ...}``: the ``>=`` bound of each broker library in the drivers'
    setup.cfg."""
    bounds = {}
    for driver, names in LIBRARIES.items():
        parser = configparser.ConfigParser()
        parser.read(ROOT / "drivers" / driver / "setup.cfg")
        for line in parser["options"]["install_requires"].split("\n"):
            match = re.match(r"\s*([A-Za-z0-9_.-]+)\s*>=\s*([0-9][0-9.]*)", line)
            if match and match.group(1).lower() in names:
                bounds[match.group(1).lower()] = match.group(2)
    assert sorted(bounds) == sorted(n for names in LIBRARIES.values() for n in names), bounds
    return bounds


def test_drivers_pass_conformance_on_their_lowest_versions(tmp_path: pathlib.Path) -> None:
    bounds = lower_bounds()
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--system-site-packages", str(venv)],
                   check=True, timeout=120)
    python = str(venv / "bin" / "python")
    pins = [f"{name}=={version}" for name, version in bounds.items()]
    installed = subprocess.run([python, "-m", "pip", "install", "-q", "--no-deps", *pins],
                               capture_output=True, text=True, timeout=300)
    assert installed.returncode == 0, installed.stderr[-3000:]
    versions = subprocess.run(
        [python, "-c", "import importlib.metadata as m; "
                       f"print(' '.join(m.version(n) for n in {sorted(bounds)!r}))"],
        capture_output=True, text=True, check=True, timeout=60).stdout.split()
    assert [Version(v) for v in versions] == [Version(bounds[n]) for n in sorted(bounds)]
    run = subprocess.run(
        [python, "-m", "pytest", "-q", "-x", "-p", "no:cacheprovider", "-k", "fast",
         "tests/rabbit/test_conformance.py", "tests/pika/test_conformance.py"],
        cwd=ROOT, capture_output=True, text=True, timeout=1100)
    assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-2000:]
    assert re.search(r"\d+ passed", run.stdout)
