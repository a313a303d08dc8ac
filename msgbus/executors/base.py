"""The executor interface: run message handlers somewhere other than the driver's thread."""

from __future__ import annotations

import abc
from typing import Any, Callable

from oslo_config import cfg


class Executor(abc.ABC):
    """Runs submitted handlers; ``shutdown(wait=True)`` returns when all submitted ones finished."""

    def __init__(self, conf: cfg.ConfigOpts) -> None:
        self.conf = conf

    @abc.abstractmethod
    def submit(self, fn: Callable[..., Any], *args: Any) -> None:
        """Schedule ``fn(*args)``; must not block the calling (driver) thread for long."""

    @abc.abstractmethod
    def shutdown(self, wait: bool = True) -> None:
        """Accept no more work; with ``wait``, return once everything submitted has run."""
