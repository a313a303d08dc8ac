"""Serializers: turn a message's arguments, results and context into JSON-able values and back."""

from __future__ import annotations

import abc
from typing import Any, Callable

from msgbus.primitives import to_primitive

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


class JsonPayloadSerializer(NoOpSerializer):
    """Converts entities to JSON primitives on the way out, as oslo.messaging's does:
    ``to_primitive(entity, convert_instances=True)`` (other objects through their ``__dict__``)."""

    def serialize_entity(self, ctxt: Any, entity: Any) -> Any:
        return to_primitive(entity, convert_instances=True)


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
