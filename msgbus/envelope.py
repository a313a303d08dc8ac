"""The wire envelope: oslo.messaging's version 2.0 JSON envelope, encoded and decoded in one place.

Drivers move the bytes this module makes; they never look inside. A body is
``{"oslo.version": "2.0", "oslo.message": "<inner JSON as a string>"}``; a JSON object without
both keys is a legacy (v1) unwrapped message.
"""

from __future__ import annotations

import datetime
import decimal
import enum
import ipaddress
import json
import os
import uuid
from typing import Any

import orjson

from msgbus.exceptions import MessageSerializationError
from msgbus.primitives import NOT_A_LEAF, leaf_value, wire_value

VERSION_KEY = "oslo.version"
MESSAGE_KEY = "oslo.message"
ENVELOPE_VERSION = "2.0"
CONTEXT_PREFIX = "_context_"
# Dates and dataclasses go to the ``default`` hook, to be written as oslo.messaging writes them.
_ORJSON_OPTIONS = (orjson.OPT_NON_STR_KEYS | orjson.OPT_PASSTHROUGH_DATETIME
                   | orjson.OPT_PASSTHROUGH_DATACLASS)


class MalformedMessage(ValueError):
    """A received body is not a message msgbus can read; the reason says why."""


# Encoding. orjson is several times faster than the standard json module and exact for almost
# every value; it is used unless the value is one of the few it would change or refuse:
# - integers beyond 64 bits (orjson raises: TypeError),
# - strings with lone surrogates (orjson raises: TypeError),
# - NaN and infinities (orjson writes null: caught below),
# - values that need looking inside to be converted (sets, mappings, iterables, objects: the
#   fast path's hook refuses them, so that each is converted exactly once, by the slow path).
# The slow path is ``json.dumps`` with oslo.messaging's conversion as its ``default``: it writes
# exactly what oslo.messaging writes.

class _SlowPath(TypeError):
    """Raised by the fast path's hook for a value only the slow path converts."""


def _fast_default(value: Any) -> Any:
    converted = leaf_value(value)
    if converted is NOT_A_LEAF:
        raise _SlowPath(type(value).__name__)
    return converted


# Types whose fast-path form (a string) cannot hide a NaN.
_STRING_LEAVES = (str, int, bytes, datetime.date, datetime.time, uuid.UUID, decimal.Decimal,
                  ipaddress.IPv4Address, ipaddress.IPv6Address, Exception)


def _may_hide_non_finite(value: Any) -> bool:
    """Whether ``value`` may hold a NaN or an infinity, which orjson writes as null.

    True when it does, or when finding out is not worth it (a type the slow path should handle);
    a loop over the items, cheap per item, that descends only into containers.
    """
    stack = [value]
    pop, push = stack.pop, stack.append
    while stack:
        item = pop()
        children: Any
        if isinstance(item, dict):
            for key in item:
                if type(key) is not str and (isinstance(key, (float, enum.Enum))):
                    return True  # a NaN key is written "null" too
            children = item.values()
        elif isinstance(item, (list, tuple)):
            children = item
        else:  # the value itself, or an enum member's value
            children = (item,)
        for child in children:
            kind = type(child)
            if kind is str or child is None or kind is int or kind is bool:
                continue
            if kind is float:
                if child - child:  # NaN - NaN and inf - inf are NaN, which is true
                    return True
            elif kind is dict or kind is list or kind is tuple or \
                    isinstance(child, (dict, list, tuple)):
                push(child)
            elif isinstance(child, enum.Enum):
                push(child.value)
            elif not isinstance(child, _STRING_LEAVES):
                return True
    return False


def _nulls_are_nones(value: Any, out: bytes) -> bool:
    """Whether every null orjson wrote in ``out`` for ``value`` stands for a None.

    First what costs least: reading ``out`` back (orjson) and comparing it with ``value`` (in C):
    equal means no NaN was nulled (a nulled NaN reads back as None, and None != NaN). Not equal
    may be a NaN, or only a tuple read back as a list, a date as its text, an int key as a str:
    then the values are looked at one by one.
    """
    try:
        if orjson.loads(out) == value:
            return True
    except Exception:  # noqa: BLE001 - an odd __eq__: look at the values instead
        pass
    return not _may_hide_non_finite(value)


def _top_level_nones(value: Any) -> int:
    if value is None:
        return 1
    if isinstance(value, dict):
        return [*value.values()].count(None)
    if isinstance(value, list):
        return value.count(None)
    return 0


_JSON_KEY_TYPES = (str, int, float, bool, type(None))


def _orjson_key(key: Any) -> str:
    """The text orjson writes for a dict key the standard json module refuses."""
    try:
        text = orjson.dumps({key: None}, option=orjson.OPT_NON_STR_KEYS)
    except TypeError:
        raise TypeError(f"keys must be str, int, float, bool or None, not "
                        f"{type(key).__name__}") from None
    return next(iter(orjson.loads(text)))


def _json_keys(value: Any) -> Any:
    """``value`` with dict keys the json module refuses written as orjson writes them (UUIDs,
    dates, enums), so that both paths accept the same dicts; containers copied only if needed."""
    if isinstance(value, dict):
        keys_ok = all(isinstance(k, _JSON_KEY_TYPES) for k in value)
        items = [(k if isinstance(k, _JSON_KEY_TYPES) else _orjson_key(k), _json_keys(v))
                 for k, v in value.items()]
        if keys_ok and all(new is old for (_, new), old in zip(items, value.values())):
            return value
        return dict(items)
    if isinstance(value, (list, tuple)):
        items = [_json_keys(v) for v in value]
        if all(new is old for new, old in zip(items, value)):
            return value
        return items
    return value


def _slow_dumps(value: Any) -> bytes:
    try:
        text = json.dumps(_json_keys(value), default=wire_value)
    except (TypeError, ValueError, RecursionError) as exc:
        culprit = _culprit(value)
        raise MessageSerializationError(f"message cannot be encoded as JSON: {culprit}{exc}") \
            from exc
    return text.encode("ascii")  # ensure_ascii: lone surrogates are escaped


def _encodes(value: Any) -> bool:
    try:
        json.dumps(_json_keys(value), default=wire_value)
    except (TypeError, ValueError, RecursionError):
        return False
    return True


def _culprit(message: Any) -> str:
    """Which part of a message cannot be encoded, as a phrase ending in ': ' ('' if unknown).

    Only runs once encoding failed: it walks down into the first part that fails on its own.
    """
    path: list[Any] = []
    value = message
    for _ in range(64):  # deep enough for any real message; never loops on a cycle
        if isinstance(value, dict):
            items: list[tuple[Any, Any]] = list(value.items())
        elif isinstance(value, (list, tuple)):
            items = list(enumerate(value))
        else:
            break
        bad = next(((k, v) for k, v in items if not _encodes(v)), None)
        if bad is None:
            break
        path.append(bad[0])
        value = bad[1]
    if not path:
        return ""
    head, rest = path[0], "".join(f"[{p!r}]" for p in path[2:])
    kind = f"{type(value).__module__}.{type(value).__qualname__}".removeprefix("builtins.")
    if head == "args" and len(path) > 1:
        where = f"argument {path[1]!r}{rest}"
    elif head in ("result", "payload"):
        where = f"the {head}" + "".join(f"[{p!r}]" for p in path[1:])
    elif isinstance(head, str) and head.startswith(CONTEXT_PREFIX):
        where = f"context key {head[len(CONTEXT_PREFIX):]!r}" + \
            "".join(f"[{p!r}]" for p in path[1:])
    else:
        where = "".join(f"[{p!r}]" for p in path)
    return f"{where} (of type {kind}) cannot be sent; "


def _dumps_bytes(value: Any) -> bytes:
    try:
        out = orjson.dumps(value, default=_fast_default, option=_ORJSON_OPTIONS)
    except TypeError:
        return _slow_dumps(value)
    nulls = out.count(b"null")
    if nulls and nulls > _top_level_nones(value) and not _nulls_are_nones(value, out):
        return _slow_dumps(value)
    return out


def dumps(value: Any) -> str:
    """JSON text of ``value``; unserializable values raise MessageSerializationError."""
    return _dumps_bytes(value).decode("utf-8")


# Decoding. orjson reads every JSON number exactly except integers outside [-2**63, 2**64 - 1],
# which it reads as floats; such an integer has at least 19 digits. So a text without a run of
# 19 ASCII digits is read exactly by orjson; a text with one (a big integer, or merely a long
# string of digits) is read by the json module. orjson refuses NaN, Infinity and lone
# surrogates: the json module reads those too.
_DIGITS_AS_ZERO = bytes(0x30 if 0x30 <= i <= 0x39 else 0x2E for i in range(256))
_LONG_RUN = b"0" * 19
_ESCAPED_DIGIT = b"\\u003"


def _as_bytes(data: bytes | bytearray | memoryview | str) -> bytes | bytearray:
    if isinstance(data, str):
        return data.encode("utf-8", "surrogatepass")
    if isinstance(data, memoryview):
        return data.tobytes()
    return data


def _has_long_digit_run(data: bytes | bytearray | memoryview | str) -> bool:
    return _LONG_RUN in _as_bytes(data).translate(_DIGITS_AS_ZERO)


def _loads(data: bytes | bytearray | memoryview | str, long_digits: bool | None = None) -> Any:
    """Parse JSON text exactly; ``long_digits`` says whether it has a run of 19 digits (None:
    not known yet)."""
    if long_digits is None:
        long_digits = _has_long_digit_run(data)
    if not long_digits:
        try:
            return orjson.loads(data)
        except orjson.JSONDecodeError:
            pass
    if isinstance(data, memoryview):
        data = data.tobytes()
    return json.loads(data)


def _is_plain_envelope(outer: Any) -> bool:
    return (isinstance(outer, dict) and len(outer) == 2 and
            isinstance(outer.get(VERSION_KEY), str) and isinstance(outer.get(MESSAGE_KEY), str))


def encode(inner: dict) -> bytes:
    """Wrap ``inner`` in the 2.0 envelope and return the body bytes."""
    # two strings: orjson writes them exactly (dumps() never returns lone surrogates)
    return orjson.dumps({VERSION_KEY: ENVELOPE_VERSION, MESSAGE_KEY: dumps(inner)})


def encode_unwrapped(inner: dict) -> bytes:
    """The legacy (v1) body: the bare message dict, no envelope."""
    return _dumps_bytes(inner)


def decode(body: bytes | str) -> dict:
    """Parse a body (enveloped or legacy) into the inner message dict, or raise MalformedMessage.

    Every value arrives exactly as the JSON text has it, big integers included.
    """
    raw = _as_bytes(body)
    long_digits = _LONG_RUN in raw.translate(_DIGITS_AS_ZERO)
    try:
        outer = None
        if long_digits:  # an envelope has no numbers of its own: orjson reads it exactly
            try:
                outer = orjson.loads(body)
            except orjson.JSONDecodeError:
                pass
        if not (long_digits and _is_plain_envelope(outer)):
            outer = _loads(body, long_digits)
    except (ValueError, UnicodeDecodeError, RecursionError) as exc:
        raise MalformedMessage(f"body is not JSON: {exc}") from None
    if not isinstance(outer, dict):
        raise MalformedMessage(f"body is a JSON {type(outer).__name__}, not an object")
    if VERSION_KEY not in outer or MESSAGE_KEY not in outer:
        return outer
    version = str(outer[VERSION_KEY])
    if version.split(".", 1)[0] != ENVELOPE_VERSION.split(".", 1)[0]:
        raise MalformedMessage(f"unsupported envelope version {version!r} "
                               f"(this side speaks {ENVELOPE_VERSION})")
    payload = outer[MESSAGE_KEY]
    if not isinstance(payload, str):
        raise MalformedMessage("envelope's oslo.message is not a JSON string")
    # The inner text's digits are the body's digits, unless the sender escaped some (\u0031).
    inner_long_digits = None if long_digits or _ESCAPED_DIGIT in raw else False
    try:
        inner = _loads(payload, inner_long_digits)
    except (ValueError, RecursionError) as exc:
        raise MalformedMessage(f"envelope's oslo.message is not JSON: {exc}") from None
    if not isinstance(inner, dict):
        raise MalformedMessage(f"envelope's message is a JSON {type(inner).__name__}, "
                               "not an object")
    return inner


def pack_context(message: dict, ctxt: dict) -> None:
    """Flatten ``ctxt`` into ``message`` as ``_context_<key>`` entries."""
    for key, value in ctxt.items():
        message[CONTEXT_PREFIX + key] = value


def unpack_context(message: dict) -> dict:
    """Remove the ``_context_*`` entries from ``message`` and return them as a dict."""
    ctxt = {}
    for key in [k for k in message if k.startswith(CONTEXT_PREFIX)]:
        ctxt[key[len(CONTEXT_PREFIX):]] = message.pop(key)
    return ctxt


def new_id(_urandom: Any = os.urandom) -> str:
    """A fresh message or unique id: a uuid4 in hex, as oslo.messaging makes them.

    Built from 16 random bytes with the version 4 and RFC 4122 variant bits set: the same
    value space as ``uuid.uuid4().hex`` at a third of its cost (several ids go into every call).
    """
    raw = bytearray(_urandom(16))
    raw[6] = (raw[6] & 0x0F) | 0x40
    raw[8] = (raw[8] & 0x3F) | 0x80
    return raw.hex()
