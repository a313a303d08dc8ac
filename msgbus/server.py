"""The lifecycle every message-handling server shares: start, stop, wait, reset.

Subclasses (the RPC server, notification listeners) say what to listen on and what to do with
one delivery; this class owns the listener and the executor.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

from msgbus.driver.base import IncomingMessage, Listener
from msgbus.driver.loader import load_executor_class
from msgbus.exceptions import ExecutorLoadFailure, MessagingServerError, ServerListenError
from msgbus.executors.base import Executor
from msgbus.transport import Transport

LOG = logging.getLogger(__name__)

__all__ = ["MessageHandlingServer", "MessagingServerError", "ServerListenError",
           "ExecutorLoadFailure"]


class MessageHandlingServer:
    """Runs a listener whose deliveries are handled on an executor.

    ``stop`` stops taking messages; ``wait`` returns once the messages already taken have been
    handled (replies sent); ``start`` may be called again afterwards.
    """

    def __init__(self, transport: Transport, executor: str | type[Executor] = "threading") -> None:
        self.transport = transport
        self.conf = transport.conf
        if isinstance(executor, str):
            executor_cls = load_executor_class(executor)
        else:
            executor_cls = executor
        self._executor_cls = executor_cls
        self.executor_type = executor if isinstance(executor, str) else executor_cls.__name__
        self._lock = threading.Lock()
        self._listener: Listener | None = None
        self._executor: Executor | None = None

    # subclasses implement these two
    def _create_listener(self) -> Listener:
        raise NotImplementedError

    def _on_incoming(self, incoming: IncomingMessage) -> None:
        raise NotImplementedError

    @property
    def running(self) -> bool:
        return self._listener is not None

    def start(self, override_pool_size: int | None = None) -> None:
        """Begin consuming; safe to call on a started server (no effect)."""
        with self._lock:
            if self._listener is not None:
                return
            if self._executor is None:
                self._executor = self._executor_cls(self.conf)
            try:
                self._listener = self._create_listener()
            except Exception as exc:
                if isinstance(exc, MessagingServerError):
                    raise
                raise ServerListenError(getattr(self, "target", None), exc) from exc

    def _submit(self, fn: Any, *args: Any) -> None:
        executor = self._executor
        if executor is None:
            raise MessagingServerError("server is not running: message not handled")
        executor.submit(fn, *args)

    def stop(self) -> None:
        """Stop consuming; messages already received are still handled (see :meth:`wait`)."""
        with self._lock:
            listener, self._listener = self._listener, None
        if listener is not None:
            listener.stop()

    def wait(self) -> None:
        """Block until every message the server took has been handled."""
        if self._listener is not None:
            LOG.warning("wait() called on a running server: stopping it first")
            self.stop()
        with self._lock:
            executor, self._executor = self._executor, None
        if executor is not None:
            executor.shutdown(wait=True)

    def reset(self) -> None:
        """Kept for oslo.messaging compatibility: nothing to reset between runs."""
