"""The ``eventlet`` executor name, kept so that services moving off eventlet keep starting.

oslo.messaging 18 still accepts ``executor="eventlet"`` (deprecated). msgbus has no eventlet
executor: the name loads the ``threading`` executor, with a deprecation warning (once per
process). Servers then run their endpoints on threads; under ``eventlet.monkey_patch()`` those
threads are green threads, as with oslo.messaging's eventlet executor.
"""

from __future__ import annotations

import logging
import threading
import warnings
from typing import Any

from msgbus.executors.thread_pool import ThreadPoolExecutor

LOG = logging.getLogger(__name__)

__all__ = ["ThreadingInsteadOfEventlet"]

_MESSAGE = ("executor 'eventlet' is deprecated (as in oslo.messaging): msgbus runs the server on "
            "the 'threading' executor instead; pass executor='threading' (or nothing) to "
            "silence this warning")
_lock = threading.Lock()
_warned = False


class ThreadingInsteadOfEventlet(ThreadPoolExecutor):
    """The ``threading`` executor, loaded under the name ``eventlet``."""


def _warn_once() -> None:
    global _warned
    with _lock:
        if _warned:
            return
        _warned = True
    warnings.warn(_MESSAGE, DeprecationWarning, stacklevel=2)
    LOG.warning("%s", _MESSAGE)


def __getattr__(name: str) -> Any:
    # The entry point names EventletExecutor: looking it up (when a server is built with
    # executor="eventlet") is the moment to warn.
    if name == "EventletExecutor":
        _warn_once()
        return ThreadingInsteadOfEventlet
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
