"""Finding and checking drivers and executors through stevedore entry points."""

from __future__ import annotations

import dataclasses
import difflib
import importlib.metadata
import logging
from typing import Any

from stevedore import named as sd_named

from msgbus.driver.base import (API_VERSION, COMPATIBLE_API_VERSIONS, DEADLINE_METHODS,
                                REQUIRED_METHODS, Driver)
from msgbus.exceptions import DriverLoadFailure, ExecutorLoadFailure

LOG = logging.getLogger(__name__)

DRIVER_GROUP = "msgbus.drivers"
EXECUTOR_GROUP = "msgbus.executors"

#: The distribution that provides each well-known scheme, named when the scheme is not installed.
KNOWN_DRIVER_DISTRIBUTIONS: tuple[tuple[str, str], ...] = (
    ("rabbit", "msgbus-kombu"), ("kombu", "msgbus-kombu"), ("pika", "msgbus-pika"))


@dataclasses.dataclass(frozen=True)
class DriverEntry:
    """Where a driver comes from: its scheme's entry point and the distribution declaring it."""

    scheme: str
    target: str  # "module:Class", as the entry point names it
    distribution: str | None
    version: str | None

    @property
    def origin(self) -> str:
        """A short "entry point ... of distribution ..." phrase for error messages."""
        dist = f"{self.distribution} {self.version}" if self.distribution else "an unknown " \
            "distribution"
        return f"entry point {self.scheme} = {self.target} in group {DRIVER_GROUP!r} of {dist}"


def driver_entries() -> list[DriverEntry]:
    """Every registered transport driver scheme with its entry point and distribution, sorted."""
    entries: dict[str, DriverEntry] = {}
    for ep in importlib.metadata.entry_points(group=DRIVER_GROUP):
        dist = getattr(ep, "dist", None)
        entries.setdefault(ep.name, DriverEntry(
            ep.name, ep.value, dist.metadata["Name"] if dist is not None else None,
            dist.version if dist is not None else None))
    return [entries[name] for name in sorted(entries)]


def driver_entry(scheme: str) -> DriverEntry | None:
    """The entry of ``scheme``, or None when no installed distribution registers it."""
    return next((e for e in driver_entries() if e.scheme == scheme), None)


def install_hint(scheme: str) -> str:
    """What to install for ``scheme`` when a known distribution provides it, else ''."""
    dist = dict(KNOWN_DRIVER_DISTRIBUTIONS).get(scheme)
    if dist is None:
        return ""
    return f"the {scheme}:// driver is in the distribution {dist!r}: install it with " \
           f"'pip install {dist}'"


def installed(group: str) -> list[str]:
    """Names registered in an entry point group, sorted."""
    return sorted({ep.name for ep in importlib.metadata.entry_points(group=group)})


def _unknown(kind: str, name: str, group: str) -> str:
    names = installed(group)
    msg = f"no {kind} named {name!r} is installed (entry point group {group!r}); installed: " \
          f"{', '.join(names) or 'none'}"
    close = difflib.get_close_matches(name, names, n=1)
    if close:
        msg += f"; did you mean {close[0]!r}?"
    return msg


def check_driver_class(cls: Any, name: str) -> None:
    """Fail with a message naming what is wrong when ``cls`` does not implement the interface."""
    if not isinstance(cls, type):
        raise DriverLoadFailure(name, f"entry point gives {cls!r}, not a class")
    version = getattr(cls, "api_version", None)
    if version not in COMPATIBLE_API_VERSIONS:
        loads = ", ".join(map(str, sorted(COMPATIBLE_API_VERSIONS)))
        raise DriverLoadFailure(name, f"{cls.__module__}.{cls.__qualname__} implements driver "
                                f"interface version {version!r}, this msgbus speaks {API_VERSION} "
                                f"(and loads versions {loads})")
    missing = [m for m in REQUIRED_METHODS
               if not callable(getattr(cls, m, None))
               or getattr(getattr(cls, m), "__isabstractmethod__", False)]
    if missing:
        raise DriverLoadFailure(name, f"{cls.__module__}.{cls.__qualname__} does not implement: "
                                f"{', '.join(missing)}")


def _load_plugin(group: str, name: str) -> Any | None:
    """The object registered as ``name`` in ``group``, or None when nothing is registered.

    stevedore's entry point cache makes this cheap; the slow full scan of installed packages
    (:func:`installed`) only runs to word an error.
    """
    def reraise(manager: Any, entry_point: Any, exc: BaseException) -> None:
        raise exc

    mgr = sd_named.NamedExtensionManager(group, names=[name], invoke_on_load=False,
                                         on_load_failure_callback=reraise,
                                         on_missing_entrypoints_callback=lambda missing: None)
    return mgr[name].plugin if name in mgr.names() else None


def load_driver_class(name: str) -> type[Driver]:
    """The driver class registered under ``name`` (a URL scheme), checked."""
    try:
        cls = _load_plugin(DRIVER_GROUP, name)
    except Exception as exc:  # the plugin's own import failed
        entry = driver_entry(name)
        where = f" (importing {entry.origin})" if entry else ""
        raise DriverLoadFailure(name, f"{type(exc).__name__}: {exc}{where}") from exc
    if cls is None:
        hint = install_hint(name)
        raise DriverLoadFailure(name, f"{hint}; " * bool(hint)
                                + _unknown("transport driver", name, DRIVER_GROUP))
    check_driver_class(cls, name)
    if cls.api_version < API_VERSION:
        _warn_old_interface(cls, name)
    return cls


def _warn_old_interface(cls: type[Driver], name: str) -> None:
    """Say, whenever a transport loads an older driver, what it lacks and how to add it."""
    LOG.warning("transport driver %r (%s.%s) implements driver interface version %d: it "
                "works, but its sends and listens are not told their deadline, so a call "
                "may outlive its timeout while the broker is unreachable. To fix: accept a "
                "keyword 'deadline: float | None = None' (a time.monotonic() instant) in %s, "
                "end every wait by it, and set api_version = %d (see msgbus.driver.base).",
                name, cls.__module__, cls.__qualname__, cls.api_version,
                ", ".join(DEADLINE_METHODS), API_VERSION)


def load_executor_class(name: str) -> type:
    """The executor class registered under ``name``."""
    try:
        cls = _load_plugin(EXECUTOR_GROUP, name)
    except Exception as exc:
        raise ExecutorLoadFailure(name, f"{type(exc).__name__}: {exc}") from exc
    if cls is None:
        raise ExecutorLoadFailure(name, _unknown("executor", name, EXECUTOR_GROUP))
    return cls
