"""The notification message: priorities, and the dict a Notifier hands to its drivers.

A notification is ``{"message_id", "publisher_id", "event_type", "priority", "payload",
"timestamp"}`` (oslo.messaging's format); the messaging drivers add ``_unique_id`` and the
``_context_*`` keys when they put it on the wire.
"""

from __future__ import annotations

import datetime
import uuid
from typing import Any

#: Priorities in oslo.messaging's order; endpoint methods are named after them (lower case).
PRIORITIES: tuple[str, ...] = ("audit", "debug", "info", "warn", "error", "critical", "sample")

#: Format of the ``timestamp`` field (UTC), as oslo.messaging writes it.
TIMESTAMP_FORMAT = "%Y-%m-%d %H:%M:%S.%f"


def utc_timestamp(now: datetime.datetime | None = None) -> str:
    """``now`` (default: the current time) as a UTC timestamp string with microseconds."""
    if now is None:
        now = datetime.datetime.now(datetime.timezone.utc)
    elif now.tzinfo is not None:
        now = now.astimezone(datetime.timezone.utc)
    return now.strftime(TIMESTAMP_FORMAT)


def build(publisher_id: str | None, event_type: str, priority: str, payload: Any) -> dict:
    """A new notification message with a fresh ``message_id`` and the current timestamp."""
    return {"message_id": str(uuid.uuid4()),
            "publisher_id": publisher_id,
            "event_type": event_type,
            "priority": priority.upper(),
            "payload": payload,
            "timestamp": utc_timestamp()}
