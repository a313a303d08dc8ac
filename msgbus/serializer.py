"""Serializers: turn a message's arguments, results and context into JSON-able values and back."""

from __future__ import annotations

import abc
import datetime
import decimal
import uuid
from typing import Any, Callable

__all__ = ["Serializer", "NoOpSerializer", "JsonPayloadSerializer", "RequestContextSerializer",
           "to_primitive"]


class Serializer(metaclass=abc.ABCMeta):
    """Base class of serializers for entities and request contexts."""

    @abc.abstractmethod
    def serialize_entity(self, ctxt: Any, entity: Any) -> Any:
        """Return a JSON-able form of ``entity``."""

    @abc.abstractmethod
    def deserialize_entity(self, ctxt: Any, entity: Any) -> Any:
        """Rebuild an entity from its JSON-able form."""

    @abc.abstractmethod
    def serialize_context(self, ctxt: Any) -> dict:
        """Return the context as a dict of JSON-able values."""

    @abc.abstractmethod
    def deserialize_context(self, ctxt: dict) -> Any:
        """Rebuild a context from its dict form."""


class NoOpSerializer(Serializer):
    """Passes values through unchanged; a context is a dict or has ``to_dict()``."""

    def serialize_entity(self, ctxt: Any, entity: Any) -> Any:
        return entity

    def deserialize_entity(self, ctxt: Any, entity: Any) -> Any:
        return entity

    def serialize_context(self, ctxt: Any) -> dict:
        return context_to_dict(ctxt)

    def deserialize_context(self, ctxt: dict) -> Any:
        return ctxt


def to_primitive(value: Any, _depth: int = 0) -> Any:
    """Convert common Python values (datetimes, sets, UUIDs, objects) into JSON-able ones."""
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    if _depth > 64:
        return "?"
    if isinstance(value, dict):
        return {str(k) if not isinstance(k, str) else k: to_primitive(v, _depth + 1)
                for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [to_primitive(v, _depth + 1) for v in value]
    if isinstance(value, datetime.datetime):
        return value.strftime("%Y-%m-%dT%H:%M:%S.%f")
    if isinstance(value, (datetime.date, datetime.time)):
        return value.isoformat()
    if isinstance(value, (uuid.UUID, decimal.Decimal)):
        return str(value)
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    to_dict = getattr(value, "to_dict", None)
    if callable(to_dict):
        return to_primitive(to_dict(), _depth + 1)
    if hasattr(value, "__iter__") and not isinstance(value, (str, bytes)):
        return [to_primitive(v, _depth + 1) for v in value]
    if hasattr(value, "__dict__"):
        return to_primitive(vars(value), _depth + 1)
    return str(value)


class JsonPayloadSerializer(NoOpSerializer):
    """Converts entities to JSON primitives (datetimes, sets, objects) on the way out."""

    def serialize_entity(self, ctxt: Any, entity: Any) -> Any:
        return to_primitive(entity)


class RequestContextSerializer(Serializer):
    """Wraps another serializer and turns contexts into dicts and back into ``context_class``.

    ``context_class`` (optional) must offer ``from_dict(dict)``; without it a context stays a dict.
    """

    def __init__(self, base: Serializer | None = None,
                 context_class: type | Callable[[dict], Any] | None = None) -> None:
        self._base = base or NoOpSerializer()
        self._context_class = context_class

    def serialize_entity(self, ctxt: Any, entity: Any) -> Any:
        return self._base.serialize_entity(ctxt, entity)

    def deserialize_entity(self, ctxt: Any, entity: Any) -> Any:
        return self._base.deserialize_entity(ctxt, entity)

    def serialize_context(self, ctxt: Any) -> dict:
        return context_to_dict(ctxt)

    def deserialize_context(self, ctxt: dict) -> Any:
        if self._context_class is None:
            return ctxt
        from_dict = getattr(self._context_class, "from_dict", None)
        return from_dict(ctxt) if from_dict else self._context_class(ctxt)


def context_to_dict(ctxt: Any) -> dict:
    """A context as a dict: dicts pass, objects must offer ``to_dict()``."""
    if ctxt is None:
        return {}
    if isinstance(ctxt, dict):
        return ctxt
    to_dict = getattr(ctxt, "to_dict", None)
    if callable(to_dict):
        return to_dict()
    raise TypeError(f"a request context must be a dict or have to_dict(), not "
                    f"{type(ctxt).__name__}")
