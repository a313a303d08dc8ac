"""oslo.messaging (18.x, from PyPI) and msgbus share quorum queues on the 3-node cluster, on
both AMQP drivers, through a three-host URL.

For each option set, a server of one library declares the topic's queues first and a server of
the other library declares them again (RabbitMQ refuses a declaration whose type, durability or
arguments differ, with 406 PRECONDITION_FAILED); then a client of the second library calls
each server, casts to the topic (each cast handled once, by one of them) and to the fanout
(handled by both). Notifications go both ways. The queues end up quorum queues with exactly
oslo.messaging's arguments.
"""

from __future__ import annotations

import collections
from typing import Any

import oslo_messaging as om
import pytest

import msgbus
from msgbus.notify import Notifier, get_notification_listener, get_notification_transport
from msgbus.testing.fixtures import Recorder
from msgbus.testing.harness import InteropEndpoint
from msgbus.testing.rabbit_cluster import RabbitCluster

from .cluster_helpers import DRIVERS, msgbus_conf, oslo_conf, unique

pytestmark = pytest.mark.timeout(180)

WAIT = 30.0

#: oslo.messaging's rabbit options of each set (msgbus takes the same names).
OPTION_SETS: dict[str, dict[str, Any]] = {
    "quorum": {"rabbit_quorum_queue": True},
    "quorum-limits": {"rabbit_quorum_queue": True, "rabbit_quorum_delivery_limit": 5,
                      "rabbit_quorum_max_memory_length": 1000,
                      "rabbit_quorum_max_memory_bytes": 8 * 1024 * 1024},
    "transient-quorum": {"rabbit_quorum_queue": True, "rabbit_transient_quorum_queue": True},
}


def expected_shared_arguments(options: dict[str, Any]) -> dict[str, Any]:
    """The arguments oslo.messaging 18 declares a topic or server queue with."""
    args: dict[str, Any] = {"x-queue-type": "quorum"}
    for option, key in (("rabbit_quorum_delivery_limit", "x-delivery-limit"),
                        ("rabbit_quorum_max_memory_length", "x-max-in-memory-length"),
                        ("rabbit_quorum_max_memory_bytes", "x-max-in-memory-bytes")):
        if options.get(option):
            args[key] = options[option]
    return args


class Sides:
    """Transports, servers and listeners of both libraries, closed after the test."""

    def __init__(self, cluster: RabbitCluster, scheme: str, options: dict[str, Any]) -> None:
        self.msgbus_url = cluster.url_for(scheme)
        self.oslo_url = cluster.url_for("rabbit")
        self.options = options
        self._servers: list[Any] = []
        self._transports: list[Any] = []

    def _keep(self, transport: Any) -> Any:
        self._transports.append(transport)
        return transport

    def msgbus_transport(self, notifications: bool = False) -> Any:
        make = get_notification_transport if notifications else msgbus.get_rpc_transport
        return self._keep(make(msgbus_conf(**self.options), url=self.msgbus_url))

    def oslo_transport(self, notifications: bool = False) -> Any:
        make = om.get_notification_transport if notifications else om.get_rpc_transport
        return self._keep(make(oslo_conf(self.oslo_url, **self.options), url=self.oslo_url))

    def start(self, server: Any) -> Any:
        server.start()
        self._servers.append(server)
        return server

    def msgbus_server(self, topic: str, name: str, recorder: Recorder) -> Any:
        return self.start(msgbus.get_rpc_server(self.msgbus_transport(),
                                                msgbus.Target(topic=topic, server=name),
                                                [InteropEndpoint(name, recorder)]))

    def oslo_server(self, topic: str, name: str, recorder: Recorder) -> Any:
        return self.start(om.get_rpc_server(self.oslo_transport(),
                                            om.Target(topic=topic, server=name),
                                            [InteropEndpoint(name, recorder)],
                                            executor="threading"))

    def close(self) -> None:
        for server in reversed(self._servers):
            server.stop()
            server.wait()
        for transport in reversed(self._transports):
            transport.cleanup()


def _check_rpc(client: Any, recorder: Recorder, names: tuple[str, str]) -> None:
    for name in names:
        assert client.prepare(server=name).call({}, "whoami") == name
        assert client.prepare(server=name).call({}, "echo", value=[1, "x"]) == [1, "x"]
    for i in range(10):
        client.cast({}, "note", value=i)
    client.prepare(fanout=True).cast({}, "note", value="all")
    events = recorder.wait_count(12, WAIT)
    assert recorder.wait_for(lambda ev: sum(1 for _, v in ev if v == "all") == 2, WAIT)
    values = collections.Counter(v for _, v in events)
    want: dict[Any, int] = {i: 1 for i in range(10)}
    want["all"] = 2
    assert values == want, values


def _check_queues(cluster: RabbitCluster, topic: str, names: tuple[str, str],
                  options: dict[str, Any]) -> None:
    queues = cluster.nodes[0].list_queues()
    types = cluster.queue_types()
    want = expected_shared_arguments(options)
    for name in (topic, *(f"{topic}.{n}" for n in names)):
        assert types.get(name) == "quorum", (name, types.get(name))
        assert queues[name]["durable"] is True
        assert queues[name]["arguments"] == want, (name, queues[name]["arguments"])
    transient = "quorum" if options.get("rabbit_transient_quorum_queue") else "classic"
    fanouts = [n for n in types if n.startswith(f"{topic}_fanout_")]
    assert len(fanouts) == 2 and {types[n] for n in fanouts} == {transient}, \
        {n: types[n] for n in fanouts}


@pytest.mark.parametrize("option_set", list(OPTION_SETS))
@pytest.mark.parametrize("scheme", DRIVERS)
def test_oslo_server_first_then_msgbus_server_and_client(cluster: RabbitCluster, scheme: str,
                                                         option_set: str) -> None:
    options = OPTION_SETS[option_set]
    s = Sides(cluster, scheme, options)
    topic = unique(f"o-first-{scheme}")
    try:
        recorder = Recorder()
        s.oslo_server(topic, "o1", recorder)
        s.msgbus_server(topic, "m1", recorder)
        client = msgbus.get_rpc_client(s.msgbus_transport(), msgbus.Target(topic=topic),
                                       timeout=WAIT)
        _check_rpc(client, recorder, ("o1", "m1"))
        _check_queues(cluster, topic, ("o1", "m1"), options)
    finally:
        s.close()
        cluster.delete_queues([topic, f"{topic}.o1", f"{topic}.m1"])


@pytest.mark.parametrize("option_set", list(OPTION_SETS))
@pytest.mark.parametrize("scheme", DRIVERS)
def test_msgbus_server_first_then_oslo_server_and_client(cluster: RabbitCluster, scheme: str,
                                                         option_set: str) -> None:
    options = OPTION_SETS[option_set]
    s = Sides(cluster, scheme, options)
    topic = unique(f"m-first-{scheme}")
    try:
        recorder = Recorder()
        s.msgbus_server(topic, "m1", recorder)
        s.oslo_server(topic, "o1", recorder)
        client = om.get_rpc_client(s.oslo_transport(), om.Target(topic=topic), timeout=WAIT)
        _check_rpc(client, recorder, ("m1", "o1"))
        _check_queues(cluster, topic, ("m1", "o1"), options)
    finally:
        s.close()
        cluster.delete_queues([topic, f"{topic}.o1", f"{topic}.m1"])


class _Sink:
    def __init__(self) -> None:
        self.recorder = Recorder()

    def info(self, ctxt: Any, publisher_id: str, event_type: str, payload: Any,
             metadata: Any) -> None:
        self.recorder.add(payload["n"])


@pytest.mark.parametrize("option_set", list(OPTION_SETS))
@pytest.mark.parametrize("scheme", DRIVERS)
def test_notifications_both_ways(cluster: RabbitCluster, scheme: str, option_set: str) -> None:
    """msgbus notifies an oslo.messaging listener and oslo.messaging a msgbus listener; the
    notifier declares the queue when no listener has yet (oslo's rule), so one side's
    notifier and the other side's listener both declare it."""
    options = OPTION_SETS[option_set]
    s = Sides(cluster, scheme, options)
    to_oslo, to_msgbus = unique(f"n-oslo-{scheme}"), unique(f"n-msgbus-{scheme}")
    try:
        # notifiers first: they declare the notification queues, the listeners again
        m_notifier = Notifier(s.msgbus_transport(notifications=True), "m", driver="messagingv2",
                              topics=[to_oslo])
        o_notifier = om.Notifier(s.oslo_transport(notifications=True), "o",
                                 driver="messagingv2", topics=[to_msgbus])
        for n in range(3):
            m_notifier.info({}, "ev", {"n": n})
            o_notifier.info({}, "ev", {"n": n})
        oslo_sink, msgbus_sink = _Sink(), _Sink()
        s.start(om.get_notification_listener(s.oslo_transport(notifications=True),
                                             [om.Target(topic=to_oslo)], [oslo_sink],
                                             executor="threading"))
        s.start(get_notification_listener(s.msgbus_transport(notifications=True),
                                          [msgbus.Target(topic=to_msgbus)], [msgbus_sink]))
        for n in range(3, 6):
            m_notifier.info({}, "ev", {"n": n})
            o_notifier.info({}, "ev", {"n": n})
        assert sorted(oslo_sink.recorder.wait_count(6, WAIT)) == list(range(6))
        assert sorted(msgbus_sink.recorder.wait_count(6, WAIT)) == list(range(6))
        types = cluster.queue_types()
        assert types.get(f"{to_oslo}.info") == "quorum"
        assert types.get(f"{to_msgbus}.info") == "quorum"
    finally:
        s.close()
        cluster.delete_queues([f"{to_oslo}.info", f"{to_msgbus}.info"])
