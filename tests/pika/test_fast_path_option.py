"""The ``fast_path`` option picks the connection class: the tuned FastSelectConnection by
default, pika's plain SelectConnection with ``fast_path=false`` or when the installed pika is
not a verified release (the version guard off); a call works on each."""

from __future__ import annotations

import pytest
from pika.adapters.select_connection import SelectConnection

import msgbus
from msgbus_pika import select_connection
from msgbus_pika.options import PikaSettings

from pika_helpers import PIKA_URL, Closer, Echo, make_conf, unique

pytestmark = pytest.mark.timeout(60)


def _connection_class(transport: msgbus.Transport) -> type:
    """The class of the transport's open sending connection."""
    publisher = transport.driver._get_publisher()  # type: ignore[attr-defined]
    connection = publisher.connection.connection
    assert connection is not None, "the sending connection is not open"
    return type(connection)


def _call_through(closer: Closer, url: str) -> msgbus.Transport:
    transport = closer.transport(url)
    topic = unique("fastpath")
    closer.server(transport, topic, [Echo()])
    client = msgbus.get_rpc_client(transport, msgbus.Target(topic=topic), timeout=20)
    assert client.call({}, "echo", value=5) == 5
    return transport


def test_the_option_defaults_on_and_reads_from_config_and_url() -> None:
    assert PikaSettings.from_conf(make_conf()).fast_path is True
    assert PikaSettings.from_conf(make_conf(fast_path=False)).fast_path is False
    assert PikaSettings.from_conf(make_conf(), {"fast_path": "false"}).fast_path is False


@pytest.mark.parametrize("query, expected", [
    ("", select_connection.FastSelectConnection),
    ("?fast_path=false", SelectConnection)])
def test_fast_path_option_picks_the_connection_class(closer: Closer, query: str,
                                                     expected: type) -> None:
    assert select_connection.VERSION_OK, "the installed pika is not a verified release"
    transport = _call_through(closer, PIKA_URL + query)
    assert _connection_class(transport) is expected


def test_an_unverified_pika_falls_back_to_the_plain_class(closer: Closer,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(select_connection, "VERSION_OK", False)  # as on another pika release
    transport = _call_through(closer, PIKA_URL)
    assert _connection_class(transport) is SelectConnection
