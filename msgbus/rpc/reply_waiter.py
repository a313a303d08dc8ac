"""Reply correlation: one reply address per transport, one future (an awaited call: a
callback onto its loop) per outstanding call.

The driver delivers every reply to :meth:`ReplyWaiter._on_reply`; the waiter wakes exactly the
caller whose message id the reply carries. Callers never share a lock for the length of a call:
each waits on its own future, so thousands of calls can be outstanding at once (and an asyncio
client can await the same futures).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import threading
import time
from typing import Any, Callable, Iterable

from msgbus import envelope, failures
from msgbus.driver.base import Driver, IncomingMessage
from msgbus.exceptions import MessagingTimeout
from msgbus.recent_ids import RecentIds

LOG = logging.getLogger(__name__)


#: Called once with a call's outcome, ``(result, None)`` or ``(None, exception)``, on the
#: thread that settled it (the driver's, or the one closing the transport).
OnReply = Callable[[Any, "BaseException | None"], None]


class PendingCall:
    """An outstanding call: its future (or its ``on_reply`` callback, which replaces the
    future) and the time of its last sign of life."""

    __slots__ = ("msg_id", "future", "on_reply", "last_heartbeat", "partial_result")

    def __init__(self, msg_id: str, on_reply: OnReply | None = None) -> None:
        self.msg_id = msg_id
        self.on_reply = on_reply
        self.future: concurrent.futures.Future | None = (
            concurrent.futures.Future() if on_reply is None else None)
        self.last_heartbeat = time.monotonic()
        self.partial_result: Any = None


def _future_of(pending: PendingCall) -> concurrent.futures.Future:
    """The future of a call registered without ``on_reply`` (TypeError for one with)."""
    future = pending.future
    if future is None:
        raise TypeError(f"the call {pending.msg_id} reports to its on_reply callback: it has "
                        f"no future to wait for")
    return future


class _CallClock:
    """The deadlines of one call: the overall one and the call monitor's."""

    def __init__(self, pending: PendingCall, deadline: float | None,
                 call_monitor_timeout: float | None, what: Callable[[], str]) -> None:
        self.pending = pending
        self.start = time.monotonic()
        self.deadline = deadline
        self.monitor = call_monitor_timeout
        self.what = what

    def next_wait(self) -> float | None:
        """Seconds to wait for the next event, or raise MessagingTimeout when time is up."""
        now = time.monotonic()
        wait_for = None if self.deadline is None else self.deadline - now
        if self.monitor:
            monitor_left = self.pending.last_heartbeat + self.monitor - now
            wait_for = monitor_left if wait_for is None else min(wait_for, monitor_left)
        if wait_for is not None and wait_for <= 0:
            if self.deadline is not None and now >= self.deadline:
                raise MessagingTimeout(f"Timed out waiting for a reply to message ID "
                                       f"{self.pending.msg_id}{self.what()}: no server replied "
                                       f"in time (is one running and reachable?)")
            raise MessagingTimeout(f"Timed out waiting for a reply to message ID "
                                   f"{self.pending.msg_id}{self.what()}: no heartbeat from the "
                                   f"server for {self.monitor:.3g}s (call_monitor_timeout)")
        return wait_for


#: Calls remembered as waiting for a late reply (timed out or failed at close, no reply yet);
#: past this many the waiter just remembers that some are.
LATE_REPLY_MEMORY = 10_000


class ReplyWaiter:
    """Routes replies arriving on the transport's reply address to the waiting callers.

    It also remembers the calls that stopped waiting before their reply came (timed out, or
    failed because the transport closed): a server may still send those replies, and an
    oslo.messaging server keeps a worker retrying a reply for 60 s while its reply queue is
    missing. :meth:`close` then asks the driver to leave the reply queue to the broker's
    ``x-expires`` instead of deleting it (see doc/faults.md, "Late replies").
    """

    def __init__(self, driver: Driver, allowed_remote_exmods: Iterable[str],
                 window: int = 4096, listen_kwargs: dict[str, Any] | None = None) -> None:
        self._driver = driver
        self._allowed = list(allowed_remote_exmods)
        self._pending: dict[str, PendingCall] = {}
        self._recent = RecentIds(window)
        self._lock = threading.Lock()
        #: message ids of calls that gave up before their reply came (insertion ordered)
        self._late: dict[str, None] = {}
        self._late_overflow = False
        self.address = driver.listen_for_replies(self._on_reply, **(listen_kwargs or {}))

    def register(self, msg_id: str, on_reply: OnReply | None = None) -> PendingCall:
        """Start waiting for replies to ``msg_id`` (before the request is sent).

        With ``on_reply``, the call's outcome goes to that callback instead of a future
        (an awaited call relays it to its loop: no future and lock per call); its slot is
        freed as it is settled, and :meth:`wait` cannot be used on it."""
        pending = PendingCall(msg_id, on_reply)
        self._pending[msg_id] = pending
        return pending

    def forget(self, msg_id: str) -> None:
        """Stop waiting for ``msg_id``; a reply arriving later is dropped with a log line."""
        pending = self._pending.pop(msg_id, None)
        # A callback's call still registered was not settled (settling removes it).
        if pending is not None and (pending.future is None or not pending.future.done()):
            self._expect_late(msg_id)

    def _expect_late(self, msg_id: str) -> None:
        with self._lock:
            self._late[msg_id] = None
            if len(self._late) > LATE_REPLY_MEMORY:
                self._late.pop(next(iter(self._late)))
                self._late_overflow = True

    @property
    def late_replies_possible(self) -> bool:
        """Whether a server may still reply to a call nobody waits for any more."""
        with self._lock:
            return bool(self._late) or self._late_overflow

    def wait(self, pending: PendingCall, deadline: float | None,
             call_monitor_timeout: float | None, what: Callable[[], str] = str) -> Any:
        """Block until the reply, raising the remote failure or MessagingTimeout at
        ``deadline`` (monotonic); ``what()`` describes the call for that message."""
        future = _future_of(pending)
        try:
            clock = _CallClock(pending, deadline, call_monitor_timeout, what)
            while True:
                try:
                    return future.result(clock.next_wait())
                except concurrent.futures.TimeoutError:
                    continue
        finally:
            self.forget(pending.msg_id)

    async def wait_async(self, pending: PendingCall, deadline: float | None,
                         call_monitor_timeout: float | None,
                         what: Callable[[], str] = str) -> Any:
        """Await the reply without blocking the event loop; same outcomes as :meth:`wait`."""
        waited = _future_of(pending)
        try:
            clock = _CallClock(pending, deadline, call_monitor_timeout, what)
            future = asyncio.wrap_future(waited)
            while True:
                try:
                    return await asyncio.wait_for(asyncio.shield(future), clock.next_wait())
                except asyncio.TimeoutError:
                    continue
        finally:
            self.forget(pending.msg_id)

    def _on_reply(self, incoming: IncomingMessage) -> None:
        incoming.ack()
        try:
            reply = envelope.decode(incoming.body)
        except envelope.MalformedMessage as exc:
            LOG.error("dropping malformed reply: %s", exc)
            return
        unique_id = reply.get("_unique_id")
        if unique_id and self._recent.seen(unique_id):
            LOG.info("dropping duplicate reply %s", unique_id)
            return
        msg_id = reply.get("_msg_id")
        pending = self._pending.get(msg_id) if isinstance(msg_id, str) else None
        if pending is None and isinstance(msg_id, str) and reply.get("ending", True):
            with self._lock:
                self._late.pop(msg_id, None)
        if pending is None:
            LOG.info("dropping reply to message %s: no caller is waiting for it (timed out or "
                     "gone)", msg_id)
            return
        self._settle(pending, reply)

    def _settle(self, pending: PendingCall, reply: dict) -> None:
        failure = reply.get("failure")
        ending = reply.get("ending", True)
        result = reply.get("result")
        if failure:
            exc = failures.deserialize(failure, self._allowed)
            self._set(pending, exc=exc)
        elif ending:
            self._set(pending, result=result if "result" in reply and result is not None
                      else pending.partial_result)
        else:
            # A heartbeat (no result) or, from old servers, a result before the ending message.
            if result is not None:
                pending.partial_result = result
            pending.last_heartbeat = time.monotonic()

    def _set(self, pending: PendingCall, result: Any = None,
             exc: BaseException | None = None) -> None:
        on_reply = pending.on_reply
        if on_reply is not None:
            # Settled once: by whoever takes it out of the table (a reply, or forget()).
            if self._pending.pop(pending.msg_id, None) is not pending:
                LOG.info("dropping extra reply to message %s", pending.msg_id)
                return
            on_reply(result, exc)
            return
        future = _future_of(pending)
        try:
            if exc is not None:
                future.set_exception(exc)
            else:
                future.set_result(result)
        except concurrent.futures.InvalidStateError:
            LOG.info("dropping extra reply to message %s", pending.msg_id)

    def close(self) -> bool:
        """Fail the calls still waiting: the transport is going away. When a late reply may
        still come, ask the driver to keep the reply queue (its ``keep_reply_queue()``, if it
        has one) so that the replying server is not stalled; returns whether one may."""
        with self._lock:
            pending, self._pending = self._pending, {}
        for call in pending.values():
            exc = MessagingTimeout(
                f"transport closed while waiting for a reply to message ID {call.msg_id}")
            if call.on_reply is not None:
                call.on_reply(None, exc)  # taken out of the table above: settled only here
            else:
                self._set(call, exc=exc)
            self._expect_late(call.msg_id)
        late = self.late_replies_possible
        keep = getattr(self._driver, "keep_reply_queue", None)
        if late and keep is not None:
            LOG.info("reply queue %s is left to the broker (x-expires): calls timed out whose "
                     "replies may still come", self.address)
            keep()
        return late
