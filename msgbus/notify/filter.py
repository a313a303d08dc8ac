"""NotificationFilter: regular expressions an endpoint's notifications must match.

Set it as the endpoint's ``filter_rule`` attribute; notifications it rejects are not handed to
that endpoint (they are still acknowledged).
"""

from __future__ import annotations

import re
from typing import Any, Mapping

__all__ = ["NotificationFilter"]


def _compile_map(patterns: Mapping[str, str] | None) -> dict[str, "re.Pattern[str]"]:
    return {key: re.compile(value) for key, value in (patterns or {}).items()}


def _accepts(pattern: "re.Pattern[str] | None", value: Any) -> bool:
    # Like re.match: anchored at the start only; a non-string value never matches.
    if pattern is None:
        return True
    return isinstance(value, str) and pattern.match(value) is not None


def _accepts_map(patterns: dict[str, "re.Pattern[str]"], data: Any) -> bool:
    if not patterns:
        return True
    if not isinstance(data, Mapping):
        return False
    return all(key in data and _accepts(pattern, data[key]) for key, pattern in patterns.items())


class NotificationFilter:
    r"""Accepts a notification when every given regex matches (``re.match``, start-anchored).

    ``publisher_id`` and ``event_type`` are patterns; ``context``, ``metadata`` and ``payload``
    map keys to patterns for those keys' values (the key must exist and its value be a string)::

        NotificationFilter(publisher_id=r"^compute\.", event_type=r"^instance\.create",
                           context={"project_id": "^p1$"}, payload={"state": "^active$"})
    """

    def __init__(self, context: Mapping[str, str] | None = None,
                 publisher_id: str | None = None, event_type: str | None = None,
                 metadata: Mapping[str, str] | None = None,
                 payload: Mapping[str, str] | None = None) -> None:
        self._publisher_id = re.compile(publisher_id) if publisher_id is not None else None
        self._event_type = re.compile(event_type) if event_type is not None else None
        self._context = _compile_map(context)
        self._metadata = _compile_map(metadata)
        self._payload = _compile_map(payload)

    def match(self, context: Any, publisher_id: Any, event_type: Any, metadata: Any,
              payload: Any) -> bool:
        """True when the notification passes every pattern of the filter."""
        if not isinstance(context, Mapping):
            to_dict = getattr(context, "to_dict", None)
            context = to_dict() if callable(to_dict) else context
        return (_accepts(self._publisher_id, publisher_id)
                and _accepts(self._event_type, event_type)
                and _accepts_map(self._context, context)
                and _accepts_map(self._metadata, metadata)
                and _accepts_map(self._payload, payload))
