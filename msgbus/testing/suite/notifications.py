"""Notification scenarios every driver must pass: priorities, v1 and v2 bodies, filters, pools,
batches (size and timeout), requeue, store-and-forward, volume, malformed input, lifecycle.

Scenarios that need a driver capability (requeue, store-and-forward) are marked xfail with the
missing capability named when the driver does not declare it.

(Over 400 lines on purpose: it is the notification contract a driver author reads, one scenario
group per class, with the small helpers they share.)
"""

from __future__ import annotations

import re
import threading
import time
import uuid
from typing import Any, Iterator, Sequence

import pytest

import msgbus
from msgbus import envelope
from msgbus import options as msgbus_options
from msgbus.driver.base import Capability
from msgbus.notify import (NotificationFilter, NotificationResult, Notifier,
                           get_batch_notification_listener, get_notification_listener,
                           get_notification_transport)
from msgbus.notify.listener import NotificationServerBase
from msgbus.notify.message import PRIORITIES
from msgbus.testing.fixtures import WAIT, Bus, Recorder, require
from msgbus.transport import Transport

__all__ = ["TestNotificationDelivery", "TestNotificationFilters", "TestNotificationPools",
           "TestNotificationBatches", "TestNotificationRequeue",
           "TestNotificationStoreAndForward", "TestNotificationVolume",
           "TestNotificationLifecycle"]

TIMESTAMP = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{6}$")


class Context:
    """A request context as oslo.context's: a notification carries only what
    ``redacted_copy()`` returns, so its ``auth_token`` never reaches a listener (a plain dict
    context carries nothing, as in oslo.messaging)."""

    def __init__(self, auth_token: str = "secret-token", **values: Any) -> None:
        self.auth_token = auth_token
        self.values = values

    def redacted_copy(self) -> dict[str, Any]:
        return dict(self.values)


class NotifyBus:
    """Notification transports, notifiers and listeners for one test, torn down after it."""

    def __init__(self, bus: Bus) -> None:
        self.bus = bus
        self._listeners: list[NotificationServerBase] = []
        self._transports: list[Transport] = []
        self._lock = threading.Lock()

    def transport(self, workers: int | None = None) -> Transport:
        """A new notification transport on the suite's URL (``workers``: executor threads)."""
        conf = None
        if workers is not None:
            conf = msgbus_options.new_conf()
            conf.set_override("executor_thread_pool_size", workers)
        transport = get_notification_transport(conf, url=self.bus.url)
        with self._lock:
            self._transports.append(transport)
        return transport

    def topic(self, name: str = "notif") -> str:
        return self.bus.topic(name)

    def notifier(self, topics: str | Sequence[str], publisher_id: str = "suite.host1",
                 driver: str = "messagingv2", transport: Transport | None = None,
                 **kwargs: Any) -> Notifier:
        """A Notifier sending to ``topics`` (a topic or a list) with ``driver``."""
        topics = [topics] if isinstance(topics, str) else list(topics)
        return Notifier(transport or self.transport(), publisher_id, driver=driver,
                        topics=topics, **kwargs)

    def listener(self, topics: str | Sequence[str], endpoints: Sequence[Any],
                 transport: Transport | None = None, start: bool = True, batch: bool = False,
                 **kwargs: Any) -> NotificationServerBase:
        """A (batch) notification listener on ``topics``, started unless ``start=False``."""
        topics = [topics] if isinstance(topics, str) else list(topics)
        targets = [msgbus.Target(topic=t) for t in topics]
        factory = get_batch_notification_listener if batch else get_notification_listener
        server = factory(transport or self.transport(), targets, endpoints, **kwargs)
        with self._lock:
            self._listeners.append(server)
        if start:
            server.start()
        return server

    def close(self) -> None:
        for server in reversed(self._listeners):
            server.stop()
        for server in reversed(self._listeners):
            server.wait()
        for transport in reversed(self._transports):
            transport.cleanup()


class Collector:
    """An endpoint with a method for each priority in ``priorities`` that records what it got."""

    def __init__(self, recorder: Recorder, priorities: Sequence[str] = PRIORITIES,
                 name: str = "collector", filter_rule: NotificationFilter | None = None) -> None:
        self.recorder = recorder
        self.name = name
        if filter_rule is not None:
            self.filter_rule = filter_rule
        for priority in priorities:
            setattr(self, priority, self._method(priority))

    def _method(self, priority: str) -> Any:
        def handle(ctxt: Any, publisher_id: str, event_type: str, payload: Any,
                   metadata: dict) -> None:
            self.recorder.add({"endpoint": self.name, "priority": priority, "ctxt": ctxt,
                               "publisher_id": publisher_id, "event_type": event_type,
                               "payload": payload, "metadata": metadata})
        handle.__name__ = priority
        return handle


class BatchCollector:
    """A batch endpoint: records each list it is called with."""

    def __init__(self, recorder: Recorder, priorities: Sequence[str] = ("info",)) -> None:
        self.recorder = recorder
        for priority in priorities:
            setattr(self, priority, self._method(priority))

    def _method(self, priority: str) -> Any:
        def handle(messages: list[dict]) -> None:
            self.recorder.add((priority, time.monotonic(), list(messages)))
        return handle


class NotificationScenarios:
    """Base of the scenario classes: provides the ``notify`` fixture."""

    @pytest.fixture
    def notify(self, bus: Bus) -> Iterator[NotifyBus]:
        nb = NotifyBus(bus)
        try:
            yield nb
        finally:
            nb.close()


class TestNotificationDelivery(NotificationScenarios):
    """Each priority reaches its endpoint method with the oslo fields; v1 and v2 bodies."""

    def test_every_priority_reaches_its_method(self, notify: NotifyBus,
                                               recorder: Recorder) -> None:
        topic = notify.topic()
        notify.listener(topic, [Collector(recorder)])
        notifier = notify.notifier(topic)
        ctxt = Context(user_id="u1", project_id="p1")
        for priority in PRIORITIES:
            getattr(notifier, priority)(ctxt, f"suite.{priority}", {"priority": priority})
        events = recorder.wait_count(len(PRIORITIES))
        assert len(events) == len(PRIORITIES)
        assert sorted(e["priority"] for e in events) == sorted(PRIORITIES)
        for event in events:
            assert event["event_type"] == f"suite.{event['priority']}"
            assert event["payload"] == {"priority": event["priority"]}
            assert event["publisher_id"] == "suite.host1"
            assert event["ctxt"] == {"user_id": "u1", "project_id": "p1"}, "no auth_token"
            assert uuid.UUID(event["metadata"]["message_id"])
            assert TIMESTAMP.match(event["metadata"]["timestamp"]), event["metadata"]
        assert len({e["metadata"]["message_id"] for e in events}) == len(PRIORITIES)

    def test_no_token_reaches_a_listener(self, notify: NotifyBus, recorder: Recorder) -> None:
        """oslo.messaging's rule: a plain dict context is not sent at all, another context
        only as its ``redacted_copy()``; either way the token stays with the sender."""
        topic = notify.topic()
        notify.listener(topic, [Collector(recorder, ["info"])])
        notifier = notify.notifier(topic)
        notifier.info({"auth_token": "secret-token", "user_id": "u1"}, "suite.dict", 1)
        notifier.info(Context(user_id="u1"), "suite.redacted", 2)
        events = sorted(recorder.wait_count(2), key=lambda e: e["payload"])
        assert [e["ctxt"] for e in events] == [{}, {"user_id": "u1"}]

    def test_warning_is_an_alias_of_warn(self, notify: NotifyBus, recorder: Recorder) -> None:
        topic = notify.topic()
        notify.listener(topic, [Collector(recorder, ["warn"])])
        notify.notifier(topic).warning({}, "suite.warned", "careful")
        assert recorder.wait_count(1)[0]["payload"] == "careful"

    def test_v1_messaging_driver_is_understood(self, notify: NotifyBus,
                                               recorder: Recorder) -> None:
        topic = notify.topic()
        notify.listener(topic, [Collector(recorder, ["info", "error"])])
        notifier = notify.notifier(topic, driver="messaging")
        notifier.info(Context(k="v"), "suite.v1", {"n": 1})
        notifier.error({}, "suite.v1", {"n": 2})
        events = recorder.wait_count(2)
        assert sorted((e["priority"], e["payload"]["n"]) for e in events) == \
            [("error", 2), ("info", 1)]
        assert [e["ctxt"] for e in events if e["priority"] == "info"] == [{"k": "v"}]

    def test_each_endpoint_gets_only_its_priorities(self, notify: NotifyBus,
                                                    recorder: Recorder) -> None:
        topic = notify.topic()
        notify.listener(topic, [Collector(recorder, ["info"], name="infos"),
                                Collector(recorder, ["error"], name="errors")])
        notifier = notify.notifier(topic)
        notifier.info({}, "suite.a", 1)
        notifier.error({}, "suite.b", 2)
        events = recorder.wait_count(2)
        assert sorted((e["endpoint"], e["payload"]) for e in events) == \
            [("errors", 2), ("infos", 1)]

    def test_every_endpoint_of_a_priority_is_called(self, notify: NotifyBus,
                                                    recorder: Recorder) -> None:
        topic = notify.topic()
        notify.listener(topic, [Collector(recorder, ["info"], name="one"),
                                Collector(recorder, ["info"], name="two")])
        notify.notifier(topic).info({}, "suite.both", "x")
        events = recorder.wait_count(2)
        assert sorted(e["endpoint"] for e in events) == ["one", "two"]

    def test_several_topics_and_targets(self, notify: NotifyBus, recorder: Recorder) -> None:
        first, second = notify.topic("first"), notify.topic("second")
        notify.listener([first, second], [Collector(recorder, ["info"])])
        notify.notifier([first, second]).info({}, "suite.twice", "x")
        events = recorder.wait_count(2)
        assert len({e["metadata"]["message_id"] for e in events}) == 1

    def test_prepare_changes_publisher_id(self, notify: NotifyBus, recorder: Recorder) -> None:
        topic = notify.topic()
        notify.listener(topic, [Collector(recorder, ["info"])])
        notifier = notify.notifier(topic)
        notifier.prepare(publisher_id="suite.other").info({}, "suite.prepared", 1)
        notifier.info({}, "suite.plain", 2)
        events = recorder.wait_count(2)
        assert sorted((e["payload"], e["publisher_id"]) for e in events) == \
            [(1, "suite.other"), (2, "suite.host1")]

    def test_serializer_applies_both_ways(self, notify: NotifyBus, recorder: Recorder) -> None:
        class Tagging(msgbus.NoOpSerializer):
            def serialize_entity(self, ctxt: Any, entity: Any) -> Any:
                return {"tagged": entity}

            def deserialize_entity(self, ctxt: Any, entity: Any) -> Any:
                return ("untagged", entity["tagged"])

        topic = notify.topic()
        notify.listener(topic, [Collector(recorder, ["info"])], serializer=Tagging())
        notify.notifier(topic, serializer=Tagging()).info({}, "suite.ser", [1, 2])
        assert recorder.wait_count(1)[0]["payload"] == ("untagged", [1, 2])

    def test_malformed_and_duplicate_messages_are_dropped(self, notify: NotifyBus,
                                                          recorder: Recorder) -> None:
        topic = notify.topic()
        notify.listener(topic, [Collector(recorder, ["info"])])
        transport = notify.transport()
        target = msgbus.Target(topic=f"{topic}.info")
        valid = {"message_id": str(uuid.uuid4()), "publisher_id": "raw", "event_type": "raw",
                 "priority": "INFO", "payload": "once", "timestamp": "2024-01-01 00:00:00.000000",
                 "_unique_id": uuid.uuid4().hex}
        for body in (b"not json", b"[1, 2]", envelope.encode({"no": "priority"}),
                     b'{"oslo.version": "3.0", "oslo.message": "{}"}',
                     envelope.encode(valid), envelope.encode(valid)):
            transport.send_notification(target, body)
        notify.notifier(topic).info({}, "suite.after", "marker")
        events = recorder.wait_count(2)
        assert sorted(e["payload"] for e in events) == ["marker", "once"]


class TestNotificationFilters(NotificationScenarios):
    """An endpoint's filter_rule decides which notifications it sees (regexes, re.match)."""

    def test_filters_on_every_field(self, notify: NotifyBus, recorder: Recorder) -> None:
        topic = notify.topic()
        endpoints = [
            Collector(recorder, ["info"], "by_event",
                      NotificationFilter(event_type=r"^compute\.instance\.")),
            Collector(recorder, ["info"], "by_publisher",
                      NotificationFilter(publisher_id=r"^api\.")),
            Collector(recorder, ["info"], "by_context",
                      NotificationFilter(context={"project_id": "^p1$"})),
            Collector(recorder, ["info"], "by_payload",
                      NotificationFilter(payload={"state": "^active$"})),
            Collector(recorder, ["info"], "by_metadata",
                      NotificationFilter(metadata={"timestamp": r"^\d{4}-"})),
            Collector(recorder, ["info"], "by_two",
                      NotificationFilter(event_type="^volume", payload={"state": "^error$"})),
            Collector(recorder, ["info"], "all"),  # last: its count says all endpoints ran
        ]
        notify.listener(topic, endpoints)
        compute = notify.notifier(topic, publisher_id="compute.h1")
        api = notify.notifier(topic, publisher_id="api.h2")
        compute.info(Context(project_id="p1"), "compute.instance.create", {"state": "active"})
        compute.info(Context(project_id="p2"), "volume.create", {"state": "error"})
        api.info(Context(project_id="p11"), "compute.instancex", {"state": "active!"})
        api.info({}, "volume.delete", {"state": 1})
        recorder.wait_for(lambda ev: sum(e["endpoint"] == "all" for e in ev) == 4)
        got: dict[str, list[str]] = {}
        for event in recorder.events:
            got.setdefault(event["endpoint"], []).append(event["event_type"])
        got = {k: sorted(v) for k, v in got.items()}
        assert got == {
            "by_event": ["compute.instance.create"],
            "by_publisher": ["compute.instancex", "volume.delete"],
            "by_context": ["compute.instance.create"],
            "by_payload": ["compute.instance.create"],
            "by_metadata": sorted(["compute.instance.create", "volume.create",
                                   "compute.instancex", "volume.delete"]),
            "by_two": ["volume.create"],
            "all": sorted(["compute.instance.create", "volume.create", "compute.instancex",
                           "volume.delete"]),
        }


class TestNotificationPools(NotificationScenarios):
    """Listeners of one pool share its messages; every pool and the pool-less listeners each
    receive every notification once."""

    def test_pools_each_get_a_copy_and_share_it(self, notify: NotifyBus,
                                                recorder: Recorder) -> None:
        topic = notify.topic()
        pool_a, pool_b = notify.topic("pool-a"), notify.topic("pool-b")
        transport = notify.transport()
        for name, pool in (("a1", pool_a), ("a2", pool_a), ("b1", pool_b), ("plain", None)):
            notify.listener(topic, [Collector(recorder, ["info"], name)], transport, pool=pool)
        notifier = notify.notifier(topic)
        count = 40
        for i in range(count):
            notifier.info({}, "suite.pooled", i)

        def payloads(events: list[dict], *names: str) -> list[int]:
            return sorted(e["payload"] for e in events if e["endpoint"] in names)

        groups = (("a1", "a2"), ("b1",), ("plain",))
        recorder.wait_for(lambda ev: all(len(payloads(ev, *g)) >= count for g in groups))
        events = list(recorder.events)
        for group in groups:
            assert payloads(events, *group) == list(range(count)), group
        assert payloads(events, "a1") and payloads(events, "a2"), \
            "both listeners of pool a should have had a share"


class TestNotificationBatches(NotificationScenarios):
    """Batch listeners: flushed at batch_size or batch_timeout, whichever comes first."""

    def test_flushed_at_batch_size(self, notify: NotifyBus, recorder: Recorder) -> None:
        topic = notify.topic()
        notify.listener(topic, [BatchCollector(recorder)], batch=True, batch_size=5,
                        batch_timeout=WAIT * 4)
        notifier = notify.notifier(topic)
        for i in range(10):
            notifier.info(Context(i=i), "suite.batch", i)
        batches = recorder.wait_count(2)
        assert [len(messages) for _, _, messages in batches] == [5, 5]
        flat = [m for _, _, messages in batches for m in messages]
        assert sorted(m["payload"] for m in flat) == list(range(10))
        first = flat[0]
        assert set(first) == {"ctxt", "publisher_id", "event_type", "payload", "metadata"}
        assert first["ctxt"] == {"i": first["payload"]}
        assert first["publisher_id"] == "suite.host1" and first["event_type"] == "suite.batch"
        assert set(first["metadata"]) == {"message_id", "timestamp"}

    def test_flushed_at_batch_timeout(self, notify: NotifyBus, recorder: Recorder) -> None:
        topic = notify.topic()
        timeout = 0.5
        notify.listener(topic, [BatchCollector(recorder)], batch=True, batch_size=100,
                        batch_timeout=timeout)
        notifier = notify.notifier(topic)
        started = time.monotonic()
        for i in range(3):
            notifier.info({}, "suite.batch", i)
        recorder.wait_for(lambda ev: sum(len(m) for _, _, m in ev) >= 3)
        batches = list(recorder.events)
        assert sorted(m["payload"] for _, _, ms in batches for m in ms) == [0, 1, 2]
        assert batches[0][1] - started >= timeout * 0.9, "flushed before the timeout"
        assert batches[0][1] - started < WAIT

    def test_batch_groups_by_priority(self, notify: NotifyBus, recorder: Recorder) -> None:
        topic = notify.topic()
        notify.listener(topic, [BatchCollector(recorder, ["info", "error"])], batch=True,
                        batch_size=4, batch_timeout=0.3)
        notifier = notify.notifier(topic)
        notifier.info({}, "suite.i", 1)
        notifier.error({}, "suite.e", 2)
        notifier.info({}, "suite.i", 3)
        notifier.error({}, "suite.e", 4)
        recorder.wait_for(lambda ev: sum(len(m) for _, _, m in ev) >= 4)
        by_priority: dict[str, list[int]] = {}
        for priority, _, messages in recorder.events:
            by_priority.setdefault(priority, []).extend(m["payload"] for m in messages)
        assert {k: sorted(v) for k, v in by_priority.items()} == {"info": [1, 3],
                                                                  "error": [2, 4]}

    def test_batch_filter_applies(self, notify: NotifyBus, recorder: Recorder) -> None:
        topic = notify.topic()
        endpoint = BatchCollector(recorder)
        endpoint.filter_rule = NotificationFilter(event_type="^keep")  # type: ignore[attr-defined]
        notify.listener(topic, [endpoint], batch=True, batch_size=2, batch_timeout=0.3)
        notifier = notify.notifier(topic)
        for i, event in enumerate(["keep.a", "drop.b", "keep.c", "drop.d"]):
            notifier.info({}, event, i)
        recorder.wait_for(lambda ev: sum(len(m) for _, _, m in ev) >= 2)
        assert sorted(m["event_type"] for _, _, ms in recorder.events for m in ms) == \
            ["keep.a", "keep.c"]


class _Flaky:
    """Endpoint whose first ``fail_times`` deliveries of each payload fail (REQUEUE or raise)."""

    def __init__(self, recorder: Recorder, how: str, fail_times: int = 1) -> None:
        self.recorder = recorder
        self.how = how
        self.fail_times = fail_times
        self._lock = threading.Lock()
        self.attempts: dict[Any, int] = {}

    def info(self, ctxt: Any, publisher_id: str, event_type: str, payload: Any,
             metadata: dict) -> Any:
        with self._lock:
            self.attempts[payload] = attempt = self.attempts.get(payload, 0) + 1
        self.recorder.add((payload, attempt, metadata["message_id"]))
        if attempt <= self.fail_times and not str(payload).startswith("marker"):
            if self.how == "raise":
                raise RuntimeError(f"suite: failing attempt {attempt} on purpose")
            return NotificationResult.REQUEUE
        return NotificationResult.HANDLED


class TestNotificationRequeue(NotificationScenarios):
    """REQUEUE (or an exception) gives the notification back when allow_requeue is set."""

    def test_requeue_result_redelivers(self, notify: NotifyBus, recorder: Recorder) -> None:
        require(notify.bus, Capability.REQUEUE)
        topic = notify.topic()
        endpoint = _Flaky(recorder, "result", fail_times=2)
        notify.listener(topic, [endpoint], allow_requeue=True)
        notify.notifier(topic).info({}, "suite.requeue", "again")
        events = recorder.wait_count(3)
        assert [attempt for _, attempt, _ in events] == [1, 2, 3]
        assert len({message_id for _, _, message_id in events}) == 1

    def test_exception_with_allow_requeue_redelivers(self, notify: NotifyBus,
                                                     recorder: Recorder) -> None:
        require(notify.bus, Capability.REQUEUE)
        topic = notify.topic()
        notify.listener(topic, [_Flaky(recorder, "raise")], allow_requeue=True)
        notify.notifier(topic).info({}, "suite.requeue", "boom")
        events = recorder.wait_count(2)
        assert [attempt for _, attempt, _ in events[:2]] == [1, 2]

    def test_without_allow_requeue_failures_are_acknowledged(self, notify: NotifyBus,
                                                             recorder: Recorder) -> None:
        # One worker: notifications are handled (and settled) in arrival order, so a wrongly
        # requeued "lost" would come back before "marker2" is handled.
        topic = notify.topic()
        endpoint = _Flaky(recorder, "raise")
        notify.listener(topic, [endpoint], transport=notify.transport(workers=1))
        notifier = notify.notifier(topic)
        for payload in ("lost", "marker", "marker2"):
            notifier.info({}, "suite.noreq", payload)
        recorder.wait_for(lambda ev: any(p == "marker2" for p, _, _ in ev))
        assert [payload for payload, _, _ in recorder.events] == ["lost", "marker", "marker2"]

    def test_batch_requeue(self, notify: NotifyBus, recorder: Recorder) -> None:
        require(notify.bus, Capability.REQUEUE)
        attempts: list[int] = []

        class Once:
            def info(self, messages: list[dict]) -> str | None:
                attempts.append(len(messages))
                recorder.add(sorted(m["payload"] for m in messages))
                return NotificationResult.REQUEUE if len(attempts) == 1 else None

        topic = notify.topic()
        notify.listener(topic, [Once()], batch=True, batch_size=3, batch_timeout=0.3,
                        allow_requeue=True)
        notifier = notify.notifier(topic)
        for i in range(3):
            notifier.info({}, "suite.batchreq", i)
        recorder.wait_for(lambda ev: sum(len(b) for b in ev) >= 6)
        handled = [p for batch in recorder.events[1:] for p in batch]
        assert recorder.events[0] == [0, 1, 2]
        assert sorted(handled) == [0, 1, 2]


class TestNotificationStoreAndForward(NotificationScenarios):
    """Notifications sent before any listener exists wait for one (NOTIFY_STORE_AND_FORWARD)."""

    def test_sent_before_the_listener_starts(self, notify: NotifyBus,
                                             recorder: Recorder) -> None:
        require(notify.bus, Capability.NOTIFY_STORE_AND_FORWARD)
        topic = notify.topic()
        notifier = notify.notifier(topic)
        for i in range(5):
            notifier.info({}, "suite.early", i)
        notifier.error({}, "suite.early", "err")
        notify.listener(topic, [Collector(recorder, ["info", "error"])])
        events = recorder.wait_count(6)
        assert sorted(map(str, (e["payload"] for e in events))) == \
            ["0", "1", "2", "3", "4", "err"]

    def test_kept_while_the_listener_is_stopped(self, notify: NotifyBus,
                                                recorder: Recorder) -> None:
        require(notify.bus, Capability.NOTIFY_STORE_AND_FORWARD)
        topic = notify.topic()
        listener = notify.listener(topic, [Collector(recorder, ["info"])])
        notifier = notify.notifier(topic)
        notifier.info({}, "suite.kept", "before")
        recorder.wait_count(1)
        listener.stop()
        listener.wait()
        notifier.info({}, "suite.kept", "while stopped")
        listener.start()
        events = recorder.wait_count(2)
        assert [e["payload"] for e in events] == ["before", "while stopped"]


class TestNotificationVolume(NotificationScenarios):
    """Many notifications: none lost, none duplicated."""

    def test_thousand_notifications_no_loss_no_duplicate(self, notify: NotifyBus,
                                                         recorder: Recorder) -> None:
        topic = notify.topic()
        notify.listener(topic, [Collector(recorder, ["info"])])
        notifier = notify.notifier(topic)
        count = 1000
        for i in range(count):
            notifier.info({}, "suite.volume", i)
        recorder.wait_count(count, timeout=WAIT * 2)
        payloads = [e["payload"] for e in recorder.events]
        assert len(payloads) == count
        assert sorted(payloads) == list(range(count))


class TestNotificationLifecycle(NotificationScenarios):
    """Start, stop, wait and restart; buffered batches are not lost on stop."""

    def test_restart_on_same_topic(self, notify: NotifyBus, recorder: Recorder) -> None:
        topic = notify.topic()
        listener = notify.listener(topic, [Collector(recorder, ["info"])])
        notifier = notify.notifier(topic)
        notifier.info({}, "suite.first", 1)
        recorder.wait_count(1)
        listener.stop()
        listener.wait()
        listener.start()
        notifier.info({}, "suite.second", 2)
        assert [e["payload"] for e in recorder.wait_count(2)] == [1, 2]

    def test_stop_lets_endpoints_in_flight_finish(self, notify: NotifyBus) -> None:
        entered, release, finished = threading.Event(), threading.Event(), threading.Event()

        class Slow:
            def info(self, *args: Any) -> None:
                entered.set()
                release.wait(WAIT)
                finished.set()

        topic = notify.topic()
        listener = notify.listener(topic, [Slow()])
        notify.notifier(topic).info({}, "suite.slow", None)
        assert entered.wait(WAIT)
        listener.stop()
        release.set()
        listener.wait()
        assert finished.is_set()

    def test_stop_hands_buffered_batch_to_endpoints(self, notify: NotifyBus,
                                                    recorder: Recorder) -> None:
        topic = notify.topic()
        arrived = Recorder()

        class Tap(BatchCollector):
            pass

        listener = notify.listener(topic, [Tap(recorder)], batch=True, batch_size=100,
                                   batch_timeout=WAIT * 4, start=False)
        original = listener._on_incoming

        def counting(incoming: Any) -> None:
            original(incoming)
            arrived.add(1)

        listener._on_incoming = counting  # type: ignore[method-assign]
        listener.start()
        notifier = notify.notifier(topic)
        for i in range(3):
            notifier.info({}, "suite.buffered", i)
        arrived.wait_count(3)
        assert recorder.events == [], "flushed before size or timeout"
        listener.stop()
        listener.wait()
        assert sorted(m["payload"] for _, _, ms in recorder.events for m in ms) == [0, 1, 2]
