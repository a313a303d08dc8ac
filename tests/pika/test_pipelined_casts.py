"""pika:// casts published ahead of their confirms (``cast_confirm_window``): none lost or doubled.

A cast returns once handed to the I/O thread while fewer than the window are unconfirmed; the
publisher keeps each job until the broker confirms it and publishes it again after a cut. The
server drops a copy the broker had already taken (same ``_unique_id``).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

import msgbus
from msgbus.testing import rabbitmq
from msgbus.testing.harness import cast_through_cuts

from pika_helpers import HOST, OPTION_SETS, PIKA_URL, PORT, Closer, Echo, pika_url, unique

pytestmark = pytest.mark.timeout(120)


@pytest.fixture
def proxy() -> Iterator[rabbitmq.TcpProxy]:
    with rabbitmq.TcpProxy(PORT, HOST) as p:
        yield p


def _client(closer: Closer, url: str, topic: str) -> msgbus.RPCClient:
    return msgbus.get_rpc_client(closer.transport(url=url), msgbus.Target(topic=topic),
                                 timeout=10)


def _casts_in_flight(client: msgbus.RPCClient) -> int:
    return client.transport.driver._casts.in_flight


@pytest.mark.parametrize("window", [64, 0])
@pytest.mark.parametrize("options", list(OPTION_SETS))
def test_casts_survive_the_send_connection_cut_mid_burst(proxy: rabbitmq.TcpProxy,
                                                         closer: Closer, window: int,
                                                         options: str) -> None:
    """Casts retried forever (retry None) go out ahead of their confirms; the connection is
    cut under them: each still arrives exactly once."""
    topic = unique("pipeline-cut")
    echo = Echo()
    closer.server(closer.transport(), topic, [echo])
    host, port = proxy.netloc.rsplit(":", 1)
    url = pika_url(host, int(port), cast_confirm_window=window, **OPTION_SETS[options])
    client = _client(closer, url, topic)
    assert client.call({}, "echo", value="warm") == "warm"
    cast_through_cuts(client, echo, proxy.drop_all)
    assert client.transport.driver._casts.flush(10.0)


def test_closing_the_transport_settles_every_cast(closer: Closer) -> None:
    topic = unique("pipeline-close")
    echo = Echo()
    closer.server(closer.transport(), topic, [echo])
    transport = msgbus.get_rpc_transport(url=PIKA_URL)
    client = msgbus.get_rpc_client(transport, msgbus.Target(topic=topic))
    try:
        assert client.call({}, "echo", value="warm", ) == "warm"
        for i in range(500):
            client.cast({}, "note", value=i)
    finally:
        transport.cleanup()
    assert _casts_in_flight(client) == 0
    assert echo.wait_seen(lambda seen: len(seen) >= 500)
    assert sorted(echo.seen) == list(range(500))


def test_casts_go_without_waiting_only_while_connected(closer: Closer, logs: Any) -> None:
    """With no broker reachable, a cast still fails to the caller by its retry rule."""
    transport = closer.transport(url=pika_url("127.0.0.1", rabbitmq.free_port()))
    client = msgbus.get_rpc_client(transport, msgbus.Target(topic=unique("nobroker")), retry=1)
    with pytest.raises(msgbus.MessageDeliveryFailure):
        client.cast({}, "note", value=1)
