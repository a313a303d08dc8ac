"""Hands received notifications to endpoint methods named after their priority.

An endpoint is any object with methods named ``audit``, ``debug``, ``info``, ``warn``, ``error``,
``critical`` or ``sample``, called as ``method(ctxt, publisher_id, event_type, payload,
metadata)`` (a batch endpoint's as ``method(messages)``), and optionally a ``filter_rule``
(:class:`~msgbus.notify.filter.NotificationFilter`).
"""

from __future__ import annotations

import logging
from typing import Any, Callable, Hashable, Sequence

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

    def dispatch(self, note: Notification) -> str:
        """Run the endpoints for ``note``; returns a :class:`NotificationResult` value."""
        callbacks = self._callbacks.get(note.priority)
        if not callbacks:
            LOG.warning("notification %s has priority %r that no endpoint handles: dropped",
                        note.metadata.get("message_id"), note.priority)
            return NotificationResult.HANDLED
        try:
            msg = self.user_message(note)
        except Exception:
            LOG.exception("notification %s cannot be deserialized: dropped",
                          note.metadata.get("message_id"))
            return NotificationResult.HANDLED
        for screen, callback in callbacks:
            if not self._accepted(screen, msg):
                continue
            try:
                result = callback(msg["ctxt"], msg["publisher_id"], msg["event_type"],
                                  msg["payload"], msg["metadata"])
            except Exception:
                LOG.exception("notification endpoint %s raised on notification %s (%s)",
                              _name(callback), note.metadata.get("message_id"), note.event_type)
                return NotificationResult.REQUEUE
            if result == NotificationResult.REQUEUE:
                return NotificationResult.REQUEUE
        return NotificationResult.HANDLED


class BatchNotificationDispatcher(NotificationDispatcher):
    """Calls batch endpoints with lists of message dicts, grouped by priority.

    Returns the keys of the notifications to requeue: those of a priority group whose endpoint
    returned ``REQUEUE`` or raised.
    """

    def dispatch_batch(self, batch: Sequence[tuple[Hashable, Notification]]) -> set[Hashable]:
        """Run the endpoints on ``batch`` (pairs of a caller's key and a notification)."""
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
        requeue: set[Hashable] = set()
        for priority in PRIORITIES:
            items = groups.get(priority)
            if not items:
                continue
            for screen, callback in self._callbacks[priority]:
                messages = [msg for _, msg in items if self._accepted(screen, msg)]
                if not messages:
                    continue
                try:
                    result = callback(messages)
                except Exception:
                    LOG.exception("batch notification endpoint %s raised on %d notifications",
                                  _name(callback), len(messages))
                    result = NotificationResult.REQUEUE
                if result == NotificationResult.REQUEUE:
                    requeue.update(key for key, _ in items)
                    break
        return requeue


def _name(callback: Callable[..., Any]) -> str:
    owner = getattr(callback, "__self__", None)
    name = getattr(callback, "__name__", repr(callback))
    return f"{type(owner).__name__}.{name}" if owner is not None else name
