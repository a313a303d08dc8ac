"""Python values as JSON values, by oslo.serialization's rules.

oslo.messaging encodes a message with ``json.dumps(msg, default=jsonutils.to_primitive)``: JSON's
own types go as they are and every other value is handed to ``to_primitive``. msgbus sends the
same JSON for the same value, so that an oslo.messaging peer receives what it would receive from
oslo.messaging itself:

- ``bytes`` are decoded as UTF-8; ``datetime`` becomes ``'%Y-%m-%dT%H:%M:%S.%f'`` (timezone
  dropped), ``date`` ``'%Y-%m-%d'``; ``UUID``, ``Decimal``, ``ipaddress`` and ``netaddr``
  addresses become ``str(value)``; an exception becomes its ``repr``; functions, classes,
  modules, generators and other code objects become ``str(value)``;
- a mapping (anything with ``items()``) becomes an object, any other iterable (sets, ``range``,
  an ``ipaddress`` network, dict views...) a list, their items converted by the same rules;
  mappings nested more than ``max_depth`` (3) deep become null;
- anything else is refused (``ValueError``).

Where oslo.messaging refuses a value, msgbus sends one more kind (see ``doc/oslo-differences.md``):
``datetime.time`` (ISO format), ``Enum`` members (their value), dataclass instances (their fields)
and objects with a ``to_dict()`` method (its result).
"""

from __future__ import annotations

import dataclasses
import datetime
import decimal
import enum
import inspect
import io
import ipaddress
import itertools
import sys
import uuid
from typing import Any, Callable, NamedTuple
from xmlrpc import client as xmlrpc_client

__all__ = ["to_primitive", "wire_value", "leaf_value", "NOT_A_LEAF", "DATETIME_FORMAT",
           "DATE_FORMAT"]

#: How a ``datetime`` is written (oslo_utils.timeutils.PERFECT_TIME_FORMAT).
DATETIME_FORMAT = "%Y-%m-%dT%H:%M:%S.%f"
#: How a ``date`` is written.
DATE_FORMAT = "%Y-%m-%d"

#: What :func:`leaf_value` returns for a value it does not convert on its own.
NOT_A_LEAF: Any = object()

_AS_STR = (uuid.UUID, ipaddress.IPv4Address, ipaddress.IPv6Address, decimal.Decimal)
# Values that are code or machinery rather than data: written as str(value).
_OPAQUE: tuple[Callable[[Any], bool], ...] = (
    inspect.ismodule, inspect.isclass, inspect.ismethod, inspect.isfunction,
    inspect.isgeneratorfunction, inspect.isgenerator, inspect.istraceback, inspect.isframe,
    inspect.iscode, inspect.isbuiltin, inspect.isroutine, inspect.isabstract)


class _Rules(NamedTuple):
    convert_instances: bool
    convert_datetime: bool
    max_depth: int
    encoding: str
    fallback: Callable[[Any], Any] | None
    extras: bool


def _netaddr_types() -> tuple[type, ...]:
    # netaddr is not imported for this: a netaddr value exists only once someone imported it.
    netaddr = sys.modules.get("netaddr")
    if netaddr is None:
        return ()
    return tuple(getattr(netaddr, name) for name in ("IPAddress", "IPNetwork", "IPRange")
                 if isinstance(getattr(netaddr, name, None), type))


def _leaf(value: Any, rules: _Rules) -> Any:
    """A value that converts without looking inside it, converted; else NOT_A_LEAF."""
    if isinstance(value, bytes):
        return value.decode(rules.encoding)
    if isinstance(value, xmlrpc_client.DateTime):
        value = datetime.datetime(*value.timetuple()[:6])
    if isinstance(value, datetime.date):  # datetime.datetime is a date too
        if not rules.convert_datetime:
            return value
        if isinstance(value, datetime.datetime):
            return value.strftime(DATETIME_FORMAT)
        return value.strftime(DATE_FORMAT)
    if isinstance(value, _AS_STR) or isinstance(value, _netaddr_types()):
        return str(value)
    if isinstance(value, Exception):
        return repr(value)
    if type(value) is itertools.count or any(test(value) for test in _OPAQUE):
        return (rules.fallback or str)(value)
    if rules.extras and isinstance(value, datetime.time):
        return value.isoformat()
    return NOT_A_LEAF


def _extra(value: Any) -> Any:
    """msgbus's conversions of values oslo.serialization refuses; NOT_A_LEAF if none applies."""
    if isinstance(value, enum.Enum):
        return value.value
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {field.name: getattr(value, field.name) for field in dataclasses.fields(value)}
    to_dict = getattr(value, "to_dict", None)
    if callable(to_dict):
        return to_dict()
    return NOT_A_LEAF


def _convert(value: Any, rules: _Rules, level: int) -> Any:
    if value is None or isinstance(value, (str, int, float)):  # bool is an int
        return value
    converted = _leaf(value, rules)
    if converted is not NOT_A_LEAF:
        return converted
    if level > rules.max_depth:
        return None
    try:
        if isinstance(value, dict):
            return {_convert(k, rules, level): _convert(v, rules, level)
                    for k, v in value.items()}
        if hasattr(value, "items"):
            return _convert(dict(value.items()), rules, level + 1)
        if hasattr(value, "__iter__") and not isinstance(value, io.IOBase):
            return [_convert(item, rules, level) for item in value]
        if rules.convert_instances and hasattr(value, "__dict__"):
            return _convert(value.__dict__, rules, level + 1)
    except TypeError:  # e.g. a class whose __iter__ is not callable on it, unhashable keys
        return (rules.fallback or str)(value)
    if rules.extras:
        converted = _extra(value)
        if converted is not NOT_A_LEAF:
            return _convert(converted, rules, level)
    if rules.fallback is None:
        raise ValueError(f"Cannot convert {value!r} to primitive")
    return rules.fallback(value)


def to_primitive(value: Any, convert_instances: bool = False, convert_datetime: bool = True,
                 level: int = 0, max_depth: int = 3, encoding: str = "utf-8",
                 fallback: Callable[[Any], Any] | None = None) -> Any:
    """``value`` as JSON-able primitives, as ``oslo_serialization.jsonutils.to_primitive``.

    Same parameters and results: ``convert_instances`` converts other objects through their
    ``__dict__`` (lossy: cycles end at ``max_depth``); ``convert_datetime=False`` keeps dates;
    ``fallback`` (default: refuse with ValueError) converts what nothing else does.
    """
    rules = _Rules(convert_instances, convert_datetime, max_depth, encoding, fallback, False)
    return _convert(value, rules, level)


_WIRE = _Rules(False, True, 3, "utf-8", None, True)


def wire_value(value: Any) -> Any:
    """What a value JSON cannot hold natively is sent as (the ``default`` of the JSON encoder):
    oslo.serialization's rules plus msgbus's extra kinds. Raises ValueError (or
    UnicodeDecodeError for bytes that are not UTF-8) when the value cannot be sent."""
    return _convert(value, _WIRE, 0)


def leaf_value(value: Any) -> Any:
    """:func:`wire_value` for values converted without looking inside them (dates, UUIDs,
    bytes...: always a string); NOT_A_LEAF for the others (containers, iterables, objects)."""
    return _leaf(value, _WIRE)
