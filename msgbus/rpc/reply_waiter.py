"""Reply correlation: one reply address per transport, one future per outstanding call.

The driver delivers every reply to :meth:`ReplyWaiter._on_reply`; the waiter wakes exactly the
caller whose message id the reply carries. Callers never share a lock for the length of a call:
each waits on its own future, so thousands of calls can be outstanding at once (and an asyncio
client can await the same futures).
"""

from __future__ import annotations

import concurrent.futures
import logging
import threading
import time
from typing import Any, Iterable

from msgbus import envelope, failures
from msgbus.driver.base import Driver, IncomingMessage
from msgbus.exceptions import MessagingTimeout
from msgbus.recent_ids import RecentIds

LOG = logging.getLogger(__name__)


class PendingCall:
    """An outstanding call: its future and the time of its last sign of life."""

    __slots__ = ("msg_id", "future", "last_heartbeat", "partial_result")

    def __init__(self, msg_id: str) -> None:
        self.msg_id = msg_id
        self.future: concurrent.futures.Future = concurrent.futures.Future()
        self.last_heartbeat = time.monotonic()
        self.partial_result: Any = None


class ReplyWaiter:
    """Routes replies arriving on the transport's reply address to the waiting callers."""

    def __init__(self, driver: Driver, allowed_remote_exmods: Iterable[str],
                 window: int = 4096) -> None:
        self._driver = driver
        self._allowed = list(allowed_remote_exmods)
        self._pending: dict[str, PendingCall] = {}
        self._recent = RecentIds(window)
        self._lock = threading.Lock()
        self.address = driver.listen_for_replies(self._on_reply)

    def register(self, msg_id: str) -> PendingCall:
        """Start waiting for replies to ``msg_id`` (before the request is sent)."""
        pending = PendingCall(msg_id)
        self._pending[msg_id] = pending
        return pending

    def forget(self, msg_id: str) -> None:
        """Stop waiting for ``msg_id``; a reply arriving later is dropped with a log line."""
        self._pending.pop(msg_id, None)

    def wait(self, pending: PendingCall, timeout: float | None,
             call_monitor_timeout: float | None) -> Any:
        """Block until the reply, raising the remote failure or MessagingTimeout."""
        try:
            start = time.monotonic()
            deadline = None if timeout is None else start + timeout
            while True:
                now = time.monotonic()
                wait_for = None if deadline is None else deadline - now
                if call_monitor_timeout:
                    monitor_left = pending.last_heartbeat + call_monitor_timeout - now
                    wait_for = monitor_left if wait_for is None else min(wait_for, monitor_left)
                if wait_for is not None and wait_for <= 0:
                    self._raise_timeout(pending, start, deadline)
                try:
                    return pending.future.result(wait_for)
                except concurrent.futures.TimeoutError:
                    continue
        finally:
            self.forget(pending.msg_id)

    @staticmethod
    def _raise_timeout(pending: PendingCall, start: float, deadline: float | None) -> None:
        waited = time.monotonic() - start
        if deadline is not None and time.monotonic() >= deadline:
            raise MessagingTimeout(f"Timed out waiting for a reply to message ID "
                                   f"{pending.msg_id} after {waited:.3g}s")
        raise MessagingTimeout(f"Timed out waiting for a reply to message ID {pending.msg_id}: "
                               f"no heartbeat from the server for {waited:.3g}s "
                               "(call_monitor_timeout)")

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

    @staticmethod
    def _set(pending: PendingCall, result: Any = None, exc: BaseException | None = None) -> None:
        try:
            if exc is not None:
                pending.future.set_exception(exc)
            else:
                pending.future.set_result(result)
        except concurrent.futures.InvalidStateError:
            LOG.info("dropping extra reply to message %s", pending.msg_id)

    def close(self) -> None:
        """Fail the calls still waiting: the transport is going away."""
        with self._lock:
            pending, self._pending = self._pending, {}
        for call in pending.values():
            self._set(call, exc=MessagingTimeout(
                f"transport closed while waiting for a reply to message ID {call.msg_id}"))
