"""Wire compatibility with oslo.messaging (from PyPI) on the same RabbitMQ broker.

oslo.messaging clients call and cast to msgbus servers and msgbus clients to oslo.messaging
servers: topic, server and fanout targets, results, context, remote exceptions of an allowed
module, NoSuchMethod. Both libraries declare the same shared queues (also durable and quorum)
without a PRECONDITION_FAILED, so their servers can even share one topic.
"""

from __future__ import annotations

import collections
import importlib
from collections.abc import Iterator
from typing import Any

import oslo_messaging as om
import pytest
from oslo_config import cfg

import msgbus
from msgbus.testing import rabbitmq
from msgbus.testing.fixtures import Recorder
from msgbus.testing.harness import InteropEndpoint, InteropError

from .helpers import RABBIT_URL, Closer, delete_entities, make_conf, unique

pytestmark = pytest.mark.timeout(120)

ERRORS_MODULE = InteropError.__module__
WAIT = 30.0


class OsloEndpoint(InteropEndpoint):
    """The oslo.messaging side's endpoint; casts are recorded as (name, value)."""


class MsgbusEndpoint(OsloEndpoint):
    """The msgbus side's endpoint: the same methods."""


def check_casts(recorder: Recorder, servers: int) -> None:
    """Six topic casts went to exactly one server each, the fanout cast to every server."""
    events = recorder.wait_count(6 + servers)
    assert recorder.wait_for(lambda ev: sum(1 for _, v in ev if v == "all") == servers)
    values = collections.Counter(v for _, v in events)
    assert values == {**{i: 1 for i in range(6)}, "all": servers}, values
    assert len({name for name, v in events if v == "all"}) == servers


def oslo_conf(**rabbit_opts: Any) -> cfg.ConfigOpts:
    """A fresh ConfigOpts for oslo.messaging with ``rabbit_opts`` in its rabbit group."""
    conf = cfg.ConfigOpts()
    conf([], project="oslo-interop", default_config_files=[], default_config_dirs=[])
    om.get_rpc_transport(conf, url=RABBIT_URL).cleanup()  # registers oslo's options
    # oslo.messaging 18 registers its tracing and metrics options on the global CONF only
    for module, group in (("oslo_messaging._tracing.client", "oslo_messaging_tracing"),
                          ("oslo_messaging._metrics.client", "oslo_messaging_metrics")):
        try:
            opts = getattr(importlib.import_module(module), group)
        except (ImportError, AttributeError):
            continue
        conf.register_opts(opts, group=group)
    for key, value in rabbit_opts.items():
        conf.set_override(key, value, group="oslo_messaging_rabbit")
    return conf


class Oslo:
    """oslo.messaging transports and servers made by a test, cleaned up after it."""

    def __init__(self) -> None:
        self._servers: list[Any] = []
        self._transports: list[Any] = []

    def transport(self, conf: cfg.ConfigOpts | None = None,
                  allowed: list[str] | None = None) -> Any:
        transport = om.get_rpc_transport(conf or oslo_conf(), url=RABBIT_URL,
                                         allowed_remote_exmods=allowed or [])
        self._transports.append(transport)
        return transport

    def server(self, topic: str, endpoint: Any, server: str = "oslo1",
               conf: cfg.ConfigOpts | None = None) -> Any:
        srv = om.get_rpc_server(self.transport(conf), om.Target(topic=topic, server=server),
                                [endpoint], executor="threading")
        self._servers.append(srv)
        srv.start()
        return srv

    def client(self, topic: str, allowed: list[str] | None = None, **kwargs: Any) -> Any:
        return om.get_rpc_client(self.transport(allowed=allowed), om.Target(topic=topic),
                                 timeout=WAIT, **kwargs)

    def close(self) -> None:
        for srv in self._servers:
            srv.stop()
        for srv in self._servers:
            srv.wait()
        for transport in self._transports:
            transport.cleanup()


@pytest.fixture
def oslo() -> Iterator[Oslo]:
    o = Oslo()
    try:
        yield o
    finally:
        o.close()


def msgbus_client(closer: Closer, topic: str, **kwargs: Any) -> msgbus.RPCClient:
    transport = closer.transport(allowed_remote_exmods=[ERRORS_MODULE])
    return msgbus.get_rpc_client(transport, msgbus.Target(topic=topic), timeout=WAIT, **kwargs)


class TestOsloClientToMsgbusServer:
    """oslo.messaging's rabbit driver calls and casts to msgbus-kombu servers."""

    def test_call_to_topic_and_context(self, closer: Closer, oslo: Oslo) -> None:
        topic = unique("o2m")
        closer.server(closer.transport(), topic, [MsgbusEndpoint("m1")])
        client = oslo.client(topic)
        assert client.call({}, "echo", value={"a": [1, 2.5, None, "x"]}) == \
            {"a": [1, 2.5, None, "x"]}
        ctxt = client.call({"user": "alice", "roles": ["admin"]}, "context")
        assert ctxt["user"] == "alice" and ctxt["roles"] == ["admin"]

    def test_call_to_one_server(self, closer: Closer, oslo: Oslo) -> None:
        topic = unique("o2m-server")
        transport = closer.transport()
        closer.server(transport, topic, [MsgbusEndpoint("m1")], server="m1")
        closer.server(transport, topic, [MsgbusEndpoint("m2")], server="m2")
        client = oslo.client(topic).prepare(server="m2")
        assert {client.call({}, "whoami") for _ in range(8)} == {"m2"}

    def test_cast_to_topic_and_fanout(self, closer: Closer, oslo: Oslo) -> None:
        topic = unique("o2m-cast")
        transport = closer.transport()
        recorder = Recorder()
        for i in range(3):
            closer.server(transport, topic, [MsgbusEndpoint(f"m{i}", recorder)], server=f"m{i}")
        client = oslo.client(topic)
        for i in range(6):
            client.cast({}, "note", value=i)
        client.prepare(fanout=True).cast({}, "note", value="all")
        check_casts(recorder, 3)

    def test_remote_exception_of_allowed_module(self, closer: Closer, oslo: Oslo) -> None:
        topic = unique("o2m-error")
        closer.server(closer.transport(), topic, [MsgbusEndpoint("m1")])
        client = oslo.client(topic, allowed=[ERRORS_MODULE])
        with pytest.raises(InteropError) as info:
            client.call({}, "fail_interop", message="broken on purpose")
        assert "broken on purpose" in str(info.value)
        assert type(info.value).__name__ == "InteropError_Remote"
        with pytest.raises(ValueError, match="builtin"):
            client.call({}, "fail", message="builtin")

    def test_no_such_method(self, closer: Closer, oslo: Oslo) -> None:
        """As from an oslo.messaging server, a client not allowing the module gets RemoteError
        naming NoSuchMethod."""
        topic = unique("o2m-nomethod")
        closer.server(closer.transport(), topic, [MsgbusEndpoint("m1")])
        with pytest.raises(om.RemoteError) as info:
            oslo.client(topic).call({}, "no_such_method")
        assert info.value.exc_type == "NoSuchMethod"
        # the server keeps serving
        assert oslo.client(topic).call({}, "echo", value=1) == 1


class TestMsgbusClientToOsloServer:
    """msgbus-kombu clients call and cast to oslo.messaging servers."""

    def test_call_to_topic_and_context(self, closer: Closer, oslo: Oslo) -> None:
        topic = unique("m2o")
        oslo.server(topic, OsloEndpoint("o1"))
        client = msgbus_client(closer, topic)
        assert client.call({}, "echo", value=["x", 1, {"y": None}]) == ["x", 1, {"y": None}]
        ctxt = client.call({"project": "p1", "request_id": "req-1"}, "context")
        assert ctxt["project"] == "p1" and ctxt["request_id"] == "req-1"

    def test_call_to_one_server(self, closer: Closer, oslo: Oslo) -> None:
        topic = unique("m2o-server")
        oslo.server(topic, OsloEndpoint("o1"), server="o1")
        oslo.server(topic, OsloEndpoint("o2"), server="o2")
        client = msgbus_client(closer, topic).prepare(server="o1")
        assert {client.call({}, "whoami") for _ in range(8)} == {"o1"}

    def test_cast_to_topic_and_fanout(self, closer: Closer, oslo: Oslo) -> None:
        topic = unique("m2o-cast")
        recorder = Recorder()
        for i in range(3):
            oslo.server(topic, OsloEndpoint(f"o{i}", recorder), server=f"o{i}")
        client = msgbus_client(closer, topic)
        for i in range(6):
            client.cast({}, "note", value=i)
        client.prepare(fanout=True).cast({}, "note", value="all")
        check_casts(recorder, 3)

    def test_remote_exception_of_allowed_module(self, closer: Closer, oslo: Oslo) -> None:
        topic = unique("m2o-error")
        oslo.server(topic, OsloEndpoint("o1"))
        client = msgbus_client(closer, topic)
        with pytest.raises(InteropError) as info:
            client.call({}, "fail_interop", message="oslo says no")
        assert "oslo says no" in str(info.value)

    def test_no_such_method(self, closer: Closer, oslo: Oslo) -> None:
        topic = unique("m2o-nomethod")
        oslo.server(topic, OsloEndpoint("o1"))
        client = msgbus_client(closer, topic)
        with pytest.raises(msgbus.NoSuchMethod):
            client.call({}, "no_such_method")
        assert client.call({}, "echo", value=2) == 2


class TestSharedQueues:
    """oslo.messaging and msgbus servers on one topic: identical declarations, shared work."""

    @pytest.mark.parametrize("options", [
        {},
        {"amqp_durable_queues": True},
        {"rabbit_quorum_queue": True},
    ], ids=["defaults", "durable", "quorum"])
    def test_servers_of_both_share_a_topic(self, closer: Closer, oslo: Oslo,
                                           options: dict[str, Any]) -> None:
        topic = unique("shared")
        exchange = unique("exchange") if options else None
        msgbus_conf = make_conf(**options)
        conf = oslo_conf(**options)
        if exchange:
            conf.set_override("control_exchange", exchange)
            msgbus_conf.set_override("control_exchange", exchange)
            # durable and quorum queues outlive their consumers: remove them at the very end
            closer.add(lambda: delete_entities(
                [topic, f"{topic}.oslo", f"{topic}.msgbus"], [exchange]))
        oslo.server(topic, OsloEndpoint("oslo"), server="oslo", conf=conf)
        closer.server(closer.transport(conf=msgbus_conf), topic, [MsgbusEndpoint("msgbus")],
                      server="msgbus")
        client = msgbus.get_rpc_client(closer.transport(conf=msgbus_conf),
                                       msgbus.Target(topic=topic), timeout=WAIT)
        names = collections.Counter(client.call({}, "whoami") for _ in range(40))
        assert set(names) == {"oslo", "msgbus"}, names
        oslo_client = om.get_rpc_client(oslo.transport(conf), om.Target(topic=topic),
                                        timeout=WAIT)
        names = collections.Counter(oslo_client.call({}, "whoami") for _ in range(40))
        assert set(names) == {"oslo", "msgbus"}, names
        queue = rabbitmq.list_queues()[topic]
        if options.get("rabbit_quorum_queue"):
            assert queue["arguments"].get("x-queue-type") == "quorum"
            assert queue["durable"] is True
        else:  # (rabbitmqctl 3.10 shows no consumer count for quorum queues)
            assert queue["consumers"] == 2
            assert queue["durable"] is bool(options.get("amqp_durable_queues"))
