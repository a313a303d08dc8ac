"""The Notifier: message format on the wire, drivers, options, and never raising."""

from __future__ import annotations

import json
import logging
import re
import threading
import uuid
from typing import Any

import pytest

import msgbus
import msgbus.fake
from msgbus import options as core_options
from msgbus.notify import Notifier, NotifierDriverLoadFailure, get_notification_transport
from msgbus.transport import normalize_retry
from msgbus.notify.drivers.test import TestDriver
from msgbus.notify.message import TIMESTAMP_FORMAT, utc_timestamp
from msgbus.transport import NotificationTransport, Transport


class Ctx:
    """A request context as oslo.context's: ``to_dict()`` and ``redacted_copy()`` (no token)."""

    def __init__(self, **values: Any) -> None:
        self.values = values

    def redacted_copy(self) -> "Ctx":
        return Ctx(**{k: v for k, v in self.values.items() if k != "auth_token"})

    def to_dict(self) -> dict:
        return dict(self.values)


def raw_bodies(transport: Transport, queue: str, count: int) -> list[bytes]:
    """The first ``count`` bodies on a fake broker queue, read raw (no listener involved)."""
    broker = msgbus.fake.broker_for(transport)
    bodies: list[bytes] = []
    done = threading.Event()

    def take(message: Any) -> None:
        bodies.append(message.body)
        message.ack()
        if len(bodies) >= count:
            done.set()

    broker.declare_queue(queue)
    consumer = broker.consume(queue, take)
    try:
        assert done.wait(10), f"only {len(bodies)} of {count} bodies on {queue}"
    finally:
        broker.cancel([consumer])
    return bodies


def test_v2_body_is_the_oslo_envelope(transport: Transport) -> None:
    Notifier(transport, "compute.host1", driver="messagingv2", topics=["notes"]).info(
        Ctx(user_id="u1", request_id="req-1"), "compute.instance.create", {"id": 7})
    [body] = raw_bodies(transport, "notes.info", 1)
    outer = json.loads(body)
    assert set(outer) == {"oslo.version", "oslo.message"}
    assert outer["oslo.version"] == "2.0"
    assert isinstance(outer["oslo.message"], str)
    inner = json.loads(outer["oslo.message"])
    assert set(inner) == {"message_id", "publisher_id", "event_type", "priority", "payload",
                          "timestamp", "_unique_id", "_context_user_id", "_context_request_id"}
    assert inner["publisher_id"] == "compute.host1"
    assert inner["event_type"] == "compute.instance.create"
    assert inner["priority"] == "INFO"
    assert inner["payload"] == {"id": 7}
    assert str(uuid.UUID(inner["message_id"])) == inner["message_id"]
    assert re.fullmatch(r"[0-9a-f]{32}", inner["_unique_id"])
    assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{6}", inner["timestamp"])
    assert inner["_context_user_id"] == "u1" and inner["_context_request_id"] == "req-1"


def test_v1_body_is_the_bare_dict(transport: Transport) -> None:
    Notifier(transport, "p", driver="messaging", topics=["notes"]).warn({}, "e", [1])
    [body] = raw_bodies(transport, "notes.warn", 1)
    inner = json.loads(body)
    assert "oslo.version" not in inner
    assert inner["priority"] == "WARN" and inner["payload"] == [1]


def test_each_topic_gets_its_own_unique_id(transport: Transport) -> None:
    Notifier(transport, "p", driver="messagingv2", topics=["a", "b"]).error({}, "e", None)
    [a] = raw_bodies(transport, "a.error", 1)
    [b] = raw_bodies(transport, "b.error", 1)
    inner_a = json.loads(json.loads(a)["oslo.message"])
    inner_b = json.loads(json.loads(b)["oslo.message"])
    assert inner_a["message_id"] == inner_b["message_id"]
    assert inner_a["_unique_id"] != inner_b["_unique_id"]


@pytest.mark.parametrize("method, priority", [
    ("audit", "AUDIT"), ("debug", "DEBUG"), ("info", "INFO"), ("warn", "WARN"),
    ("warning", "WARN"), ("error", "ERROR"), ("critical", "CRITICAL"), ("sample", "SAMPLE")])
def test_priority_of_each_method(transport: Transport, method: str, priority: str) -> None:
    notifier = Notifier(transport, "p", driver="test")
    getattr(notifier, method)({}, "e", {})
    [sent] = notifier.drivers["test"].notifications
    assert sent.priority == priority and sent.message["priority"] == priority


def test_timestamp_is_utc_with_microseconds() -> None:
    import datetime
    when = datetime.datetime(2024, 5, 1, 12, 0, 0, tzinfo=datetime.timezone(
        datetime.timedelta(hours=2)))
    assert utc_timestamp(when) == "2024-05-01 10:00:00.000000"
    now = datetime.datetime.now(datetime.timezone.utc).replace(tzinfo=None)
    parsed = datetime.datetime.strptime(utc_timestamp(), TIMESTAMP_FORMAT)
    assert abs((parsed - now).total_seconds()) < 60


def test_defaults_come_from_the_option_group() -> None:
    conf = core_options.new_conf()
    transport = get_notification_transport(conf, url="fake://")
    try:
        conf.set_override("driver", ["test", "noop"], group="msgbus_notifications")
        conf.set_override("topics", ["t1", "t2"], group="msgbus_notifications")
        conf.set_override("retry", 3, group="msgbus_notifications")
        notifier = Notifier(transport, "p")
        assert list(notifier.drivers) == ["test", "noop"]
        assert notifier.topics == ["t1", "t2"] and notifier.retry == 3
        assert notifier.drivers["test"].topics == ["t1", "t2"]
        notifier.info({}, "e", 1)
        assert notifier.drivers["test"].notifications[0].retry == 3
    finally:
        transport.cleanup()


def test_prepare_shares_drivers_and_overrides(transport: Transport) -> None:
    base = Notifier(transport, "base", driver="test", retry=5)
    sub = base.prepare(publisher_id="sub")
    sub.info({}, "e", 1)
    base.prepare(retry=0).info({}, "e", 2)
    base.info({}, "e", 3)
    sent = base.drivers["test"].notifications
    assert [(n.message["publisher_id"], n.retry) for n in sent] == \
        [("sub", 5), ("base", 0), ("base", 5)]
    assert sub.drivers is base.drivers
    assert sub.prepare().publisher_id == "sub"


def test_is_enabled(transport: Transport) -> None:
    assert Notifier(transport, driver="messagingv2").is_enabled()
    assert Notifier(transport, driver=["log", "noop"]).is_enabled()
    assert not Notifier(transport, driver="noop").is_enabled()
    assert not Notifier(transport, driver=[]).is_enabled()


def test_no_driver_drops_silently(transport: Transport) -> None:
    notifier = Notifier(transport, "p")
    notifier.info({}, "e", object())  # not even serialized: nothing to send it with
    assert not notifier.is_enabled()


def test_unknown_driver_is_a_clear_error(transport: Transport) -> None:
    with pytest.raises(NotifierDriverLoadFailure, match="did you mean 'messagingv2'"):
        Notifier(transport, driver="messagingv3")


def test_serialization_failure_is_logged_not_raised(transport: Transport,
                                                    caplog: pytest.LogCaptureFixture) -> None:
    notifier = Notifier(transport, "p", driver="messagingv2", topics=["t"])
    with caplog.at_level(logging.ERROR):
        notifier.info({}, "bad.payload", {"x": object()})
    assert "cannot be encoded" in caplog.text or "serializ" in caplog.text
    assert "bad.payload" in caplog.text


def test_driver_failure_is_logged_not_raised(transport: Transport,
                                             caplog: pytest.LogCaptureFixture) -> None:
    class Exploding(msgbus.NoOpSerializer):
        def serialize_entity(self, ctxt: Any, entity: Any) -> Any:
            raise RuntimeError("serializer broke")

    with caplog.at_level(logging.ERROR):
        Notifier(transport, "p", driver="test", serializer=Exploding()).info({}, "e", 1)
    assert "serializer broke" in caplog.text

    notifier = Notifier(transport, "p", driver=["messagingv2", "test"], topics=["t"])
    transport.driver.send_notification = _raise  # the broker is gone, say
    with caplog.at_level(logging.ERROR):
        notifier.critical({}, "e.sent.anyway", 1)
    assert "broker unreachable" in caplog.text
    assert len(notifier.drivers["test"].notifications) == 1  # other drivers still ran


def _raise(*args: Any, **kwargs: Any) -> None:
    raise msgbus.MessageDeliveryFailure("broker unreachable")


def test_retry_is_normalized_for_the_driver_interface() -> None:
    assert normalize_retry(None) is None
    assert normalize_retry(-1) is None
    assert normalize_retry(0) == 0
    assert normalize_retry(4) == 4


def test_retry_reaches_the_transport(transport: Transport) -> None:
    seen: list[Any] = []
    original = transport.driver.send_notification

    def spy(target: msgbus.Target, body: bytes, *, retry: int | None = None,
            **kwargs: Any) -> None:
        seen.append((target.topic, retry))
        original(target, body, retry=retry)

    transport.driver.send_notification = spy
    Notifier(transport, "p", driver="messagingv2", topics=["t"]).info({}, "e", 1)
    Notifier(transport, "p", driver="messagingv2", topics=["t"], retry=2).debug({}, "e", 1)
    assert seen == [("t.info", None), ("t.debug", 2)]


def test_context_is_redacted_as_oslo_messaging_does(transport: Transport,
                                                   caplog: pytest.LogCaptureFixture) -> None:
    """Only what ``redacted_copy()`` returns is sent; a plain dict or None sends {}; a context
    that cannot be redacted sends {} with a warning (once per class)."""
    class NoRedaction(dict):
        pass

    notifier = Notifier(transport, "p", driver="test")
    notifier.info(Ctx(user="bob", auth_token="secret"), "e", 1)
    notifier.info({"user": "alice", "auth_token": "secret"}, "e", 2)
    notifier.info(None, "e", 3)
    with caplog.at_level(logging.WARNING, logger="msgbus.notify.notifier"):
        notifier.info(NoRedaction(user="carol", auth_token="secret"), "e", 4)
        notifier.info(NoRedaction(user="carol", auth_token="secret"), "e", 5)
    assert [n.ctxt for n in notifier.drivers["test"].notifications] == \
        [{"user": "bob"}, {}, {}, {}, {}]
    warnings = [r.getMessage() for r in caplog.records if r.name == "msgbus.notify.notifier"]
    assert len(warnings) == 1 and "NoRedaction" in warnings[0] and "redacted_copy" in warnings[0]


def test_an_auth_token_never_reaches_a_listener(transport: Transport) -> None:
    """Through the broker to a listener, with every kind of context: no token on the wire."""
    from oslo_context import context as oslo_context

    from msgbus.notify import get_notification_listener
    received: list[Any] = []
    done = threading.Event()

    class Endpoint:
        def info(self, ctxt: Any, publisher_id: str, event_type: str, payload: Any,
                 metadata: dict) -> None:
            received.append(ctxt)
            if len(received) == 4:
                done.set()

    listener = get_notification_listener(transport, [msgbus.Target(topic="tokens")],
                                         [Endpoint()])
    listener.start()
    try:
        notifier = Notifier(transport, "p", driver="messagingv2", topics=["tokens"])
        for ctxt in ({"user": "u", "auth_token": "tok-1"}, Ctx(user="u", auth_token="tok-2"),
                     oslo_context.RequestContext(user_id="u", auth_token="tok-3"),
                     oslo_context.RequestContext(user_id="u", auth_token="tok-4").to_dict()):
            notifier.info(ctxt, "e", 1)
        assert done.wait(10)
    finally:
        listener.stop()
        listener.wait()
    assert "tok-" not in json.dumps(received)
    assert received[1] == {"user": "u"} and received[2]["user"] == "u"


def test_contexts_reach_drivers_as_they_reach_oslo_messaging_s() -> None:
    """The same contexts through oslo.messaging's Notifier and its test driver."""
    import oslo_messaging
    from oslo_config import cfg
    from oslo_context import context as oslo_context

    conf = cfg.ConfigOpts()
    oslo_transport = oslo_messaging.get_notification_transport(conf, url="fake:/")
    oslo_notifier = oslo_messaging.Notifier(oslo_transport, "p", driver="test")
    from oslo_messaging.notify import _impl_test
    contexts = [{"user": "u", "auth_token": "t"}, None, Ctx(user="u", auth_token="t"),
                oslo_context.RequestContext(user_id="u1", auth_token="t0k3n", request_id="r")]
    msgbus.fake.reset()
    transport = get_notification_transport(url="fake:/")
    try:
        ours = Notifier(transport, "p", driver="test")
        for ctxt in contexts:
            _impl_test.reset()
            oslo_notifier.info(ctxt, "e", 1)
            [(oslo_ctxt, *_)] = _impl_test.NOTIFICATIONS
            ours.drivers["test"].reset()
            ours.info(ctxt, "e", 1)
            sent = ours.drivers["test"].notifications[0].ctxt
            as_dict = oslo_ctxt.to_dict() if hasattr(oslo_ctxt, "to_dict") else oslo_ctxt
            assert sent == as_dict
            assert "t0k3n" not in json.dumps(sent) and not sent.get("auth_token")
    finally:
        transport.cleanup()
        oslo_transport.cleanup()
        msgbus.fake.reset()


def test_notification_transport_url_falls_back_to_rpc_url() -> None:
    conf = core_options.new_conf()
    conf.set_override("transport_url", "fake://rpc-host/")
    t1 = get_notification_transport(conf)
    assert isinstance(t1, NotificationTransport)
    assert t1.url.hosts[0].hostname == "rpc-host"
    conf.set_override("transport_url", "fake://notify-host/", group="msgbus_notifications")
    t2 = get_notification_transport(conf)
    assert t2.url.hosts[0].hostname == "notify-host"
    t3 = get_notification_transport(conf, url="fake://explicit/")
    assert t3.url.hosts[0].hostname == "explicit"
    for t in (t1, t2, t3):
        t.cleanup()
    msgbus.fake.reset()


def test_no_url_at_all_is_a_clear_error() -> None:
    with pytest.raises(msgbus.InvalidTransportURL, match="no transport URL"):
        get_notification_transport()


def test_rpc_transport_works_with_a_warning(caplog: pytest.LogCaptureFixture) -> None:
    transport = msgbus.get_rpc_transport(url="fake://")
    try:
        with caplog.at_level(logging.WARNING):
            notifier = Notifier(transport, "p", driver="test")
        assert "RPC transport" in caplog.text
        notifier.info({}, "e", 1)
        assert len(notifier.drivers["test"].notifications) == 1
    finally:
        transport.cleanup()
        msgbus.fake.reset()


def test_test_driver_records_and_resets(transport: Transport) -> None:
    notifier = Notifier(transport, "p", driver="test")
    driver = notifier.drivers["test"]
    assert isinstance(driver, TestDriver)
    notifier.info(Ctx(a=1), "first", {"n": 1})
    notifier.error({}, "second", None)
    assert driver.event_types() == ["first", "second"]
    first = driver.notifications[0]
    assert first.ctxt == {"a": 1} and first.priority == "INFO"
    assert first.message["payload"] == {"n": 1}
    driver.reset()
    assert driver.notifications == []
