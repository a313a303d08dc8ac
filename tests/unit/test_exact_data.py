"""Exact data: every value the json module round-trips arrives as sent, and values JSON cannot
hold are written as oslo.messaging writes them (oslo.serialization's to_primitive rules).

Property-based (hypothesis) over the envelope codec and over calls through ``fake://``; side by
side with ``oslo_serialization.jsonutils`` for the converted values.
"""

from __future__ import annotations

import collections
import dataclasses
import datetime
import decimal
import enum
import ipaddress
import itertools
import json
import math
import re
import uuid
from collections.abc import Iterator
from typing import Any
from xmlrpc import client as xmlrpc_client

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from oslo_serialization import jsonutils

import msgbus
import msgbus.fake
from msgbus import envelope, primitives


def tagged(value: Any) -> Any:
    """``value`` with every type made visible: 1, 1.0 and True differ, so do 0.0 and -0.0;
    NaN equals NaN."""
    if isinstance(value, float):
        return ("float", value.hex())
    if isinstance(value, list):
        return ("list", [tagged(v) for v in value])
    if isinstance(value, dict):
        return ("dict", [(tagged(k), tagged(v)) for k, v in value.items()])
    return (type(value).__name__, value)


def assert_exact(got: Any, sent: Any) -> None:
    assert tagged(got) == tagged(sent)


# Integers around every limit a 64-bit parser has, and far beyond.
BOUNDARY_INTS = [s * (2 ** e + d) for e in (31, 32, 53, 63, 64, 65, 128, 1000)
                 for d in (-1, 0, 1) for s in (1, -1)] + [18446744073709551623, 10 ** 30, -10 ** 30]
# Every text json reads back as the same str: lone surrogates included (a high one followed by
# a low one is read back as one character: not a round trip).
_PAIR = re.compile("[\ud800-\udbff](?=[\udc00-\udfff])")
TEXT = st.text(st.characters() | st.characters(categories=["Cs"]) | st.sampled_from("0123456789")
               ).map(lambda text: _PAIR.sub("x", text))
SCALARS = (st.none() | st.booleans() | st.integers() | st.sampled_from(BOUNDARY_INTS)
           | st.integers(min_value=-(2 ** 300), max_value=2 ** 300) | st.floats() | TEXT
           | st.from_regex(r"\A-?[0-9]{15,25}\Z"))
JSON_VALUES = st.recursive(
    SCALARS, lambda inner: st.lists(inner, max_size=6) | st.dictionaries(TEXT, inner, max_size=6),
    max_leaves=25)


@settings(max_examples=150, deadline=None)
@given(JSON_VALUES)
def test_the_json_module_round_trips_these_values(value: Any) -> None:
    """The strategy's values are the ones this promise is about."""
    assert_exact(json.loads(json.dumps(value)), value)


@settings(max_examples=300, deadline=None)
@given(JSON_VALUES)
def test_envelope_round_trips_every_value_exactly(value: Any) -> None:
    inner = {"method": "m", "args": {"value": value}, "result": value}
    assert_exact(envelope.decode(envelope.encode(inner)), inner)
    assert_exact(envelope.decode(envelope.encode_unwrapped(inner)), inner)


@settings(max_examples=200, deadline=None)
@given(JSON_VALUES)
def test_envelope_reads_oslo_bodies_and_oslo_reads_ours(value: Any) -> None:
    """oslo.messaging writes ``jsonutils.dumps`` (the json module) inside its envelope and reads
    with ``jsonutils.loads``: both directions are exact."""
    inner = {"result": value, "failure": None, "ending": True}
    oslo_body = json.dumps({"oslo.version": "2.0", "oslo.message": jsonutils.dumps(inner)})
    assert_exact(envelope.decode(oslo_body.encode()), inner)
    ours = json.loads(envelope.encode(inner))
    assert_exact(jsonutils.loads(ours["oslo.message"]), inner)


@pytest.mark.parametrize("text", [
    "18446744073709551616", "-9223372036854775809", "[1e400]", "NaN", "[-Infinity]",
    '"\\ud800"', '{"a": 123456789012345678901234567890}', '"\\u0031' + "2" * 30 + '"',
])
def test_texts_orjson_would_misread_are_read_by_the_json_module(text: str) -> None:
    inner = {"v": json.loads(text)}
    body = json.dumps({"oslo.version": "2.0", "oslo.message": json.dumps(inner)})
    assert_exact(envelope.decode(body.encode()), inner)
    assert_exact(envelope.decode(json.dumps(inner).encode()), inner)  # a legacy body


def test_digits_escaped_in_the_envelope_are_still_seen() -> None:
    """A big integer whose digits the sender escaped in the outer string is still exact."""
    number = "9" * 25
    escaped = "".join(f"\\u{ord(c):04x}" for c in number)
    body = '{"oslo.version": "2.0", "oslo.message": "{\\"n\\": ' + escaped + '}"}'
    assert envelope.decode(body.encode()) == {"n": int(number)}


@pytest.mark.parametrize("inner, expected", [
    ({"a": None, "b": [None, math.nan]}, None),
    ({"a": [math.inf, None], "b": {"c": -math.inf}}, None),
    ({"k": {math.nan: None}}, {"k": {"NaN": None}}),
    ({"e": [None, (math.nan,)]}, {"e": [None, [math.nan]]}),
])
def test_non_finite_floats_next_to_nulls_are_not_nulled(inner: dict, expected: Any) -> None:
    """orjson writes NaN and infinities as null; msgbus writes them as the json module does."""
    assert_exact(json.loads(envelope.dumps(inner)), expected or inner)
    assert envelope.dumps(inner) == jsonutils.dumps(inner)


class Colour(enum.Enum):
    RED = "red"
    NAN = float("nan")


@pytest.fixture(scope="module")
def echo_client() -> Iterator[msgbus.RPCClient]:
    msgbus.fake.reset()
    transport = msgbus.get_rpc_transport(url="fake://exact/")
    server = msgbus.get_rpc_server(transport, msgbus.Target(topic="exact", server="s1"),
                                   [Echo()])
    server.start()
    try:
        yield msgbus.get_rpc_client(transport, msgbus.Target(topic="exact"), timeout=10)
    finally:
        server.stop()
        server.wait()
        transport.cleanup()
        msgbus.fake.reset()


class Echo:
    def __init__(self) -> None:
        self.seen: list[Any] = []

    def echo(self, ctxt: Any, value: Any) -> Any:
        self.seen.append(value)
        return value

    def context(self, ctxt: Any) -> Any:
        return ctxt


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(JSON_VALUES)
def test_call_arguments_and_results_are_exact_through_fake(echo_client: msgbus.RPCClient,
                                                           value: Any) -> None:
    assert_exact(echo_client.call({}, "echo", value=value), value)


@settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.dictionaries(st.from_regex(r"\A[a-z_]{1,12}\Z"), JSON_VALUES, max_size=4))
def test_context_values_are_exact_through_fake(echo_client: msgbus.RPCClient,
                                               ctxt: dict) -> None:
    got = echo_client.call(ctxt, "context")
    got.pop("client_timeout")
    assert_exact(got, ctxt)


# -- values JSON cannot hold: written as oslo.serialization writes them ----------------------

class Mapping(collections.UserDict):
    pass


@dataclasses.dataclass
class Point:
    x: int
    y: float


class WithToDict:
    def to_dict(self) -> dict:
        return {"kind": "with-to-dict", "when": datetime.date(2024, 5, 6)}


Pair = collections.namedtuple("Pair", "left right")

OSLO_CONVERTED = [
    b"bytes", range(4), Mapping(a=1, b=Mapping(c={2})), {3, 1, 2}, frozenset(["x"]),
    ipaddress.ip_address("192.0.2.1"), ipaddress.ip_address("2001:db8::1"),
    ipaddress.ip_interface("192.0.2.1/24"), ipaddress.ip_network("192.0.2.0/30"),
    datetime.datetime(2024, 1, 2, 3, 4, 5, 6), datetime.date(2024, 1, 2),
    datetime.datetime(2024, 1, 2, tzinfo=datetime.timezone(datetime.timedelta(hours=5))),
    datetime.datetime(7, 1, 1), uuid.UUID(int=42), decimal.Decimal("1.10"),
    ValueError("bad", 3), collections.OrderedDict(z=1, a=2), Pair(1, [2]), (1, (2, 3)),
    {"k": {1, 2 ** 70}}, {"a": {"b": {"c": {"d": Mapping(e=Mapping(f=Mapping(g=1)))}}}},
    Mapping(a=Mapping(b=Mapping(c=Mapping(d=Mapping(e=1))))), dict(a=1, b=2).keys(),
    dict(a=1).values(), xmlrpc_client.DateTime("20240102T03:04:05"), len, json,
    itertools.count(3), collections.deque([1, 2]), bytearray(b"ab"),
    {1: "a", 2.5: "b", None: "c", False: "d"}, {"e": (math.nan, None)},
    [float("nan"), float("inf"), -0.0, 2 ** 64 + 7, "\ud800", None],
]
try:  # netaddr comes with oslo.utils
    import netaddr
    OSLO_CONVERTED += [netaddr.IPAddress("10.0.0.1"), netaddr.IPNetwork("10.0.0.0/24")]
except ImportError:  # pragma: no cover
    pass


@pytest.mark.parametrize("value", OSLO_CONVERTED, ids=lambda v: type(v).__name__)
def test_values_are_written_as_oslo_writes_them(value: Any) -> None:
    expected = json.loads(jsonutils.dumps({"v": value}))
    assert_exact(json.loads(envelope.dumps({"v": value})), expected)
    # and an oslo.messaging peer reads the same from our body
    body = json.loads(envelope.encode({"v": value}))
    assert_exact(jsonutils.loads(body["oslo.message"]), expected)


def test_iterators_are_converted_once_even_when_the_slow_path_runs() -> None:
    assert json.loads(envelope.dumps({"it": iter([1, 2]), "big": 2 ** 70})) == \
        {"it": [1, 2], "big": 2 ** 70}
    assert json.loads(envelope.dumps({"it": (i for i in [1]), "m": map(str, [1])}))["m"] == ["1"]


@pytest.mark.parametrize("value, expected", [
    (datetime.time(1, 2, 3), "01:02:03"),
    (Colour.RED, "red"),
    ([Colour.NAN, None], [math.nan, None]),
    (Point(1, 2.5), {"x": 1, "y": 2.5}),
    (WithToDict(), {"kind": "with-to-dict", "when": "2024-05-06"}),
    ({uuid.UUID(int=1): 1}, {"00000000-0000-0000-0000-000000000001": 1}),
    ([Point(0, 0.5), 2 ** 65], [{"x": 0, "y": 0.5}, 2 ** 65]),
])
def test_msgbus_also_sends_what_oslo_refuses(value: Any, expected: Any) -> None:
    """A documented difference (doc/oslo-differences.md): oslo.messaging raises on these."""
    with pytest.raises((TypeError, ValueError)):
        jsonutils.dumps({"v": value})
    assert_exact(json.loads(envelope.dumps({"v": value})), {"v": expected})


@pytest.mark.parametrize("value", [object(), b"\xff", {(1, 2): 1}])
def test_values_nobody_can_send_are_refused(value: Any) -> None:
    with pytest.raises(msgbus.MessageSerializationError):
        envelope.dumps({"v": value})


def test_circular_and_deep_values_are_refused_not_crashed() -> None:
    loop: list = []
    loop.append(loop)
    with pytest.raises(msgbus.MessageSerializationError):
        envelope.dumps(loop)
    deep: list = []
    for _ in range(100_000):
        deep = [deep]
    with pytest.raises(msgbus.MessageSerializationError):
        envelope.dumps(deep)
    with pytest.raises(envelope.MalformedMessage):
        envelope.decode(b"[" * 100_000 + b"]" * 100_000)


# -- to_primitive, side by side with oslo.serialization's ------------------------------------

TO_PRIMITIVE_OPTIONS = [
    {}, {"convert_instances": True}, {"convert_datetime": False}, {"max_depth": 1},
    {"fallback": repr}, {"level": 2}, {"encoding": "latin-1"},
]


class Plain:
    def __init__(self) -> None:
        self.a = 1
        self.nested = {"when": datetime.date(2020, 1, 1), "ids": {7}}


@pytest.mark.parametrize("options", TO_PRIMITIVE_OPTIONS, ids=str)
@pytest.mark.parametrize("value", OSLO_CONVERTED + [Plain(), [Plain()], object(),
                                                    datetime.time(1, 2)],
                         ids=lambda v: type(v).__name__)
def test_to_primitive_is_oslo_serialization_s(value: Any, options: dict) -> None:
    def run(fn: Any) -> Any:
        try:
            return ("value", fn(value, **options))
        except Exception as exc:  # noqa: BLE001 - the same failure is expected of both
            return ("error", type(exc))
    expected, got = run(jsonutils.to_primitive), run(primitives.to_primitive)
    assert repr(got) == repr(expected)


def test_json_payload_serializer_converts_instances_as_oslo() -> None:
    from oslo_messaging import JsonPayloadSerializer as OsloSerializer
    value = {"p": Plain(), "when": datetime.datetime(2020, 1, 2)}
    assert msgbus.JsonPayloadSerializer().serialize_entity({}, value) == \
        OsloSerializer().serialize_entity({}, value)


def test_the_check_for_nulls_costs_nothing_without_nested_nulls() -> None:
    """No null below the top level in orjson's output: no second look at the value (the
    common case stays orjson's speed)."""
    calls = []
    original = envelope._nulls_are_nones
    envelope._nulls_are_nones = lambda v, out: calls.append(v) or original(v, out)  # type: ignore
    try:
        envelope.encode({"method": "m", "args": {"a": [1, 2.5, "x"]}, "_timeout": None})
        assert calls == []
        envelope.encode({"method": "m", "args": {"a": [None, math.nan]}})
        assert calls
    finally:
        envelope._nulls_are_nones = original  # type: ignore


@pytest.mark.parametrize("value", [
    {"t": (math.nan, None)}, {"d": collections.OrderedDict(x=[None, math.inf])},
    {"e": [Colour.NAN, None]}, {"k": {math.nan: None}}, {1: None, "f": [-math.inf]},
    [None, [None, [None, [math.nan]]]],
])
def test_a_nan_next_to_nulls_is_found_whatever_holds_it(value: Any) -> None:
    assert not envelope._nulls_are_nones(value, envelope.orjson.dumps(
        value, option=envelope._ORJSON_OPTIONS, default=envelope._fast_default))
    assert "NaN" in envelope.dumps(value) or "Infinity" in envelope.dumps(value)
