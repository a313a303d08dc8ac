"""The ``asyncio`` executor: ``async def`` handlers run as tasks on the application's loop.

The loop is the one running when the server starts (``await server.start_async()``,
``async with server`` or ``server.start()`` called from a coroutine). Plain functions still run
on a bounded thread pool (``executor_thread_pool_size``), so a server may mix both kinds of
endpoint methods. At most ``executor_coroutine_limit`` coroutines run at once per server; later
ones wait in order, as extra work waits for a free thread in the ``threading`` executor.

Each task runs in a copy of the context that was current when the server started, so
``contextvars`` set before ``start`` are visible in every handler and a value one handler sets
never leaks into another.
"""

from __future__ import annotations

import asyncio
import collections
import contextvars
import inspect
import logging
import threading
from typing import Any, Awaitable, Callable

from oslo_config import cfg

from msgbus.executors.base import Executor
from msgbus.executors.inbox import LoopInbox
from msgbus.executors.thread_pool import ThreadPoolExecutor
from msgbus.executors.send_pool import SendPool

LOG = logging.getLogger(__name__)

__all__ = ["AsyncioExecutor", "asyncio_opts"]

#: Most threads making replies and acks for one server's coroutines.
_DRIVER_CALL_THREADS = 32

asyncio_opts = [
    cfg.IntOpt("executor_coroutine_limit", default=1000, min=1,
               help="Most coroutines (async def endpoint methods) one server runs at once on "
                    "the event loop with the 'asyncio' executor; later messages wait in order."),
]


class AsyncioExecutor(Executor):
    """Runs coroutine functions on an event loop and plain functions on a thread pool."""

    runs_coroutines = True

    def __init__(self, conf: cfg.ConfigOpts) -> None:
        super().__init__(conf)
        conf.register_opts(asyncio_opts)
        self._limit: int = conf.executor_coroutine_limit
        self._threads = ThreadPoolExecutor(conf)
        # Replies and acks: driver calls that wait for the broker (a confirm), not CPU; about
        # as many threads as the AMQP drivers' send pools have connections (30 by default)
        # keep them all busy, with less contention for the GIL than the handler pool's 64.
        # (16 made the server ~20% cheaper per reply on issue 11's two-core benchmark, but
        # its clients as much dearer, replies reaching them in smaller bursts; and it would
        # halve the replies in flight to a distant broker.)
        self._driver_calls = SendPool(
            min(_DRIVER_CALL_THREADS, conf.executor_thread_pool_size), name="msgbus-driver-call")
        self._loop: asyncio.AbstractEventLoop | None = None
        self._inbox: LoopInbox | None = None
        self._context: contextvars.Context | None = None
        self._lock = threading.Lock()
        self._inflight = 0  # submitted coroutines not finished (queued ones included)
        self._running = 0  # touched on the loop only
        self._queued: collections.deque = collections.deque()  # loop only
        self._tasks: set[asyncio.Task] = set()  # loop only: strong references
        self._drained = threading.Event()
        self._drained.set()
        self._async_waiters: list[asyncio.Future] = []  # loop only
        self._shutdown = False

    @property
    def loop(self) -> asyncio.AbstractEventLoop | None:
        """The loop coroutines run on (None until :meth:`attach`)."""
        return self._loop

    def attach(self, loop: asyncio.AbstractEventLoop | None = None) -> None:
        """Run coroutines on ``loop`` (default: the running loop), in copies of the current
        context. Raises RuntimeError saying what to do when there is no loop."""
        if loop is None:
            try:
                loop = asyncio.get_running_loop()
            except RuntimeError:
                raise RuntimeError(
                    "the 'asyncio' executor runs async endpoints on the application's event "
                    "loop, and no loop is running here: start the server from a coroutine "
                    "(await server.start_async(), async with server, or server.start() inside "
                    "async code)") from None
        if self._loop is not None and self._loop is not loop:
            raise RuntimeError("this server's executor already runs on another event loop")
        self._loop = loop
        self._inbox = LoopInbox(loop)
        self._context = contextvars.copy_context()

    def submit(self, fn: Callable[..., Any], *args: Any) -> None:
        """A coroutine function is started on the loop; anything else goes to the threads
        (in a copy of the same context as the coroutines, once the executor is attached)."""
        if not inspect.iscoroutinefunction(fn):
            context = self._context
            if context is None:
                self._threads.submit(fn, *args)
            else:
                self._threads.submit(context.copy().run, fn, *args)
            return
        self.submit_coroutine(fn, *args)

    def submit_coroutine(self, fn: Callable[..., Awaitable[Any]], *args: Any) -> None:
        """:meth:`submit` for a caller that knows ``fn`` is a coroutine function (a server's
        hot path: no inspection per message)."""
        inbox = self._inbox
        if inbox is None:
            raise RuntimeError("the asyncio executor has no event loop (server not started)")
        with self._lock:
            if self._shutdown:
                raise RuntimeError("executor is shut down")
            self._inflight += 1
            if self._inflight == 1:
                self._drained.clear()
        if not inbox.post(self._admit, fn, args):
            self._done_one()
            raise RuntimeError("the event loop of the asyncio executor is closed")

    def call_driver(self, fn: Callable[..., Any], *args: Any) -> None:
        """From a handler on the loop: run ``fn(*args)`` (a reply, an ack: a driver call that
        may wait on the broker) on a thread, without waiting for it."""
        self._driver_calls.submit(fn, *args)

    def run_in_thread(self, fn: Callable[..., Any], *args: Any) -> Awaitable[Any]:
        """From a handler on the loop: run plain ``fn(*args)`` on the pool and await it."""
        loop = asyncio.get_running_loop()
        future = loop.create_future()
        context = contextvars.copy_context()

        def run() -> None:
            try:
                result = context.run(fn, *args)
            except BaseException as exc:  # handed to the awaiting coroutine
                loop.call_soon_threadsafe(_settle, future, None, exc)
            else:
                loop.call_soon_threadsafe(_settle, future, result, None)

        self._threads.submit(run)
        return future

    # -- on the loop ----------------------------------------------------------------------
    def _admit(self, fn: Callable[..., Any], args: tuple) -> None:
        if self._running >= self._limit:
            self._queued.append((fn, args))
            return
        self._start(fn, args)

    def _start(self, fn: Callable[..., Any], args: tuple) -> None:
        assert self._loop is not None and self._context is not None
        self._running += 1
        try:
            # A task copies the context it is created in: each gets its own copy of ours.
            task = self._context.run(self._loop.create_task, self._handle(fn, args))
        except Exception:
            LOG.exception("could not start message handler %r", fn)
            self._finished()
            return
        self._tasks.add(task)

    async def _handle(self, fn: Callable[..., Any], args: tuple) -> None:
        """One handler's task: its bookkeeping runs as it ends (no done-callback to schedule
        on the loop per message)."""
        try:
            await fn(*args)
        except Exception:
            LOG.exception("unhandled error in message handler %r", fn)
        finally:
            self._tasks.discard(asyncio.current_task())
            self._finished()

    def _finished(self) -> None:
        self._running -= 1
        while self._queued and self._running < self._limit:
            self._start(*self._queued.popleft())
        if self._done_one() == 0:
            waiters, self._async_waiters = self._async_waiters, []
            for waiter in waiters:
                if not waiter.done():
                    waiter.set_result(None)

    def _done_one(self) -> int:
        with self._lock:
            self._inflight -= 1
            left = self._inflight
            if left == 0:
                self._drained.set()
        return left

    # -- shutting down --------------------------------------------------------------------
    def _close(self) -> None:
        with self._lock:
            self._shutdown = True

    def shutdown(self, wait: bool = True) -> None:
        """Accept no more work; with ``wait``, block until every coroutine and thread task ran.

        Must not be called on the loop thread with ``wait`` (it would block the handlers it
        waits for): use :meth:`shutdown_async` there."""
        self._close()
        if wait:
            if self.on_loop_thread() and not self._drained.is_set():
                raise RuntimeError("waiting for async handlers from their own event loop would "
                                   "block it: await server.wait_async() instead of wait()")
            self._drained.wait()
        self._threads.shutdown(wait)
        self._driver_calls.shutdown(wait=wait)

    async def shutdown_async(self) -> None:
        """:meth:`shutdown` for the loop's own thread: awaits the coroutines, then the threads
        (joined off the loop)."""
        self._close()
        loop = asyncio.get_running_loop()
        if loop is self._loop:
            while not self._drained.is_set():
                waiter = loop.create_future()
                self._async_waiters.append(waiter)
                if self._drained.is_set():
                    break
                await waiter
        elif not self._drained.is_set():
            await loop.run_in_executor(None, self._drained.wait)
        await loop.run_in_executor(None, self._threads.shutdown, True)
        await loop.run_in_executor(None, self._driver_calls.shutdown, True)

    def on_loop_thread(self) -> bool:
        """True when called on the thread running this executor's loop."""
        try:
            return asyncio.get_running_loop() is self._loop
        except RuntimeError:
            return False


def _settle(future: asyncio.Future, result: Any, exc: BaseException | None) -> None:
    if future.done():  # the awaiting handler was cancelled
        return
    if exc is not None:
        future.set_exception(exc)
    else:
        future.set_result(result)
