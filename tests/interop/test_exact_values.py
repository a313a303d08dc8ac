"""Exact values on every path a call can take: msgbus to msgbus on fake://, rabbit:// and
pika://, msgbus clients to oslo.messaging servers and oslo.messaging clients to msgbus servers
(both AMQP drivers), on the shared RabbitMQ.

Each edge value is checked twice: as the server's endpoint received it and as the caller got it
back. A value the json module round-trips must arrive as sent (integers beyond 64 bits, NaN,
infinities, -0.0, lone surrogates...); a value JSON cannot hold (bytes, sets, ranges, mappings,
addresses, dates...) must arrive as oslo.messaging sends it (``jsonutils.dumps``).
"""

from __future__ import annotations

import collections
import datetime
import decimal
import ipaddress
import json
import math
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from oslo_serialization import jsonutils

import msgbus
from msgbus.testing.harness import InteropEndpoint

from .helpers import Oslo, msgbus_closer, unique_topic

pytestmark = pytest.mark.timeout(180)


def tagged(value: Any) -> Any:
    """``value`` with its types made visible: 1, 1.0 and True differ, 0.0 and -0.0 too; NaN
    equals NaN."""
    if isinstance(value, float):
        return ("float", value.hex())
    if isinstance(value, list):
        return ("list", [tagged(v) for v in value])
    if isinstance(value, dict):
        return ("dict", [(k, tagged(v)) for k, v in value.items()])
    return (type(value).__name__, value)


# Values the json module round-trips: they must arrive exactly as sent.
EXACT = {
    "int-2**64+7": 18446744073709551623,
    "int-2**64-1": 2 ** 64 - 1,
    "int-2**64": 2 ** 64,
    "int-2**63": 2 ** 63,
    "int--2**63": -2 ** 63,
    "int--2**63-1": -2 ** 63 - 1,
    "int-2**53+1": 2 ** 53 + 1,
    "int-10**40": 10 ** 40,
    "int--10**40": -10 ** 40,
    "nan": math.nan,
    "inf": math.inf,
    "-inf": -math.inf,
    "-0.0": -0.0,
    "subnormal": 5e-324,
    "max-float": 1.7976931348623157e308,
    "0.1": 0.1,
    "1e16": 1e16,
    "float-from-long-digits": 1.2345678901234568e+29,
    "lone-surrogate": "\ud800",
    "unicode": "é€😀\u0000\u2028",
    "digits-as-text": "18446744073709551623" * 3,
    "null-as-text": "null",
    "bools-and-none": [True, False, None, 0, 1, 0.0, 1.0],
    "nested": {"a": [2 ** 70, {"b": -2 ** 70, "c": [None, math.nan, None]}], "": ""},
    "empty": [[], {}, ""],
    "large-text": "x" * 200_000,
}


class Mapping(collections.UserDict):
    pass


# Values JSON cannot hold: they must arrive as oslo.messaging writes them.
CONVERTED = {
    "bytes": b"some bytes",
    "range": range(5),
    "userdict": Mapping(a=1, b=Mapping(c=2 ** 70)),
    "set": {3, 1, 2},
    "frozenset-of-big": frozenset([2 ** 65]),
    "tuple": (1, (2, 3.5)),
    "ipv4": ipaddress.ip_address("192.0.2.7"),
    "ipv6": ipaddress.ip_address("2001:db8::7"),
    "ipv4-network": ipaddress.ip_network("192.0.2.0/30"),
    "datetime": datetime.datetime(2024, 2, 29, 23, 59, 58, 123456),
    "date": datetime.date(2024, 2, 29),
    "uuid": uuid.UUID("12345678-1234-5678-1234-567812345678"),
    "decimal": decimal.Decimal("3.14159265358979323846264338327950288"),
    "dict-keys": {1: "int key", 2.5: "float key", None: "null key"},
}

CASES = [pytest.param(v, v, id=k) for k, v in EXACT.items()] + \
    [pytest.param(v, json.loads(jsonutils.dumps(v)), id=k) for k, v in CONVERTED.items()]

#: (client library and driver, server library and driver)
PATHS = ["msgbus-fake>msgbus-fake", "msgbus-rabbit>msgbus-rabbit", "msgbus-pika>msgbus-pika",
         "msgbus-rabbit>oslo", "msgbus-pika>oslo", "oslo>msgbus-rabbit", "oslo>msgbus-pika"]


class Recording(InteropEndpoint):
    """The interop endpoint, remembering every value and context it received."""

    def __init__(self, name: str) -> None:
        super().__init__(name)
        self.received: list[Any] = []

    def echo(self, ctxt: Any, value: Any) -> Any:
        self.received.append(value)
        return value


class Path:
    def __init__(self, client: Any, endpoint: Recording) -> None:
        self.client = client
        self.endpoint = endpoint


@pytest.fixture(scope="module")
def paths() -> Iterator[Callable[[str], Path]]:
    """Each path's client and server, made on first use and kept for the module."""
    built: dict[str, Path] = {}
    closers = []
    oslo = Oslo()

    def get(name: str) -> Path:
        if name in built:
            return built[name]
        client_side, server_side = name.split(">")
        endpoint = Recording(server_side)
        topic = unique_topic(f"exact-{name.replace('>', '-to-')}")
        if server_side == "oslo":
            oslo.server(topic, [endpoint])
        else:
            closer = msgbus_closer(server_side.split("-")[1])
            closers.append(closer)
            closer.server(closer.transport(), topic, [endpoint], server="m1")
        if client_side == "oslo":
            client = oslo.client(topic)
        else:
            closer = msgbus_closer(client_side.split("-")[1])
            closers.append(closer)
            client = msgbus.get_rpc_client(closer.transport(), msgbus.Target(topic=topic),
                                           timeout=30)
        built[name] = Path(client, endpoint)
        return built[name]

    try:
        yield get
    finally:
        try:
            for closer in reversed(closers):
                closer.close()
        finally:
            oslo.close()


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("sent, expected", CASES)
def test_values_arrive_exactly(paths: Callable[[str], Path], path: str, sent: Any,
                               expected: Any) -> None:
    p = paths(path)
    got = p.client.call({}, "echo", value=sent)
    assert tagged(p.endpoint.received[-1]) == tagged(expected), "as the server received it"
    assert tagged(got) == tagged(expected), "as the caller got it back"


@pytest.mark.parametrize("path", PATHS)
def test_context_values_arrive_exactly(paths: Callable[[str], Path], path: str) -> None:
    ctxt = {"big": 2 ** 70, "negative": -2 ** 64, "nan": math.nan, "text": "\ud800é",
            "nested": {"ids": [2 ** 64 + 7, None]}}
    got = paths(path).client.call(ctxt, "context")
    assert {k: tagged(got[k]) for k in ctxt} == {k: tagged(v) for k, v in ctxt.items()}
