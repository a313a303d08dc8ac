"""The ``threading`` executor: a bounded pool of worker threads fed by one queue.

Lighter than :class:`concurrent.futures.ThreadPoolExecutor` on the hot path (no Future per
message): a server never needs the result of a handler, only that it ran.
"""

from __future__ import annotations

import logging
import queue
import threading
from typing import Any, Callable

from oslo_config import cfg

from msgbus.executors.base import Executor

LOG = logging.getLogger(__name__)

_STOP = None


class ThreadPoolExecutor(Executor):
    """Runs handlers on at most ``executor_thread_pool_size`` threads; extra work queues.

    Threads start on demand: a submission takes an idle worker when there is one, else starts a
    new worker while under the limit, else waits in the queue for the next free worker.
    """

    def __init__(self, conf: cfg.ConfigOpts, max_workers: int | None = None,
                 name: str = "msgbus-worker") -> None:
        super().__init__(conf)
        self._max_workers = max_workers or conf.executor_thread_pool_size
        self._name = name
        self._work: queue.SimpleQueue = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._threads: list[threading.Thread] = []
        self._idle = 0
        self._shutdown = False

    def submit(self, fn: Callable[..., Any], *args: Any) -> None:
        with self._lock:
            if self._shutdown:
                raise RuntimeError("executor is shut down")
            self._work.put((fn, args))
            if self._idle:
                self._idle -= 1
                return
            if len(self._threads) < self._max_workers:
                thread = threading.Thread(target=self._worker, daemon=True,
                                          name=f"{self._name}-{len(self._threads)}")
                self._threads.append(thread)
                thread.start()

    def _worker(self) -> None:
        while True:
            item = self._work.get()
            if item is _STOP:
                return
            fn, args = item
            try:
                fn(*args)
            except Exception:  # a handler must never take a worker down silently
                LOG.exception("unhandled error in message handler %r", fn)
            with self._lock:
                self._idle += 1

    def shutdown(self, wait: bool = True) -> None:
        with self._lock:
            if self._shutdown:
                threads: list[threading.Thread] = []
            else:
                self._shutdown = True
                threads = list(self._threads)
                for _ in threads:
                    self._work.put(_STOP)
        if wait:
            for thread in threads:
                if thread is not threading.current_thread():
                    thread.join()
