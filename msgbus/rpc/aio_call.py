"""Awaited RPC calls: one future per call, one loop wake-up per burst of replies.

A call made with ``call_async`` is serialized in the caller's task, registered with the
transport's reply waiter, and sent from the loop's default executor (drivers block while the
broker confirms). Its reply, handed over by the driver's thread, reaches the caller's future
through a :class:`LoopInbox`, which wakes the loop once for all the replies that arrived since
it last ran. A timer on the loop ends the call at its deadline, whatever the send is doing;
cancelling the awaiting task, like a timeout, frees the reply slot (a later reply is dropped).
"""

from __future__ import annotations

import asyncio
import threading
import time
import weakref
from typing import TYPE_CHECKING, Any

from msgbus import envelope
from msgbus.exceptions import MessagingTimeout
from msgbus.executors.inbox import LoopInbox

if TYPE_CHECKING:
    from msgbus.rpc.client import _Call, _CallContext

__all__ = ["AsyncCalls"]


def _relay(done: Any, future: asyncio.Future) -> None:
    """A reply's outcome (a settled concurrent future) onto the awaiting call's future."""
    if future.done():
        return
    exc = done.exception()
    if exc is not None:
        future.set_exception(exc)
    else:
        future.set_result(done.result())


def _fail(future: asyncio.Future, exc: BaseException) -> None:
    if not future.done():
        future.set_exception(exc)


class AsyncCalls:
    """What a client and its ``prepare()`` copies share for awaited calls: an inbox per loop
    and whether the transport's reply address exists yet (its setup may wait on the broker,
    so the first call makes it off the loop)."""

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

    async def _reply_waiter(self, ctx: "_CallContext", deadline: float | None,
                            loop: asyncio.AbstractEventLoop) -> Any:
        waiter = self._waiter
        if waiter is not None:
            return waiter
        waiter = await loop.run_in_executor(None, ctx.transport.reply_waiter, deadline)
        self._waiter = waiter
        return waiter

    async def call(self, ctx: "_CallContext", ctxt: Any, method: str, kwargs: dict) -> Any:
        """``ctx.call(ctxt, method, **kwargs)`` awaited (see the module's docstring)."""
        loop = asyncio.get_running_loop()
        start = time.monotonic()
        msg = ctx._call_message(ctxt, method, kwargs)
        timeout, deadline = ctx._call_deadline(start)
        waiter = await self._reply_waiter(ctx, deadline, loop)
        msg_id = envelope.new_id()
        msg["_msg_id"] = msg_id
        msg["_reply_q"] = waiter.address
        msg["_timeout"] = None
        body = envelope.encode(msg)
        future = loop.create_future()
        inbox = self._inbox(loop)
        pending = waiter.register(msg_id)
        timer = None
        try:
            pending.future.add_done_callback(lambda done: inbox.post(_relay, done, future))
            if deadline is not None:
                timer = loop.call_later(max(0.0, deadline - time.monotonic()), _fail, future,
                                        MessagingTimeout(
                                            f"Timed out waiting for a reply to message ID "
                                            f"{msg_id}{ctx._describe(method, timeout)}: no "
                                            f"server replied in time (is one running and "
                                            f"reachable?)"))
            from msgbus.rpc.client import _Call
            call = _Call(waiter, body, pending, timeout, deadline, method)
            loop.run_in_executor(None, self._send, ctx, call, inbox, future)
            result = await future
        finally:
            if timer is not None:
                timer.cancel()
            waiter.forget(msg_id)
        return ctx.serializer.deserialize_entity(ctxt, result)

    @staticmethod
    def _send(ctx: "_CallContext", call: "_Call", inbox: LoopInbox,
              future: asyncio.Future) -> None:
        # On an executor thread: any failure goes to the awaiting call, never to the executor.
        try:
            ctx._publish_call(call)
        except BaseException as exc:  # noqa: BLE001 - handed to the caller
            call.waiter.forget(call.pending.msg_id)
            inbox.post(_fail, future, exc)
