"""``--baseline REV``: msgbus's drivers as of an earlier revision, measured in the same run.

A speed claim such as "no row more than 5% below before" means little across runs on a shared
machine (another run's broker and load differ), so the drivers of revision ``REV`` are
exported from git into a temporary directory and run as extra contenders named
``<contender>@<rev>`` beside today's: the same core (this tree's), the same broker, the same
load, one after the other. Only the driver packages come from ``REV``; they must speak this
core's driver interface.
"""

from __future__ import annotations

import io
import subprocess
import tarfile
from pathlib import Path

#: Contenders whose driver can be taken from another revision: (contender, driver folder).
DRIVER_OF = {
    "msgbus-rabbit": "msgbus-kombu",
    "msgbus-rabbit-public": "msgbus-kombu",
    "msgbus-pika": "msgbus-pika",
    "msgbus-async-rabbit": "msgbus-kombu",
}


def split(name: str) -> tuple[str, str | None]:
    """``("msgbus-rabbit", "cf742f7")`` for ``msgbus-rabbit@cf742f7``; ``(name, None)`` else."""
    base, _, rev = name.partition("@")
    return base, (rev or None)


def resolve(repo: Path, rev: str) -> str:
    """``rev`` as a short commit id; raises ValueError naming the revision when git has none."""
    done = subprocess.run(["git", "rev-parse", "--short", f"{rev}^{{commit}}"], cwd=repo,
                          capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise ValueError(f"--baseline {rev!r}: not a commit of this repository "
                         f"({done.stderr.strip()})")
    return done.stdout.strip()


def export_drivers(repo: Path, rev: str, dest: Path) -> dict[str, Path]:
    """The driver folders of ``rev`` written under ``dest``: {driver folder: its path}."""
    archive = subprocess.run(["git", "archive", "--format=tar", rev, "drivers"], cwd=repo,
                             capture_output=True, check=True).stdout
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        tar.extractall(dest, filter="data")
    return {folder: dest / "drivers" / folder for folder in set(DRIVER_OF.values())
            if (dest / "drivers" / folder).is_dir()}


#: The contenders that get a twin by default: one per driver on its default path (an older
#: revision may lack the options the other msgbus contenders set, such as ``fast_path``).
TWINS = ("msgbus-rabbit", "msgbus-pika")


def with_baselines(names: list[str], rev: str) -> list[str]:
    """``names`` with ``<name>@<rev>`` after each of :data:`TWINS` among them."""
    out = []
    for name in names:
        out.append(name)
        if name in TWINS:
            out.append(f"{name}@{rev}")
    return out


def python_path(name: str, drivers: dict[str, Path]) -> str | None:
    """The folder to put first on ``PYTHONPATH`` for contender ``name`` (None: today's)."""
    base, rev = split(name)
    if rev is None or base not in DRIVER_OF:
        return None
    path = drivers.get(DRIVER_OF[base])
    return None if path is None else str(path)
