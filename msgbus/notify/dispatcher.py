"""Hands received notifications to endpoint methods named after their priority.

An endpoint is any object with methods named ``audit``, ``debug``, ``info``, ``warn``, ``error``,
``critical`` or ``sample``, called as ``method(ctxt, publisher_id, event_type, payload,
metadata)`` (a batch endpoint's as ``method(messages)``), and optionally a ``filter_rule``
(:class:`~msgbus.notify.filter.NotificationFilter`).
"""

from __future__ import annotations

import functools
import inspect
import logging
from typing import Any, Awaitable, Callable, Hashable, Sequence

from msgbus import envelope
from msgbus.notify.filter import NotificationFilter
from msgbus.notify.message import PRIORITIES
from msgbus.serializer import NoOpSerializer, Serializer

LOG = logging.getLogger(__name__)

__all__ = ["NotificationResult", "Notification", "NotificationDispatcher",
           "BatchNotificationDispatcher", "parse_notification"]


class NotificationResult:
    """What an endpoint method may return: ``HANDLED`` (the default) or ``REQUEUE``."""

    HANDLED = "handled"
    REQUEUE = "requeue"


class Notification:
    """A received notification, decoded but not yet deserialized."""

    __slots__ = ("priority", "ctxt", "publisher_id", "event_type", "payload", "metadata",
                 "unique_id")

    def __init__(self, priority: str, ctxt: dict, publisher_id: Any, event_type: Any,
                 payload: Any, metadata: dict, unique_id: str | None) -> None:
        self.priority = priority
        self.ctxt = ctxt
        self.publisher_id = publisher_id
        self.event_type = event_type
        self.payload = payload
        self.metadata = metadata
        self.unique_id = unique_id


def parse_notification(message: dict) -> Notification:
    """Take apart a decoded message dict; MalformedMessage if it is not a notification."""
    priority = message.get("priority")
    if not isinstance(priority, str) or not priority:
        raise envelope.MalformedMessage(f"not a notification: priority is {priority!r}")
    if "event_type" not in message:
        raise envelope.MalformedMessage("not a notification: no event_type")
    message = dict(message)
    unique_id = message.pop("_unique_id", None)
    ctxt = envelope.unpack_context(message)
    return Notification(priority.lower(), ctxt, message.get("publisher_id"),
                        message.get("event_type"), message.get("payload"),
                        {"message_id": message.get("message_id"),
                         "timestamp": message.get("timestamp")},
                        unique_id if isinstance(unique_id, str) else None)


Callback = tuple[NotificationFilter | None, Callable[..., Any]]
#: How an async dispatch runs a plain endpoint method: ``await run_in_thread(fn)``.
RunInThread = Callable[[Callable[[], Any]], Awaitable[Any]]


async def _call(callback: Callable[..., Any], run_in_thread: RunInThread, *args: Any) -> Any:
    """Await an ``async def`` endpoint method; run a plain one through ``run_in_thread``."""
    if inspect.iscoroutinefunction(callback):
        return await callback(*args)
    return await run_in_thread(functools.partial(callback, *args))


class NotificationDispatcher:
    """Calls, for one notification, every endpoint method of its priority whose filter accepts it.

    Endpoints are called in order; one returning ``REQUEUE`` or raising stops the round and the
    result is ``REQUEUE`` (the listener requeues only when it allows requeues).
    """

    def __init__(self, endpoints: Sequence[Any], serializer: Serializer | None = None) -> None:
        self.endpoints = list(endpoints)
        self.serializer = serializer or NoOpSerializer()
        self._callbacks: dict[str, list[Callback]] = {}
        for priority in PRIORITIES:
            for endpoint in self.endpoints:
                method = getattr(endpoint, priority, None)
                if callable(method):
                    self._callbacks.setdefault(priority, []).append(
                        (getattr(endpoint, "filter_rule", None), method))

    def is_async(self, priority: str) -> bool:
        """Whether some endpoint method for ``priority`` is ``async def``."""
        return any(inspect.iscoroutinefunction(callback)
                   for _, callback in self._callbacks.get(priority, ()))

    def has_async_methods(self) -> bool:
        """Whether any endpoint method is ``async def`` (to warn about executors)."""
        return any(self.is_async(priority) for priority in self._callbacks)

    @property
    def supported_priorities(self) -> list[str]:
        """The priorities some endpoint has a method for, in :data:`PRIORITIES` order."""
        return [p for p in PRIORITIES if p in self._callbacks]

    def user_message(self, note: Notification) -> dict:
        """The dict an endpoint sees (context and payload deserialized); may raise."""
        ctxt = self.serializer.deserialize_context(note.ctxt)
        return {"ctxt": ctxt, "publisher_id": note.publisher_id, "event_type": note.event_type,
                "payload": self.serializer.deserialize_entity(ctxt, note.payload),
                "metadata": note.metadata}

    @staticmethod
    def _accepted(screen: NotificationFilter | None, msg: dict) -> bool:
        return screen is None or screen.match(msg["ctxt"], msg["publisher_id"],
                                              msg["event_type"], msg["metadata"], msg["payload"])

    def _round(self, note: Notification) -> tuple[list[Callback], dict] | None:
        """The callbacks for ``note`` and the message they get; None (logged) when none."""
        callbacks = self._callbacks.get(note.priority)
        if not callbacks:
            LOG.warning("notification %s has priority %r that no endpoint handles: dropped",
                        note.metadata.get("message_id"), note.priority)
            return None
        try:
            return callbacks, self.user_message(note)
        except Exception:
            LOG.exception("notification %s cannot be deserialized: dropped",
                          note.metadata.get("message_id"))
            return None

    @staticmethod
    def _raised(callback: Callable[..., Any], note: Notification) -> str:
        LOG.exception("notification endpoint %s raised on notification %s (%s)",
                      _name(callback), note.metadata.get("message_id"), note.event_type)
        return NotificationResult.REQUEUE

    def dispatch(self, note: Notification) -> str:
        """Run the endpoints for ``note``; returns a :class:`NotificationResult` value."""
        found = self._round(note)
        if found is None:
            return NotificationResult.HANDLED
        callbacks, msg = found
        for screen, callback in callbacks:
            if not self._accepted(screen, msg):
                continue
            if inspect.iscoroutinefunction(callback):
                LOG.error("notification endpoint %s is 'async def': build the listener with "
                          "executor='asyncio' (notification %s requeued when allowed)",
                          _name(callback), note.metadata.get("message_id"))
                return NotificationResult.REQUEUE
            try:
                result = callback(msg["ctxt"], msg["publisher_id"], msg["event_type"],
                                  msg["payload"], msg["metadata"])
            except Exception:
                return self._raised(callback, note)
            if result == NotificationResult.REQUEUE:
                return NotificationResult.REQUEUE
        return NotificationResult.HANDLED

    async def dispatch_async(self, note: Notification, run_in_thread: RunInThread) -> str:
        """:meth:`dispatch` on an event loop: ``async def`` methods are awaited, plain ones run
        through ``run_in_thread``; same order and outcomes."""
        found = self._round(note)
        if found is None:
            return NotificationResult.HANDLED
        callbacks, msg = found
        for screen, callback in callbacks:
            if not self._accepted(screen, msg):
                continue
            try:
                result = await _call(callback, run_in_thread, msg["ctxt"], msg["publisher_id"],
                                     msg["event_type"], msg["payload"], msg["metadata"])
            except Exception:
                return self._raised(callback, note)
            if result == NotificationResult.REQUEUE:
                return NotificationResult.REQUEUE
        return NotificationResult.HANDLED


class BatchNotificationDispatcher(NotificationDispatcher):
    """Calls batch endpoints with lists of message dicts, grouped by priority.

    Returns the keys of the notifications to requeue: those of a priority group whose endpoint
    returned ``REQUEUE`` or raised.
    """

    def _groups(self, batch: Sequence[tuple[Hashable, Notification]]
                ) -> dict[str, list[tuple[Hashable, dict]]]:
        groups: dict[str, list[tuple[Hashable, dict]]] = {}
        for key, note in batch:
            if note.priority not in self._callbacks:
                LOG.warning("notification %s has priority %r that no endpoint handles: dropped",
                            note.metadata.get("message_id"), note.priority)
                continue
            try:
                groups.setdefault(note.priority, []).append((key, self.user_message(note)))
            except Exception:
                LOG.exception("notification %s cannot be deserialized: dropped",
                              note.metadata.get("message_id"))
        return groups

    def _rounds(self, batch: Sequence[tuple[Hashable, Notification]]
                ) -> list[tuple[list[Hashable], list[tuple[Callable[..., Any], list[dict]]]]]:
        """Per priority group: its keys and, in order, each callback with the messages its
        filter accepts."""
        groups = self._groups(batch)
        rounds = []
        for priority in PRIORITIES:
            items = groups.get(priority)
            if not items:
                continue
            calls = []
            for screen, callback in self._callbacks[priority]:
                messages = [msg for _, msg in items if self._accepted(screen, msg)]
                if messages:
                    calls.append((callback, messages))
            rounds.append(([key for key, _ in items], calls))
        return rounds

    @staticmethod
    def _batch_raised(callback: Callable[..., Any], messages: list[dict]) -> str:
        LOG.exception("batch notification endpoint %s raised on %d notifications",
                      _name(callback), len(messages))
        return NotificationResult.REQUEUE

    def dispatch_batch(self, batch: Sequence[tuple[Hashable, Notification]]) -> set[Hashable]:
        """Run the endpoints on ``batch`` (pairs of a caller's key and a notification)."""
        requeue: set[Hashable] = set()
        for keys, calls in self._rounds(batch):
            for callback, messages in calls:
                if inspect.iscoroutinefunction(callback):
                    LOG.error("batch notification endpoint %s is 'async def': build the "
                              "listener with executor='asyncio'", _name(callback))
                    result = NotificationResult.REQUEUE
                else:
                    try:
                        result = callback(messages)
                    except Exception:
                        result = self._batch_raised(callback, messages)
                if result == NotificationResult.REQUEUE:
                    requeue.update(keys)
                    break
        return requeue

    async def dispatch_batch_async(self, batch: Sequence[tuple[Hashable, Notification]],
                                   run_in_thread: RunInThread) -> set[Hashable]:
        """:meth:`dispatch_batch` on an event loop (see :meth:`dispatch_async`)."""
        requeue: set[Hashable] = set()
        for keys, calls in self._rounds(batch):
            for callback, messages in calls:
                try:
                    result = await _call(callback, run_in_thread, messages)
                except Exception:
                    result = self._batch_raised(callback, messages)
                if result == NotificationResult.REQUEUE:
                    requeue.update(keys)
                    break
        return requeue


def _name(callback: Callable[..., Any]) -> str:
    owner = getattr(callback, "__self__", None)
    name = getattr(callback, "__name__", repr(callback))
    return f"{type(owner).__name__}.{name}" if owner is not None else name
