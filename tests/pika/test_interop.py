"""Wire compatibility of ``pika://`` with the kombu driver (``rabbit://``) and oslo.messaging.

Every pairing runs in both directions on the shared broker: a pika client calls and casts to a
kombu or oslo.messaging server, and a kombu or oslo.messaging client to a pika server (topic,
one server, fanout, context, remote errors, NoSuchMethod); notifications go both ways; servers of
both sides share one topic under default, durable and quorum options (identical declarations, no
PRECONDITION_FAILED); and the queues and message properties pika makes are oslo's.
"""

from __future__ import annotations

import collections
import concurrent.futures
import importlib
import json
import time
import uuid
from collections.abc import Iterator
from typing import Any

import oslo_messaging as om
import pika
import pytest
from oslo_config import cfg
from pika_helpers import (HOST, PIKA_URL, PORT, RABBIT_URL, Closer, delete_entities, make_conf,
                          unique)

import msgbus
import msgbus.notify
from msgbus import options as core_options
from msgbus.testing import rabbitmq
from msgbus.testing.fixtures import Recorder
from msgbus.testing.harness import InteropEndpoint, InteropError

pytestmark = pytest.mark.timeout(120)

WAIT = 30.0


ERRORS_MODULE = InteropError.__module__
#: The same RPC endpoint on every side; casts are recorded as (name, value).
Endpoint = InteropEndpoint


class NotificationEndpoint:
    """Records (priority, event_type, payload) of every notification."""

    def __init__(self, recorder: Recorder) -> None:
        self.recorder = recorder

    def info(self, ctxt: Any, publisher_id: str, event_type: str, payload: Any,
             metadata: Any) -> None:
        self.recorder.add(("info", event_type, payload))

    def error(self, ctxt: Any, publisher_id: str, event_type: str, payload: Any,
              metadata: Any) -> None:
        self.recorder.add(("error", event_type, payload))


def oslo_conf(control_exchange: str | None = None, **rabbit_opts: Any) -> cfg.ConfigOpts:
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
    if control_exchange:
        conf.set_override("control_exchange", control_exchange)
    return conf


def kombu_conf(control_exchange: str | None = None, **amqp_opts: Any) -> cfg.ConfigOpts:
    """A fresh ConfigOpts for the kombu driver with ``amqp_opts`` in its group."""
    from msgbus_kombu.options import GROUP, register_opts
    conf = cfg.ConfigOpts()
    conf([], project="kombu-interop", default_config_files=[], default_config_dirs=[])
    register_opts(conf)
    core_options.register_opts(conf)
    for key, value in amqp_opts.items():
        conf.set_override(key, value, group=GROUP)
    if control_exchange:
        conf.set_override("control_exchange", control_exchange)
    return conf


def pika_conf(control_exchange: str | None = None, **amqp_opts: Any) -> cfg.ConfigOpts:
    conf = make_conf(**amqp_opts)
    core_options.register_opts(conf)
    if control_exchange:
        conf.set_override("control_exchange", control_exchange)
    return conf


class Side:
    """One implementation (pika, kombu or oslo.messaging) making servers and clients.

    msgbus and oslo.messaging have the same API, so a side is an API module, a URL and a
    configuration factory; everything it makes is stopped and closed after the test.
    """

    def __init__(self, name: str, api: Any, url: str, make_conf: Any,
                 options: dict[str, Any] | None = None) -> None:
        self.name = name
        self.api = api
        self.url = url
        self._make_conf = make_conf
        self.options = dict(options or {})
        self._servers: list[Any] = []
        self._transports: list[Any] = []

    @property
    def is_oslo(self) -> bool:
        return self.api is om

    def conf(self) -> cfg.ConfigOpts:
        return self._make_conf(**self.options)

    def transport(self, notifications: bool = False) -> Any:
        if notifications:
            get = om.get_notification_transport if self.is_oslo \
                else msgbus.notify.get_notification_transport
        else:
            get = self.api.get_rpc_transport
        transport = get(self.conf(), url=self.url,
                        **({} if notifications else {"allowed_remote_exmods": [ERRORS_MODULE]}))
        self._transports.append(transport)
        return transport

    def server(self, topic: str, endpoint: Any, server: str) -> None:
        # (oslo.messaging 18 serves on threads by default and warns when told so)
        srv = self.api.get_rpc_server(self.transport(), self.api.Target(topic=topic, server=server),
                                      [endpoint])
        self._servers.append(srv)
        srv.start()

    def client(self, topic: str, **kwargs: Any) -> Any:
        return self.api.get_rpc_client(self.transport(), self.api.Target(topic=topic),
                                       timeout=WAIT, **kwargs)

    def notifier(self, topic: str, driver: str = "messagingv2") -> Any:
        notify = om if self.is_oslo else msgbus.notify
        return notify.Notifier(self.transport(notifications=True), publisher_id=f"{self.name}.host",
                               driver=driver, topics=[topic])

    def listener(self, topic: str, endpoint: Any) -> None:
        get = om.get_notification_listener if self.is_oslo \
            else msgbus.notify.get_notification_listener
        listener = get(self.transport(notifications=True), [self.api.Target(topic=topic)],
                       [endpoint])
        self._servers.append(listener)
        listener.start()

    def expect_no_such_method(self, call: Any) -> None:
        """msgbus rebuilds NoSuchMethod; oslo.messaging (module not allowed) gives RemoteError."""
        if self.is_oslo:
            with pytest.raises(om.RemoteError) as info:
                call()
            assert info.value.exc_type == "NoSuchMethod"
        else:
            with pytest.raises(msgbus.NoSuchMethod):
                call()

    def close(self) -> None:
        for srv in self._servers:
            srv.stop()
        for srv in self._servers:
            srv.wait()
        for transport in self._transports:
            transport.cleanup()


SIDES = {
    "pika": lambda opts: Side("pika", msgbus, PIKA_URL, pika_conf, opts),
    "kombu": lambda opts: Side("kombu", msgbus, RABBIT_URL, kombu_conf, opts),
    "oslo": lambda opts: Side("oslo", om, RABBIT_URL, oslo_conf, opts),
}


@pytest.fixture
def make_side() -> Iterator[Any]:
    made: list[Side] = []

    def make(name: str, **options: Any) -> Side:
        side = SIDES[name](options)
        made.append(side)
        return side
    try:
        yield make
    finally:
        for side in reversed(made):
            side.close()


PAIRS = [("oslo", "pika"), ("pika", "oslo"), ("kombu", "pika"), ("pika", "kombu")]
PAIR_IDS = [f"{c}-client-to-{s}-server" for c, s in PAIRS]


@pytest.fixture(params=PAIRS, ids=PAIR_IDS)
def pair(request: pytest.FixtureRequest, make_side: Any) -> tuple[Side, Side]:
    """(client side, server side): pika on one end, kombu or oslo.messaging on the other."""
    client_name, server_name = request.param
    return make_side(client_name), make_side(server_name)


class TestRpc:
    """Calls and casts between pika and the other implementations, both directions."""

    def test_call_to_topic_and_context(self, pair: tuple[Side, Side]) -> None:
        clients, servers = pair
        topic = unique("rpc")
        servers.server(topic, Endpoint("s1"), "s1")
        client = clients.client(topic)
        value = {"a": [1, 2.5, None, "x"], "ü": "ñ"}
        assert client.call({}, "echo", value=value) == value
        ctxt = client.call({"user": "alice", "roles": ["admin"]}, "context")
        assert ctxt["user"] == "alice" and ctxt["roles"] == ["admin"]

    def test_call_to_one_server(self, pair: tuple[Side, Side]) -> None:
        clients, servers = pair
        topic = unique("rpc-server")
        servers.server(topic, Endpoint("s1"), "s1")
        servers.server(topic, Endpoint("s2"), "s2")
        client = clients.client(topic).prepare(server="s2")
        assert {client.call({}, "whoami") for _ in range(8)} == {"s2"}

    def test_cast_to_topic_and_fanout(self, pair: tuple[Side, Side]) -> None:
        clients, servers = pair
        topic = unique("rpc-cast")
        recorder = Recorder()
        for i in range(3):
            servers.server(topic, Endpoint(f"s{i}", recorder), f"s{i}")
        client = clients.client(topic)
        for i in range(6):
            client.cast({}, "note", value=i)
        client.prepare(fanout=True).cast({}, "note", value="all")
        events = recorder.wait_count(9)
        assert recorder.wait_for(lambda ev: sum(1 for _, v in ev if v == "all") == 3)
        values = collections.Counter(v for _, v in events)
        assert values == {**{i: 1 for i in range(6)}, "all": 3}, values
        assert {name for name, v in events if v == "all"} == {"s0", "s1", "s2"}

    def test_remote_errors(self, pair: tuple[Side, Side]) -> None:
        clients, servers = pair
        topic = unique("rpc-error")
        servers.server(topic, Endpoint("s1"), "s1")
        client = clients.client(topic)
        with pytest.raises(InteropError) as info:
            client.call({}, "fail_interop", message="broken on purpose")
        assert "broken on purpose" in str(info.value)
        assert type(info.value).__name__ == "InteropError_Remote"
        with pytest.raises(ValueError, match="builtin"):
            client.call({}, "fail", message="builtin")
        clients.expect_no_such_method(lambda: client.call({}, "no_such_method"))
        assert client.call({}, "echo", value="still serving") == "still serving"


class TestNotifications:
    """Notifications (v2 envelope, and oslo's v1 bare messages) between pika and the others."""

    def test_notifications_both_ways(self, pair: tuple[Side, Side]) -> None:
        senders, listeners = pair
        topic = unique("notify")
        recorder = Recorder()
        listeners.listener(topic, NotificationEndpoint(recorder))
        notifier = senders.notifier(topic)
        notifier.info({"user": "u"}, "compute.start", {"id": 1})
        notifier.error({}, "compute.fail", {"id": 2})
        events = recorder.wait_count(2)
        assert sorted(events) == [("error", "compute.fail", {"id": 2}),
                                  ("info", "compute.start", {"id": 1})]

    def test_oslo_v1_notifications_reach_pika(self, make_side: Any) -> None:
        topic = unique("notify-v1")
        recorder = Recorder()
        make_side("pika").listener(topic, NotificationEndpoint(recorder))
        make_side("oslo").notifier(topic, driver="messaging").info({}, "old.style", {"v": 1})
        assert recorder.wait_count(1) == [("info", "old.style", {"v": 1})]


class TestSharedTopic:
    """Servers of pika and of the other side on one topic: same declarations, shared work."""

    @pytest.mark.parametrize("options", [
        {},
        {"amqp_durable_queues": True},
        {"rabbit_quorum_queue": True},
    ], ids=["defaults", "durable", "quorum"])
    @pytest.mark.parametrize("peer", ["oslo", "kombu"])
    @pytest.mark.parametrize("pika_first", [True, False], ids=["pika-first", "peer-first"])
    def test_servers_share_a_topic(self, make_side: Any, closer: Closer, peer: str,
                                   options: dict[str, Any], pika_first: bool) -> None:
        topic = unique("shared")
        exchange = unique("exchange") if options else None
        if exchange:
            options = {**options, "control_exchange": exchange}
            closer.add(lambda: delete_entities([topic, f"{topic}.pika", f"{topic}.{peer}"],
                                               [exchange]))
        pika_side = make_side("pika", **options)
        other = make_side(peer, **options)
        first, second = (pika_side, other) if pika_first else (other, pika_side)
        first.server(topic, Endpoint(first.name), first.name)
        second.server(topic, Endpoint(second.name), second.name)
        for side in (pika_side, other):
            client = side.client(topic)
            names = collections.Counter(client.call({}, "whoami") for _ in range(30))
            assert set(names) == {"pika", peer}, names
        queue = rabbitmq.list_queues()[topic]
        if options.get("rabbit_quorum_queue"):
            assert queue["arguments"].get("x-queue-type") == "quorum"
            assert queue["durable"] is True
        else:  # (rabbitmqctl 3.10 shows no consumer count for quorum queues)
            assert queue["consumers"] == 2
            assert queue["durable"] is bool(options.get("amqp_durable_queues"))


class TestWireFacts:
    """What pika puts on the broker is what oslo.messaging puts there."""

    def test_private_queues_match_oslo(self, make_side: Any) -> None:
        topic = unique("queues")
        pika_side, oslo_side = make_side("pika"), make_side("oslo")
        pika_side.server(topic, Endpoint("p"), "p")
        oslo_side.server(topic, Endpoint("o"), "o")
        pika_client, oslo_client = pika_side.client(topic), oslo_side.client(topic)
        pika_client.call({}, "whoami")
        oslo_client.call({}, "whoami")
        queues = rabbitmq.list_queues()
        fanout = {q: queues[q] for q in queues if q.startswith(f"{topic}_fanout_")}
        assert len(fanout) == 2  # one per server connection, same flags and arguments
        replies = [queues[q] for q in queues if q.startswith("reply_")]
        shapes = {(q["durable"], q["auto_delete"], tuple(sorted(q["arguments"].items())))
                  for q in [*fanout.values(), *replies]}
        assert shapes == {(False, False, (("x-expires", 1800000),))}, shapes
        exchanges = rabbitmq.list_exchanges()
        assert exchanges[f"{topic}_fanout"]["type"] == "fanout"
        assert exchanges[f"{topic}_fanout"]["auto_delete"] is True
        assert exchanges["openstack"]["type"] == "topic"

    def test_message_properties(self, make_side: Any) -> None:
        """A call request from pika and from oslo.messaging, taken off the queue and answered by
        hand: same properties, same keys; both accept the hand-made reply."""
        topic = unique("props")
        conn = pika.BlockingConnection(pika.ConnectionParameters(
            HOST, PORT, credentials=pika.PlainCredentials("guest", "guest")))
        seen = {}
        try:
            channel = conn.channel()
            channel.exchange_declare("openstack", "topic")
            channel.queue_declare(topic)
            channel.queue_bind(topic, "openstack", topic)
            for name in ("pika", "oslo"):
                client = make_side(name).client(topic).prepare(timeout=20)
                with concurrent.futures.ThreadPoolExecutor(1) as pool:
                    result = pool.submit(client.call, {"k": "v"}, "echo", value=name)
                    deadline = time.monotonic() + 20
                    method = None
                    while method is None and time.monotonic() < deadline:
                        method, props, body = channel.basic_get(topic, auto_ack=True)
                        if method is None:
                            conn.sleep(0.05)
                    assert method is not None, f"no request from {name}"
                    inner = json.loads(json.loads(body)["oslo.message"])
                    seen[name] = (props, json.loads(body), inner)
                    reply = {"result": "by hand", "failure": None, "ending": True,
                             "_msg_id": inner["_msg_id"], "_unique_id": uuid.uuid4().hex}
                    # (kombu decodes JSON only with this content type: oslo needs it too)
                    channel.basic_publish("", inner["_reply_q"], json.dumps(
                        {"oslo.version": "2.0", "oslo.message": json.dumps(reply)}),
                        pika.BasicProperties(content_type="application/json",
                                             content_encoding="utf-8"))
                    assert result.result(20) == "by hand"
            channel.queue_delete(topic)
        finally:
            conn.close()
        for name, (props, body, inner) in seen.items():
            assert props.content_type == "application/json", name
            assert props.content_encoding == "utf-8", name
            assert props.delivery_mode == 2, name
            # oslo: the call timeout; msgbus: the time left to the call's deadline (< 20 s)
            assert 19000 <= int(props.expiration) <= 20000, (name, props.expiration)
            assert props.reply_to is None and props.correlation_id is None, name
            assert set(body) == {"oslo.version", "oslo.message"}
            assert inner["_reply_q"].startswith("reply_")
            assert inner["_context_k"] == "v"
            assert inner["args"] == {"value": name}
        assert sorted(seen["pika"][2]) == sorted(seen["oslo"][2])

    def test_url_options_reach_the_broker(self, closer: Closer) -> None:
        """Query options of the URL override the configuration: prefetch and queue expiry."""
        topic = unique("options")
        url = f"{PIKA_URL}?rabbit_qos_prefetch_count=7&rabbit_transient_queues_ttl=60"
        transport = closer.transport(url, conf=pika_conf(rabbit_qos_prefetch_count=3))
        closer.server(transport, topic, [Endpoint("s")], server="s")
        assert msgbus.get_rpc_client(transport, msgbus.Target(topic=topic),
                                     timeout=WAIT).call({}, "whoami") == "s"
        consumers = json.loads(rabbitmq.rabbitmqctl(
            "list_consumers", "--formatter", "json", "queue_name", "prefetch_count",
            "ack_required"))
        mine = {c["queue_name"]: c for c in consumers if c["queue_name"].startswith(topic)}
        assert set(mine) == {topic, f"{topic}.s", *[q for q in mine if "_fanout_" in q]}
        assert len(mine) == 3
        assert all(c["prefetch_count"] == 7 and c["ack_required"] for c in mine.values())
        queues = rabbitmq.list_queues()
        fanout = [q for q in queues if q.startswith(f"{topic}_fanout_")]
        assert queues[fanout[0]]["arguments"] == {"x-expires": 60000}
        reply = transport.reply_waiter().address
        assert queues[reply]["arguments"] == {"x-expires": 60000}
