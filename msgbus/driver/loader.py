"""Finding and checking drivers and executors through stevedore entry points."""

from __future__ import annotations

import difflib
import importlib.metadata
import logging
from typing import Any

from stevedore import driver as sd_driver

from msgbus.driver.base import API_VERSION, REQUIRED_METHODS, Driver
from msgbus.exceptions import DriverLoadFailure, ExecutorLoadFailure

LOG = logging.getLogger(__name__)

DRIVER_GROUP = "msgbus.drivers"
EXECUTOR_GROUP = "msgbus.executors"


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
    if version != API_VERSION:
        raise DriverLoadFailure(name, f"{cls.__module__}.{cls.__qualname__} implements driver "
                                f"interface version {version!r}, this msgbus speaks {API_VERSION}")
    missing = [m for m in REQUIRED_METHODS
               if not callable(getattr(cls, m, None))
               or getattr(getattr(cls, m), "__isabstractmethod__", False)]
    if missing:
        raise DriverLoadFailure(name, f"{cls.__module__}.{cls.__qualname__} does not implement: "
                                f"{', '.join(missing)}")


def load_driver_class(name: str) -> type[Driver]:
    """The driver class registered under ``name`` (a URL scheme), checked."""
    # Checked first so that a typo gets our error alone, not also a stevedore warning.
    if name not in installed(DRIVER_GROUP):
        raise DriverLoadFailure(name, _unknown("transport driver", name, DRIVER_GROUP))
    try:
        mgr = sd_driver.DriverManager(DRIVER_GROUP, name, invoke_on_load=False)
    except sd_driver.NoMatches:
        raise DriverLoadFailure(name, _unknown("transport driver", name, DRIVER_GROUP)) from None
    except Exception as exc:  # the plugin's own import failed
        raise DriverLoadFailure(name, f"{type(exc).__name__}: {exc}") from exc
    check_driver_class(mgr.driver, name)
    return mgr.driver


def load_executor_class(name: str) -> type:
    """The executor class registered under ``name``."""
    if name not in installed(EXECUTOR_GROUP):
        raise ExecutorLoadFailure(name, _unknown("executor", name, EXECUTOR_GROUP))
    try:
        return sd_driver.DriverManager(EXECUTOR_GROUP, name, invoke_on_load=False).driver
    except sd_driver.NoMatches:
        raise ExecutorLoadFailure(name, _unknown("executor", name, EXECUTOR_GROUP)) from None
    except Exception as exc:
        raise ExecutorLoadFailure(name, f"{type(exc).__name__}: {exc}") from exc
