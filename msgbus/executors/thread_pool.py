"""The ``threading`` executor: a bounded pool of worker threads."""

from __future__ import annotations

import concurrent.futures
import logging
from typing import Any, Callable

from oslo_config import cfg

from msgbus.executors.base import Executor

LOG = logging.getLogger(__name__)


class ThreadPoolExecutor(Executor):
    """Runs handlers on at most ``executor_thread_pool_size`` threads; extra work queues."""

    def __init__(self, conf: cfg.ConfigOpts) -> None:
        super().__init__(conf)
        self._pool = concurrent.futures.ThreadPoolExecutor(
            max_workers=conf.executor_thread_pool_size, thread_name_prefix="msgbus-worker")

    def submit(self, fn: Callable[..., Any], *args: Any) -> None:
        self._pool.submit(self._run, fn, args)

    @staticmethod
    def _run(fn: Callable[..., Any], args: tuple) -> None:
        try:
            fn(*args)
        except Exception:  # a handler must never take a worker down silently
            LOG.exception("unhandled error in message handler %r", fn)

    def shutdown(self, wait: bool = True) -> None:
        self._pool.shutdown(wait=wait)
