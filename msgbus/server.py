"""The lifecycle every message-handling server shares: start, stop, wait, reset.

Subclasses (the RPC server, notification listeners) say what to listen on and what to do with
one delivery; this class owns the listener and the executor.

From asyncio code, ``await start_async()`` / ``stop_async()`` / ``wait_async()`` (or
``async with server:``) do the same without blocking the event loop; with the ``asyncio``
executor the loop they run on is the one the async endpoints run on.
"""

from __future__ import annotations

import abc
import asyncio
import contextvars
import logging
import sys
import threading
from types import TracebackType
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
        _register_as_oslo_service()
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

    @property
    def runs_coroutines(self) -> bool:
        """Whether the executor runs ``async def`` handlers (the ``asyncio`` executor)."""
        return bool(getattr(self._executor_cls, "runs_coroutines", False))

    def _ensure_executor(self, loop: asyncio.AbstractEventLoop | None = None) -> Executor:
        # caller holds self._lock; an asyncio executor binds to the caller's loop and context
        if self._executor is None:
            executor = self._executor_cls(self.conf)
            attach = getattr(executor, "attach", None)
            if attach is not None:
                attach(loop)
            self._executor = executor
        return self._executor

    def start(self, override_pool_size: int | None = None) -> None:
        """Begin consuming; safe to call on a started server (no effect)."""
        with self._lock:
            if self._listener is not None:
                return
            self._ensure_executor()
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

    def _submit_async(self, fn: Any, *args: Any) -> None:
        """Submit coroutine function ``fn(executor, *args)``: it gets the executor it runs on,
        which ``wait()`` may have taken off the server before the coroutine starts."""
        executor = self._executor
        if executor is None:
            raise MessagingServerError("server is not running: message not handled")
        # The asyncio executor takes a known coroutine function without inspecting it (a hot
        # path); any other coroutine-running executor through its submit().
        submit = getattr(executor, "submit_coroutine", executor.submit)
        submit(fn, executor, *args)

    def stop(self) -> None:
        """Stop consuming; messages already received are still handled (see :meth:`wait`)."""
        with self._lock:
            listener, self._listener = self._listener, None
        if listener is not None:
            listener.stop()

    def wait(self) -> None:
        """Block until every message the server took has been handled."""
        executor = self._executor
        on_loop = getattr(executor, "on_loop_thread", None)
        if on_loop is not None and on_loop():
            raise RuntimeError("wait() on the event loop the server's async endpoints run on "
                               "would block them: use 'await server.wait_async()' (or "
                               "'async with server:')")
        if self._listener is not None:
            LOG.warning("wait() called on a running server: stopping it first")
            self.stop()
        with self._lock:
            executor, self._executor = self._executor, None
        if executor is not None:
            executor.shutdown(wait=True)
        self._waited()

    def _waited(self) -> None:
        """Hook: everything taken has been handled (subclasses release their helpers)."""

    # -- asyncio ---------------------------------------------------------------------------
    async def start_async(self) -> None:
        """:meth:`start` from a coroutine: connecting and declaring queues run off the loop;
        the ``asyncio`` executor runs the async endpoints on this loop."""
        loop = asyncio.get_running_loop()
        with self._lock:
            if self._listener is not None:
                return
            self._ensure_executor(loop)
        await loop.run_in_executor(None, contextvars.copy_context().run, self.start)

    async def stop_async(self) -> None:
        """:meth:`stop` from a coroutine, without blocking the loop."""
        await asyncio.get_running_loop().run_in_executor(None, self.stop)

    async def wait_async(self) -> None:
        """:meth:`wait` from a coroutine: returns once every message taken has been handled
        (async handlers included), without blocking the loop."""
        if self._listener is not None:
            LOG.warning("wait_async() called on a running server: stopping it first")
            await self.stop_async()
        with self._lock:
            executor, self._executor = self._executor, None
        loop = asyncio.get_running_loop()
        if executor is not None:
            shutdown_async = getattr(executor, "shutdown_async", None)
            if shutdown_async is not None:
                await shutdown_async()
            else:
                await loop.run_in_executor(None, executor.shutdown, True)
        await loop.run_in_executor(None, self._waited)

    async def __aenter__(self) -> "MessageHandlingServer":
        await self.start_async()
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None,
                        exc: BaseException | None, tb: TracebackType | None) -> None:
        await self.stop_async()
        await self.wait_async()

    def reset(self) -> None:
        """Kept for oslo.messaging compatibility: nothing to reset between runs."""


def _register_as_oslo_service() -> None:
    """oslo.service's launcher runs only ``ServiceBase`` instances (oslo.messaging's servers
    are ones): when oslo.service is loaded, declare msgbus's servers one too (an ABC
    registration; msgbus never imports oslo.service, with its eventlet, itself)."""
    for name in ("oslo_service.backend.base", "oslo_service.service"):
        service_base = getattr(sys.modules.get(name), "ServiceBase", None)
        if isinstance(service_base, abc.ABCMeta) \
                and not issubclass(MessageHandlingServer, service_base):
            service_base.register(MessageHandlingServer)
