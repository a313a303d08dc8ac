"""Notification interop with oslo.messaging (from PyPI) on the real RabbitMQ (rabbit://, kombu).

oslo's Notifier -> msgbus listener and msgbus Notifier -> oslo listener, with the 2.0 envelope
(``messagingv2``) and bare 1.0 bodies (``messaging``); pools shared by both libraries; queues
declared by one side's publisher and consumed by the other's listener (store-and-forward), also
with durable queues on both sides; oslo batch listeners. A missing broker fails (no skip).
"""

from __future__ import annotations

import threading
import uuid
from typing import Any, Callable, Iterator

import kombu
import oslo_messaging as om
import pytest
from oslo_config import cfg
from oslo_context import context as oslo_context

import msgbus
from msgbus import options as core_options
from msgbus.notify import Notifier, get_notification_listener, get_notification_transport
from msgbus.notify.message import PRIORITIES
from msgbus.testing import rabbitmq
from msgbus.testing.fixtures import Recorder

pytestmark = pytest.mark.timeout(120)

HOST, PORT = "127.0.0.1", 5672
RABBIT_URL = f"rabbit://guest:guest@{HOST}:{PORT}/"
PREFIX = "msgbus-notify-interop-"
WAIT = 30.0
TIMESTAMP_RE = r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{6}$"


@pytest.fixture(scope="module", autouse=True)
def broker() -> Iterator[None]:
    """RabbitMQ must answer (else every test fails); this module's queues go afterwards."""
    rabbitmq.wait_for_broker(HOST, PORT, timeout=15)
    yield
    leftovers = [name for name, info in rabbitmq.list_queues().items()
                 if name.startswith(PREFIX) and not info.get("consumers")]
    with kombu.Connection(f"amqp://guest:guest@{HOST}:{PORT}//") as conn:
        channel = conn.default_channel
        for name in leftovers:
            channel.queue_delete(name)
        channel.exchange_delete(DURABLE_EXCHANGE)  # no error when it does not exist


def unique(name: str) -> str:
    return f"{PREFIX}{name}-{uuid.uuid4().hex[:10]}"


#: Durable queues need a durable exchange: the durable tests use their own control exchange
#: (the shared broker's ``openstack`` exchange exists already, not durable).
DURABLE_EXCHANGE = f"{PREFIX}durable"


def oslo_conf(durable: bool = False) -> cfg.ConfigOpts:
    conf = cfg.ConfigOpts()
    conf([], project="interop", default_config_files=[], default_config_dirs=[])
    if durable:
        # oslo registers its rabbit options when it makes a driver (connections are lazy):
        # a throwaway transport registers them so that they can be set before the real one.
        om.get_notification_transport(conf, url=RABBIT_URL).cleanup()
        conf.set_override("amqp_durable_queues", True, group="oslo_messaging_rabbit")
        conf.set_override("control_exchange", DURABLE_EXCHANGE)
    return conf


def msgbus_conf(durable: bool = False) -> cfg.ConfigOpts:
    conf = core_options.new_conf()
    if durable:
        from msgbus_kombu.options import GROUP, register_opts
        register_opts(conf)
        conf.set_override("amqp_durable_queues", True, group=GROUP)
        conf.set_override("control_exchange", DURABLE_EXCHANGE)
    return conf


class Side:
    """Transports and listeners of both libraries for one test, torn down after it."""

    def __init__(self) -> None:
        self._cleanups: list[Callable[[], None]] = []

    def oslo_transport(self, durable: bool = False) -> Any:
        transport = om.get_notification_transport(oslo_conf(durable), url=RABBIT_URL)
        self._cleanups.append(transport.cleanup)
        return transport

    def msgbus_transport(self, durable: bool = False) -> msgbus.Transport:
        transport = get_notification_transport(msgbus_conf(durable), url=RABBIT_URL)
        self._cleanups.append(transport.cleanup)
        return transport

    def oslo_listener(self, topic: str, endpoints: list[Any], batch: bool = False,
                      durable: bool = False, **kwargs: Any) -> Any:
        factory = om.get_batch_notification_listener if batch else om.get_notification_listener
        listener = factory(self.oslo_transport(durable), [om.Target(topic=topic)], endpoints,
                           executor="threading", **kwargs)
        listener.start()
        self._cleanups.append(lambda: (listener.stop(), listener.wait()))
        return listener

    def msgbus_listener(self, topic: str, endpoints: list[Any], durable: bool = False,
                        **kwargs: Any) -> Any:
        listener = get_notification_listener(self.msgbus_transport(durable),
                                             [msgbus.Target(topic=topic)], endpoints, **kwargs)
        listener.start()
        self._cleanups.append(lambda: (listener.stop(), listener.wait()))
        return listener

    def close(self) -> None:
        for cleanup in reversed(self._cleanups):
            cleanup()


@pytest.fixture
def side() -> Iterator[Side]:
    s = Side()
    try:
        yield s
    finally:
        s.close()


class Endpoint:
    """Records (name, priority, ctxt dict, publisher_id, event_type, payload, metadata)."""

    def __init__(self, recorder: Recorder, name: str = "e",
                 priorities: tuple[str, ...] = PRIORITIES) -> None:
        self.recorder = recorder
        self.name = name
        for priority in priorities:
            setattr(self, priority, self._handler(priority))

    def _handler(self, priority: str) -> Callable[..., None]:
        def handle(ctxt: Any, publisher_id: str, event_type: str, payload: Any,
                   metadata: dict) -> None:
            as_dict = ctxt.to_dict() if hasattr(ctxt, "to_dict") else dict(ctxt or {})
            self.recorder.add({"name": self.name, "priority": priority, "ctxt": as_dict,
                               "publisher_id": publisher_id, "event_type": event_type,
                               "payload": payload, "metadata": metadata})
        return handle


def by_payload(events: list[dict]) -> list[Any]:
    return sorted((e["payload"] for e in events), key=str)


@pytest.mark.parametrize("driver", ["messagingv2", "messaging"])
def test_oslo_notifier_to_msgbus_listener(side: Side, msgbus_recorder: Recorder,
                                         driver: str) -> None:
    topic = unique("o2m")
    side.msgbus_listener(topic, [Endpoint(msgbus_recorder)])
    notifier = om.Notifier(side.oslo_transport(), publisher_id="oslo.host1", driver=driver,
                           topics=[topic])
    ctxt = oslo_context.RequestContext(user_id="u1", project_id="p1", request_id="req-1")
    for priority in PRIORITIES:
        method = "warn" if priority == "warn" else priority
        getattr(notifier, method)(ctxt, f"oslo.{priority}", {"priority": priority, "n": [1]})
    events = msgbus_recorder.wait_count(len(PRIORITIES))
    assert sorted(e["priority"] for e in events) == sorted(PRIORITIES)
    for event in events:
        assert event["publisher_id"] == "oslo.host1"
        assert event["event_type"] == f"oslo.{event['priority']}"
        assert event["payload"] == {"priority": event["priority"], "n": [1]}
        assert event["ctxt"]["user"] == "u1" and event["ctxt"]["project_id"] == "p1"
        assert event["ctxt"]["request_id"] == "req-1"
        assert str(uuid.UUID(event["metadata"]["message_id"]))
        assert event["metadata"]["timestamp"][:4].isdigit()


@pytest.mark.parametrize("driver", ["messagingv2", "messaging"])
def test_msgbus_notifier_to_oslo_listener(side: Side, msgbus_recorder: Recorder,
                                         driver: str) -> None:
    import re
    topic = unique("m2o")
    side.oslo_listener(topic, [Endpoint(msgbus_recorder)])
    notifier = Notifier(side.msgbus_transport(), publisher_id="msgbus.host1", driver=driver,
                        topics=[topic])
    ctxt = oslo_context.RequestContext(user_id="u2", project_id="t2", auth_token="tok-SECRET")
    for priority in PRIORITIES:
        getattr(notifier, priority)(ctxt, f"msgbus.{priority}", {"priority": priority})
    events = msgbus_recorder.wait_count(len(PRIORITIES))
    assert sorted(e["priority"] for e in events) == sorted(PRIORITIES)
    for event in events:
        assert event["publisher_id"] == "msgbus.host1"
        assert event["event_type"] == f"msgbus.{event['priority']}"
        assert event["payload"] == {"priority": event["priority"]}
        assert event["ctxt"].get("user_id", event["ctxt"].get("user")) == "u2"
        assert "tok-SECRET" not in repr(event["ctxt"])  # redacted as oslo.messaging does
        assert str(uuid.UUID(event["metadata"]["message_id"]))
        assert re.match(TIMESTAMP_RE, event["metadata"]["timestamp"])


def test_pools_are_shared_between_the_libraries(side: Side, msgbus_recorder: Recorder) -> None:
    topic, shared_pool, own_pool = unique("pools"), unique("pool-shared"), unique("pool-own")
    side.oslo_listener(topic, [Endpoint(msgbus_recorder, "oslo-shared", ("info",))],
                       pool=shared_pool)
    side.msgbus_listener(topic, [Endpoint(msgbus_recorder, "msgbus-shared", ("info",))],
                         pool=shared_pool)
    side.msgbus_listener(topic, [Endpoint(msgbus_recorder, "msgbus-own", ("info",))], pool=own_pool)
    side.oslo_listener(topic, [Endpoint(msgbus_recorder, "oslo-plain", ("info",))])
    oslo_notifier = om.Notifier(side.oslo_transport(), "oslo", driver="messagingv2",
                                topics=[topic])
    msgbus_notifier = Notifier(side.msgbus_transport(), "msgbus", driver="messagingv2",
                               topics=[topic])
    count = 30
    for i in range(count):
        (oslo_notifier if i % 2 else msgbus_notifier).info({}, "pooled", i)

    def got(events: list[dict], *names: str) -> list[int]:
        return sorted(e["payload"] for e in events if e["name"] in names)

    groups = (("oslo-shared", "msgbus-shared"), ("msgbus-own",), ("oslo-plain",))
    assert msgbus_recorder.wait_for(lambda ev: all(len(got(ev, *g)) >= count for g in groups)), \
        {g: len(got(msgbus_recorder.events, *g)) for g in groups}
    events = list(msgbus_recorder.events)
    for group in groups:
        assert got(events, *group) == list(range(count)), group
    assert got(events, "oslo-shared") and got(events, "msgbus-shared"), \
        "both libraries' listeners of the shared pool should have had a share"


@pytest.mark.parametrize("durable", [False, True], ids=["transient", "durable"])
def test_oslo_declared_queues_are_read_by_msgbus(side: Side, msgbus_recorder: Recorder,
                                                 durable: bool) -> None:
    topic = unique("o-first")
    notifier = om.Notifier(side.oslo_transport(durable), "oslo", driver="messagingv2",
                           topics=[topic])
    notifier.info({}, "early", 1)
    notifier.error({}, "early", 2)
    queues = rabbitmq.list_queues()
    assert f"{topic}.info" in queues and f"{topic}.error" in queues
    assert bool(queues[f"{topic}.info"].get("durable")) is durable
    side.msgbus_listener(topic, [Endpoint(msgbus_recorder, priorities=("info", "error"))],
                         durable=durable)
    assert by_payload(msgbus_recorder.wait_count(2)) == [1, 2]


@pytest.mark.parametrize("durable", [False, True], ids=["transient", "durable"])
def test_msgbus_declared_queues_are_read_by_oslo(side: Side, msgbus_recorder: Recorder,
                                                 durable: bool) -> None:
    topic = unique("m-first")
    notifier = Notifier(side.msgbus_transport(durable), "msgbus", driver="messagingv2",
                        topics=[topic])
    notifier.info({}, "early", 1)
    notifier.warn({}, "early", 2)
    queues = rabbitmq.list_queues()
    assert f"{topic}.info" in queues and f"{topic}.warn" in queues
    assert bool(queues[f"{topic}.info"].get("durable")) is durable
    side.oslo_listener(topic, [Endpoint(msgbus_recorder, priorities=("info", "warn"))],
                       durable=durable)
    assert by_payload(msgbus_recorder.wait_count(2)) == [1, 2]


def test_msgbus_notifications_to_an_oslo_batch_listener(side: Side) -> None:
    topic = unique("batch")
    batches: list[list[dict]] = []
    cond = threading.Condition()

    class Batch:
        def info(self, messages: list[dict]) -> None:
            with cond:
                batches.append(messages)
                cond.notify_all()

    side.oslo_listener(topic, [Batch()], batch=True, batch_size=5, batch_timeout=2)
    notifier = Notifier(side.msgbus_transport(), "msgbus", driver="messagingv2", topics=[topic])
    for i in range(10):
        notifier.info({"user_id": "u"}, "batched", i)
    with cond:
        assert cond.wait_for(lambda: sum(len(b) for b in batches) >= 10, WAIT)
    messages = [m for b in batches for m in b]
    assert sorted(m["payload"] for m in messages) == list(range(10))
    assert {m["publisher_id"] for m in messages} == {"msgbus"}
    assert {m["event_type"] for m in messages} == {"batched"}


def test_msgbus_requeue_gives_oslo_notifications_back(side: Side,
                                                      msgbus_recorder: Recorder) -> None:
    topic = unique("requeue")
    attempts: list[int] = []

    class Once:
        def info(self, ctxt: Any, publisher_id: str, event_type: str, payload: Any,
                 metadata: dict) -> Any:
            attempts.append(payload)
            msgbus_recorder.add(payload)
            return msgbus.notify.NotificationResult.REQUEUE if len(attempts) == 1 else None

    side.msgbus_listener(topic, [Once()], allow_requeue=True)
    om.Notifier(side.oslo_transport(), "oslo", driver="messagingv2",
                topics=[topic]).info({}, "again", "x")
    assert msgbus_recorder.wait_count(2) == ["x", "x"]
