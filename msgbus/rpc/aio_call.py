"""Awaited RPC calls: one future per call, one loop wake-up per burst of replies.

A call made with ``call_async`` is serialized in the caller's task, registered with the
transport's reply waiter, and sent from the transport's
:class:`~msgbus.executors.send_pool.SendPool` (drivers block while the broker confirms; the pool
has as many threads as the drivers have send connections, and a send that succeeds wakes
nobody). Its reply, handed over by the driver's
thread, reaches the caller's future through a :class:`LoopInbox`, which wakes the loop once for
all the replies that arrived since it last ran. A timer on the loop ends the call at its
deadline, whatever the send is doing; cancelling the awaiting task, like a timeout, frees the
reply slot (a later reply is dropped).
"""

from __future__ import annotations

import asyncio
import functools
import threading
import time
import weakref
from typing import TYPE_CHECKING, Any, Callable

from msgbus import envelope
from msgbus.exceptions import MessagingTimeout
from msgbus.executors.inbox import LoopInbox
# A cycle, resolved at import: msgbus.rpc imports its client module first, which imports this
# one; the client's names are looked up when a call is made (an import per call cost ~1 us).
from msgbus.rpc import client as _client

if TYPE_CHECKING:
    from msgbus.rpc.client import _Call, _CallContext

__all__ = ["AsyncCalls"]


def _settle(future: asyncio.Future, result: Any, exc: BaseException | None) -> None:
    if future.done():  # the awaiting task was cancelled, or its call timed out
        return
    if exc is not None:
        future.set_exception(exc)
    else:
        future.set_result(result)


def _expire(future: asyncio.Future, ctx: "_CallContext", msg_id: str, method: str,
            timeout: float | None) -> None:
    """The call's deadline passed (the timer's callback: the message is built only now)."""
    if not future.done():
        future.set_exception(MessagingTimeout(
            f"Timed out waiting for a reply to message ID {msg_id}"
            f"{ctx._describe(method, timeout)}: no server replied in time (is one running and "
            f"reachable?)"))


class AsyncCalls:
    """What a client and its ``prepare()`` copies share for awaited calls and casts: an inbox
    per loop, and whether the transport's reply address exists yet (its setup may wait on the
    broker, so the first call makes it off the loop). Sends go to the transport's send pool."""

    def __init__(self) -> None:
        self._inboxes: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
        self._lock = threading.Lock()
        self._waiter: Any = None

    def _inbox(self, loop: asyncio.AbstractEventLoop) -> LoopInbox:
        inbox = self._inboxes.get(loop)
        if inbox is None:
            with self._lock:
                inbox = self._inboxes.get(loop)
                if inbox is None:
                    inbox = self._inboxes[loop] = LoopInbox(loop)
        return inbox

    def run(self, ctx: "_CallContext", fn: Callable[..., Any], *args: Any) -> asyncio.Future:
        """Run blocking ``fn(*args)`` (a send) on the send pool; a future of its outcome, set
        on the running loop. Awaiting it adds no bound: the caller bounds it if it must."""
        loop = asyncio.get_running_loop()
        future = loop.create_future()
        inbox = self._inbox(loop)

        def run() -> None:
            try:
                result = fn(*args)
            except BaseException as exc:  # noqa: BLE001 - handed to the awaiting task
                inbox.post(_settle, future, None, exc)
            else:
                inbox.post(_settle, future, result, None)

        ctx.transport.send_pool().submit(run)
        return future

    async def _reply_waiter(self, ctx: "_CallContext", deadline: float | None) -> Any:
        """The transport's reply waiter; made on a send thread by the first call."""
        waiter = self._waiter
        if waiter is not None:
            return waiter
        making = self.run(ctx, ctx.transport.reply_waiter, deadline)
        left = None if deadline is None else max(0.0, deadline - time.monotonic())
        try:
            # Bounded by the call's deadline even while every send thread is busy.
            waiter = await asyncio.wait_for(asyncio.shield(making), left)
        except asyncio.TimeoutError:
            raise MessagingTimeout("Timed out setting up the reply address of the transport: "
                                   "the call's deadline passed first") from None
        self._waiter = waiter
        return waiter

    async def call(self, ctx: "_CallContext", ctxt: Any, method: str, kwargs: dict) -> Any:
        """``ctx.call(ctxt, method, **kwargs)`` awaited (see the module's docstring)."""
        loop = asyncio.get_running_loop()
        start = time.monotonic()
        msg = ctx._call_message(ctxt, method, kwargs)
        timeout, deadline = ctx._call_deadline(start)
        waiter = await self._reply_waiter(ctx, deadline)
        msg_id = envelope.new_id()
        msg["_msg_id"] = msg_id
        msg["_reply_q"] = waiter.address
        msg["_timeout"] = None
        body = envelope.encode(msg)
        future = loop.create_future()
        inbox = self._inbox(loop)
        sender = ctx.transport.send_pool()
        # The reply's outcome goes straight to the loop's inbox (no concurrent future).
        pending = waiter.register(msg_id, functools.partial(inbox.post, _settle, future))
        timer = None
        try:
            if deadline is not None:
                timer = loop.call_later(max(0.0, deadline - time.monotonic()), _expire, future,
                                        ctx, msg_id, method, timeout)
            call = _client._Call(waiter, body, pending, timeout, deadline, method)
            sender.submit(self._send, ctx, call, inbox, future)
            result = await future
        finally:
            if timer is not None:
                timer.cancel()
            waiter.forget(msg_id)
        return ctx.serializer.deserialize_entity(ctxt, result)

    @staticmethod
    def _send(ctx: "_CallContext", call: "_Call", inbox: LoopInbox,
              future: asyncio.Future) -> None:
        # On a pool thread: any failure goes to the awaiting call, never to the pool.
        if future.done():  # timed out or cancelled while it waited for a thread
            return
        try:
            ctx._publish_call(call)
        except BaseException as exc:  # noqa: BLE001 - handed to the caller
            call.waiter.forget(call.pending.msg_id)
            inbox.post(_settle, future, None, exc)
