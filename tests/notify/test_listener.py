"""Notification listeners: queues consumed, validation, ack/requeue decisions, bad input."""

from __future__ import annotations

import logging
import threading
import uuid
from typing import Any

import pytest

import msgbus
import msgbus.fake
from msgbus import envelope
from msgbus.driver.base import Capability
from msgbus.fake.driver import FakeDriver
from msgbus.notify import (NotificationResult, get_batch_notification_listener,
                           get_notification_listener)
from msgbus.transport import NotificationTransport, Transport


class InfoAndError:
    def __init__(self) -> None:
        self.calls: list[tuple[str, Any]] = []
        self.done = threading.Condition()

    def _record(self, priority: str, payload: Any) -> Any:
        with self.done:
            self.calls.append((priority, payload))
            self.done.notify_all()
        return payload.get("result") if isinstance(payload, dict) else None

    def info(self, ctxt: Any, publisher_id: str, event_type: str, payload: Any,
             metadata: dict) -> Any:
        return self._record("info", payload)

    def error(self, ctxt: Any, publisher_id: str, event_type: str, payload: Any,
              metadata: dict) -> Any:
        return self._record("error", payload)

    def wait(self, n: int) -> list[tuple[str, Any]]:
        with self.done:
            assert self.done.wait_for(lambda: len(self.calls) >= n, 10), self.calls
            return list(self.calls)


class Stub:
    """A delivery handed straight to a listener's callback, recording how it was settled."""

    def __init__(self, body: bytes) -> None:
        self.body = body
        self.settled = threading.Event()
        self.how: list[str] = []

    def ack(self) -> None:
        self.how.append("ack")
        self.settled.set()

    def requeue(self) -> None:
        self.how.append("requeue")
        self.settled.set()


def body(priority: str = "INFO", payload: Any = None, unique_id: str | None = None,
         **extra: Any) -> bytes:
    message = {"message_id": str(uuid.uuid4()), "publisher_id": "p", "event_type": "e",
               "priority": priority, "payload": payload,
               "timestamp": "2024-01-01 00:00:00.000000",
               "_unique_id": unique_id or uuid.uuid4().hex}
    message.update(extra)
    return envelope.encode(message)


def test_consumes_each_target_by_each_handled_priority(transport: Transport) -> None:
    listener = get_notification_listener(
        transport, [msgbus.Target(topic="a"), msgbus.Target(exchange="x", topic="b")],
        [InfoAndError()])
    assert [(t.exchange, t.topic) for t in listener.listen_targets()] == \
        [(None, "a.info"), (None, "a.error"), ("x", "b.info"), ("x", "b.error")]
    listener.start()
    broker = msgbus.fake.broker_for(transport)
    assert all(broker.has_queue(q) for q in ("a.info", "a.error", "b.info", "b.error"))
    assert not broker.has_queue("a.warn")
    listener.stop()
    listener.wait()


def test_a_pool_consumes_its_own_queue(transport: Transport) -> None:
    listener = get_notification_listener(transport, [msgbus.Target(topic="a")],
                                         [InfoAndError()], pool="workers")
    listener.start()
    broker = msgbus.fake.broker_for(transport)
    assert broker.has_queue("workers") and not broker.has_queue("a.info")
    listener.stop()
    listener.wait()


def test_invalid_arguments_are_clear_errors(transport: Transport) -> None:
    # targets are checked at start(), as oslo.messaging does
    with pytest.raises(msgbus.InvalidTarget, match="target"):
        get_notification_listener(transport, [], [InfoAndError()]).start()
    with pytest.raises(msgbus.InvalidTarget, match="topic"):
        get_notification_listener(transport, [msgbus.Target()], [InfoAndError()]).start()
    with pytest.raises(msgbus.MessagingServerError, match="priority"):
        get_notification_listener(transport, [msgbus.Target(topic="a")], [object()])
    with pytest.raises(ValueError, match="batch size"):
        get_batch_notification_listener(transport, [msgbus.Target(topic="a")],
                                        [InfoAndError()], batch_size=0)
    listener = get_batch_notification_listener(transport, [msgbus.Target(topic="a")],
                                               [InfoAndError()])
    assert listener.batch_size == 1 and listener.batch_timeout is None


@pytest.fixture
def started(transport: Transport) -> Any:
    listeners: list[Any] = []

    def make(endpoints: list[Any], **kwargs: Any) -> Any:
        listener = get_notification_listener(transport, [msgbus.Target(topic="unit")],
                                             endpoints, **kwargs)
        listener.start()
        listeners.append(listener)
        return listener

    yield make
    for listener in listeners:
        listener.stop()
        listener.wait()


def test_ack_comes_after_the_endpoint_ran(started: Any) -> None:
    entered, release = threading.Event(), threading.Event()

    class Blocking:
        def info(self, *args: Any) -> None:
            entered.set()
            release.wait(10)

    listener = started([Blocking()])
    stub = Stub(body())
    listener._on_incoming(stub)
    assert entered.wait(10)
    assert stub.how == []  # not settled while the endpoint runs
    release.set()
    assert stub.settled.wait(10)
    assert stub.how == ["ack"]


@pytest.mark.parametrize("allow_requeue, outcome, expected", [
    (True, "requeue", ["requeue"]), (True, "raise", ["requeue"]),
    (False, "requeue", ["ack"]), (False, "raise", ["ack"]), (True, "handled", ["ack"]),
    (True, None, ["ack"])])
def test_ack_or_requeue(started: Any, allow_requeue: bool, outcome: str | None,
                        expected: list[str]) -> None:
    class Endpoint:
        def info(self, *args: Any) -> Any:
            if outcome == "raise":
                raise RuntimeError("endpoint failed")
            return {"requeue": NotificationResult.REQUEUE,
                    "handled": NotificationResult.HANDLED}.get(outcome)

    listener = started([Endpoint()], allow_requeue=allow_requeue)
    stub = Stub(body())
    listener._on_incoming(stub)
    assert stub.settled.wait(10)
    assert stub.how == expected


def test_requeue_stops_at_the_first_endpoint_asking_for_it(started: Any) -> None:
    calls: list[str] = []

    class Asks:
        def info(self, *args: Any) -> str:
            calls.append("asks")
            return NotificationResult.REQUEUE

    class Later:
        def info(self, *args: Any) -> None:
            calls.append("later")

    listener = started([Asks(), Later()], allow_requeue=True)
    stub = Stub(body())
    listener._on_incoming(stub)
    assert stub.settled.wait(10)
    assert calls == ["asks"] and stub.how == ["requeue"]


def test_duplicates_are_acked_and_dropped_but_requeued_ones_come_back(started: Any) -> None:
    endpoint = InfoAndError()
    listener = started([endpoint], allow_requeue=True)
    uid = uuid.uuid4().hex
    first = Stub(body(payload={"result": NotificationResult.REQUEUE}, unique_id=uid))
    listener._on_incoming(first)
    assert first.settled.wait(10) and first.how == ["requeue"]
    redelivered = Stub(body(payload={"n": 2}, unique_id=uid))
    listener._on_incoming(redelivered)
    assert redelivered.settled.wait(10) and redelivered.how == ["ack"]
    duplicate = Stub(body(payload={"n": 3}, unique_id=uid))
    listener._on_incoming(duplicate)
    assert duplicate.how == ["ack"]  # settled at once, on the delivering thread
    assert [p for _, p in endpoint.wait(2)] == [{"result": "requeue"}, {"n": 2}]


@pytest.mark.parametrize("raw", [b"\xff\xfe", b"[]", b'"text"', b"{}",
                                 b'{"priority": 5, "event_type": "e"}',
                                 b'{"oslo.version": "1.0", "oslo.message": "{}"}',
                                 b'{"oslo.version": "2.0", "oslo.message": {"a": 1}}'])
def test_malformed_bodies_are_logged_acked_dropped(started: Any, raw: bytes,
                                                   caplog: pytest.LogCaptureFixture) -> None:
    endpoint = InfoAndError()
    listener = started([endpoint])
    stub = Stub(raw)
    with caplog.at_level(logging.ERROR):
        listener._on_incoming(stub)
    assert stub.how == ["ack"]
    assert "malformed" in caplog.text
    good = Stub(body(payload="after"))
    listener._on_incoming(good)
    assert endpoint.wait(1) == [("info", "after")]


def test_unknown_priority_is_dropped(started: Any, caplog: pytest.LogCaptureFixture) -> None:
    listener = started([InfoAndError()])
    stub = Stub(body(priority="BOGUS"))
    with caplog.at_level(logging.WARNING):
        listener._on_incoming(stub)
        assert stub.settled.wait(10)
    assert stub.how == ["ack"] and "bogus" in caplog.text


def test_deserialization_failure_is_dropped(started: Any,
                                            caplog: pytest.LogCaptureFixture) -> None:
    class Strict(msgbus.NoOpSerializer):
        def deserialize_entity(self, ctxt: Any, entity: Any) -> Any:
            raise ValueError("cannot rebuild")

    endpoint = InfoAndError()
    listener = started([endpoint], serializer=Strict(), allow_requeue=True)
    stub = Stub(body())
    with caplog.at_level(logging.ERROR):
        listener._on_incoming(stub)
        assert stub.settled.wait(10)
    assert stub.how == ["ack"] and endpoint.calls == []
    assert "cannot be deserialized" in caplog.text


class NoRequeueFake(FakeDriver):
    capabilities = frozenset({Capability.STORE_AND_FORWARD})


def test_driver_without_requeue_acks_and_says_so(caplog: pytest.LogCaptureFixture) -> None:
    from msgbus import options
    from msgbus.transport_url import TransportURL
    conf = options.new_conf()
    driver = NoRequeueFake(conf, TransportURL.parse(conf, "fake://norequeue/"), "openstack")
    transport = NotificationTransport(driver, conf)
    try:
        class Asks:
            def info(self, *args: Any) -> str:
                return NotificationResult.REQUEUE

        with caplog.at_level(logging.WARNING):
            listener = get_notification_listener(transport, [msgbus.Target(topic="t")],
                                                 [Asks()], allow_requeue=True)
        assert "cannot requeue" in caplog.text
        listener.start()
        stub = Stub(body())
        with caplog.at_level(logging.ERROR):
            listener._on_incoming(stub)
            assert stub.settled.wait(10)
        assert stub.how == ["ack"] and "acknowledged and lost" in caplog.text
        listener.stop()
        listener.wait()
    finally:
        transport.cleanup()
        msgbus.fake.reset()


def test_messages_wait_on_the_broker_while_stopped(transport: Transport) -> None:
    endpoint = InfoAndError()
    listener = get_notification_listener(transport, [msgbus.Target(topic="held")], [endpoint])
    listener.start()
    listener.stop()
    listener.wait()
    from msgbus.notify import Notifier
    Notifier(transport, "p", driver="messagingv2", topics=["held"]).info({}, "e", "kept")
    assert msgbus.fake.broker_for(transport).queue_depth("held.info") == 1
    listener.start()
    assert endpoint.wait(1) == [("info", "kept")]
    listener.stop()
    listener.wait()


def test_batch_listener_settles_each_message(transport: Transport) -> None:
    class Batch:
        def info(self, messages: list[dict]) -> str | None:
            return NotificationResult.REQUEUE if any(m["payload"] == "bad" for m in messages) \
                else None

        def error(self, messages: list[dict]) -> None:
            return None

    listener = get_batch_notification_listener(
        transport, [msgbus.Target(topic="b")], [Batch()], allow_requeue=True, batch_size=4,
        batch_timeout=30)
    listener.start()
    try:
        stubs = [Stub(body("INFO", "ok")), Stub(body("INFO", "bad")), Stub(body("ERROR", "x")),
                 Stub(body("ERROR", "y"))]
        for stub in stubs:
            listener._on_incoming(stub)
        for stub in stubs:
            assert stub.settled.wait(10)
        # the info group asked for a requeue: both its messages go back; the errors are acked
        assert [s.how for s in stubs] == [["requeue"], ["requeue"], ["ack"], ["ack"]]
    finally:
        listener.stop()
        listener.wait()
