"""RPC scenarios every driver must pass: topic, server and fanout delivery, call and cast,
timeouts, remote errors, versions, namespaces, policies, payloads, concurrency, lifecycle.

(Over 400 lines on purpose: it is the RPC contract a driver author reads, one scenario group per
class; the fault scenarios live in :mod:`msgbus.testing.suite.faults`.)"""

from __future__ import annotations

import collections
import concurrent.futures
import threading
import time
from typing import Any

import pytest

import msgbus
from msgbus.driver.base import Capability
from msgbus.testing.fixtures import WAIT, Bus, Recorder, require

__all__ = ["TestDelivery", "TestCallSemantics", "TestRemoteErrors", "TestDispatch",
           "TestPayloads", "TestConcurrency", "TestLifecycle", "SuiteError"]


class SuiteError(Exception):
    """An application exception the suite allows clients to rebuild (module in allowed list)."""

    def __init__(self, message: str, code: int = 0) -> None:
        super().__init__(message, code)
        self.code = code


class NotAllowedError(Exception):
    """An application exception the client is not allowed to rebuild."""


class Echo:
    """Endpoint that records who handled what."""

    def __init__(self, name: str, recorder: Recorder | None = None) -> None:
        self.name = name
        self.recorder = recorder

    def echo(self, ctxt: Any, value: Any) -> Any:
        if self.recorder:
            self.recorder.add((self.name, value))
        return value

    def whoami(self, ctxt: Any) -> str:
        if self.recorder:
            self.recorder.add((self.name, "whoami"))
        return self.name

    def note(self, ctxt: Any, value: Any) -> None:
        if self.recorder:
            self.recorder.add((self.name, value))

    def context(self, ctxt: Any) -> Any:
        return ctxt

    def _secret(self, ctxt: Any) -> str:
        return "leaked"

    def fail_allowed(self, ctxt: Any, message: str, code: int) -> None:
        raise SuiteError(message, code=code)

    def fail_builtin(self, ctxt: Any, message: str) -> None:
        raise KeyError(message)

    def fail_value(self, ctxt: Any, message: str) -> None:
        raise ValueError(message)

    def fail_other(self, ctxt: Any, message: str) -> None:
        raise NotAllowedError(message)

    def length(self, ctxt: Any, data: str) -> int:
        return len(data)


class TestDelivery:
    """Who receives a message: topic (one of many), server (that one), fanout (all, once)."""

    def test_call_returns_result(self, bus: Bus) -> None:
        topic = bus.topic()
        bus.server(topic, [Echo("a")])
        assert bus.client(topic).call({}, "echo", value={"x": [1, 2.5, "three", None]}) == \
            {"x": [1, 2.5, "three", None]}

    def test_topic_calls_are_load_balanced(self, bus: Bus, recorder: Recorder) -> None:
        topic = bus.topic()
        bus.server(topic, [Echo("a", recorder)], server="a")
        bus.server(topic, [Echo("b", recorder)], server="b")
        client = bus.client(topic)
        names = collections.Counter(client.call({}, "whoami") for _ in range(40))
        assert set(names) == {"a", "b"}, names

    def test_topic_casts_are_load_balanced(self, bus: Bus, recorder: Recorder) -> None:
        topic = bus.topic()
        bus.server(topic, [Echo("a", recorder)], server="a")
        bus.server(topic, [Echo("b", recorder)], server="b")
        client = bus.client(topic)
        for i in range(40):
            client.cast({}, "note", value=i)
        events = recorder.wait_count(40)
        assert sorted(v for _, v in events) == list(range(40))
        assert {name for name, _ in events} == {"a", "b"}

    def test_call_to_server_reaches_only_that_server(self, bus: Bus, recorder: Recorder) -> None:
        topic = bus.topic()
        bus.server(topic, [Echo("a", recorder)], server="a")
        bus.server(topic, [Echo("b", recorder)], server="b")
        client = bus.client(topic, server="b")
        assert {client.call({}, "whoami") for _ in range(10)} == {"b"}
        assert {name for name, _ in recorder.events} == {"b"}

    def test_cast_to_server_reaches_only_that_server(self, bus: Bus, recorder: Recorder) -> None:
        topic = bus.topic()
        bus.server(topic, [Echo("a", recorder)], server="a")
        bus.server(topic, [Echo("b", recorder)], server="b")
        client = bus.client(topic)
        for i in range(10):
            client.prepare(server="a").cast({}, "note", value=i)
        client.prepare(server="a").call({}, "echo", value="sync")
        assert {name for name, _ in recorder.wait_count(11)} == {"a"}

    def test_fanout_reaches_every_server_exactly_once(self, bus: Bus, recorder: Recorder) -> None:
        topic = bus.topic()
        for name in ("a", "b", "c"):
            bus.server(topic, [Echo(name, recorder)], server=name)
        client = bus.client(topic, fanout=True)
        client.cast({}, "note", value="first")
        client.cast({}, "note", value="marker")
        # Each fanout queue is FIFO: once every server saw the marker, any duplicate of the first
        # message would have been delivered already.
        recorder.wait_for(lambda ev: sum(1 for _, v in ev if v == "marker") >= 3)
        got = collections.Counter(recorder.events)
        assert got == {(n, v): 1 for n in "abc" for v in ("first", "marker")}, got

    def test_exchanges_are_kept_apart(self, bus: Bus, recorder: Recorder) -> None:
        topic = bus.topic()
        transport = bus.transport()
        srv = msgbus.get_rpc_server(transport, msgbus.Target(topic=topic, server="x",
                                                             exchange="msgbus-test-other"),
                                    [Echo("other", recorder)])
        bus.track(srv).start()
        bus.server(topic, [Echo("default", recorder)], server="y")
        client = bus.client(topic, exchange="msgbus-test-other")
        assert client.call({}, "whoami") == "other"
        assert bus.client(topic).call({}, "whoami") == "default"

    def test_thousand_casts_no_loss_no_duplicate(self, bus: Bus, recorder: Recorder) -> None:
        topic = bus.topic()
        bus.server(topic, [Echo("a", recorder)])
        client = bus.client(topic)
        for i in range(1000):
            client.cast({}, "note", value=i)
        recorder.wait_count(1000, timeout=60)
        client.call({}, "echo", value="barrier")
        values = [v for _, v in recorder.events if v != "barrier"]
        assert sorted(values) == list(range(1000))

    def test_call_with_fanout_is_invalid(self, bus: Bus) -> None:
        with pytest.raises(msgbus.InvalidTarget):
            bus.client(bus.topic(), fanout=True).call({}, "echo", value=1)

    def test_unroutable_call_with_at_least_once_fails_fast(self, bus: Bus) -> None:
        require(bus, Capability.MANDATORY)
        client = bus.client(bus.topic("nobody"),
                            transport_options=msgbus.TransportOptions(at_least_once=True))
        start = time.monotonic()
        with pytest.raises(msgbus.MessageUndeliverable):
            client.call({}, "echo", value=1)
        assert time.monotonic() - start < WAIT / 2


class TestCallSemantics:
    """Timeouts, the call monitor, version caps and context passing."""

    def test_call_without_server_times_out(self, bus: Bus) -> None:
        client = bus.client(bus.topic("nobody"), timeout=0.5)
        start = time.monotonic()
        with pytest.raises(msgbus.MessagingTimeout):
            client.call({}, "echo", value=1)
        assert 0.4 <= time.monotonic() - start < 10

    def test_slow_method_times_out_and_late_reply_is_dropped(self, bus: Bus) -> None:
        release = threading.Event()
        entered = threading.Event()

        class Slow:
            def slow(self, ctxt: Any, value: Any) -> Any:
                entered.set()
                release.wait(WAIT)
                return value

            def echo(self, ctxt: Any, value: Any) -> Any:
                return value

        topic = bus.topic()
        bus.server(topic, [Slow()])
        client = bus.client(topic)
        with pytest.raises(msgbus.MessagingTimeout):
            client.prepare(timeout=0.5).call({}, "slow", value="late")
        assert entered.is_set()
        release.set()
        # The late reply must not be taken as the answer to a later call.
        for i in range(5):
            assert client.call({}, "echo", value=i) == i

    def test_call_monitor_heartbeats_keep_long_call_alive(self, bus: Bus) -> None:
        class Long:
            def work(self, ctxt: Any, seconds: float) -> str:
                threading.Event().wait(seconds)  # the method is slow on purpose
                return "done"

        topic = bus.topic()
        bus.server(topic, [Long()])
        client = bus.client(topic, call_monitor_timeout=0.5, timeout=WAIT)
        assert client.call({}, "work", seconds=1.6) == "done"

    def test_call_monitor_times_out_when_server_is_gone(self, bus: Bus) -> None:
        client = bus.client(bus.topic("nobody"), call_monitor_timeout=0.4, timeout=WAIT)
        start = time.monotonic()
        with pytest.raises(msgbus.MessagingTimeout):
            client.call({}, "echo", value=1)
        assert time.monotonic() - start < WAIT / 2

    def test_version_cap_refuses_before_sending(self, bus: Bus) -> None:
        client = bus.client(bus.topic("nobody"), version_cap="1.2")
        assert client.can_send_version("1.1")
        assert not client.can_send_version("1.3")
        assert not client.can_send_version("2.0")
        with pytest.raises(msgbus.RPCVersionCapError):
            client.prepare(version="1.3").cast({}, "echo", value=1)

    def test_context_reaches_the_server(self, bus: Bus) -> None:
        topic = bus.topic()
        bus.server(topic, [Echo("a")])
        ctxt = bus.client(topic).call({"user": "alice", "roles": ["admin"]}, "context")
        assert ctxt["user"] == "alice" and ctxt["roles"] == ["admin"]

    def test_serializer_applies_both_ways(self, bus: Bus) -> None:
        class Doubler(msgbus.NoOpSerializer):
            def serialize_entity(self, ctxt: Any, entity: Any) -> Any:
                return {"wrapped": entity} if isinstance(entity, int) else entity

            def deserialize_entity(self, ctxt: Any, entity: Any) -> Any:
                if isinstance(entity, dict) and "wrapped" in entity:
                    return entity["wrapped"] * 2
                return entity

        class Add:
            def add_one(self, ctxt: Any, value: int) -> int:
                return value + 1

        topic = bus.topic()
        bus.server(topic, [Add()], serializer=Doubler())
        # client wraps 5 -> server unwraps to 10 -> 11 -> wrapped -> client unwraps to 22
        assert bus.client(topic, serializer=Doubler()).call({}, "add_one", value=5) == 22


class TestRemoteErrors:
    """Exceptions travel back as their type when allowed, else as RemoteError."""

    @pytest.fixture
    def client(self, bus: Bus) -> msgbus.RPCClient:
        topic = bus.topic()
        bus.server(topic, [Echo("a")])
        return bus.client(topic, transport=bus.transport(allowed_remote_exmods=[__name__]))

    def test_builtin_exception_keeps_type_and_message(self, client: msgbus.RPCClient) -> None:
        with pytest.raises(ValueError, match="bad value"):
            client.call({}, "fail_value", message="bad value")
        with pytest.raises(KeyError):
            client.call({}, "fail_builtin", message="k")

    def test_allowed_module_exception_is_rebuilt(self, client: msgbus.RPCClient) -> None:
        with pytest.raises(SuiteError) as info:
            client.call({}, "fail_allowed", message="nope", code=7)
        assert info.value.code == 7
        assert "nope" in str(info.value)

    def test_other_exception_is_remote_error(self, bus: Bus) -> None:
        topic = bus.topic()
        bus.server(topic, [Echo("a")])
        with pytest.raises(msgbus.RemoteError) as info:
            bus.client(topic).call({}, "fail_other", message="hidden type")
        assert info.value.exc_type == "NotAllowedError"
        assert info.value.value == "hidden type"

    def test_server_survives_errors(self, client: msgbus.RPCClient) -> None:
        for _ in range(3):
            with pytest.raises(ValueError):
                client.call({}, "fail_value", message="x")
        assert client.call({}, "echo", value="alive") == "alive"


class TestDispatch:
    """Methods, versions, namespaces and access policies."""

    def test_no_such_method(self, bus: Bus) -> None:
        topic = bus.topic()
        bus.server(topic, [Echo("a")])
        with pytest.raises(msgbus.NoSuchMethod):
            bus.client(topic).call({}, "does_not_exist")

    def test_private_methods_are_refused(self, bus: Bus) -> None:
        topic = bus.topic()
        bus.server(topic, [Echo("a")])
        with pytest.raises(msgbus.NoSuchMethod):
            bus.client(topic).call({}, "_secret")

    def test_explicit_policy_needs_expose(self, bus: Bus) -> None:
        class Api:
            @msgbus.expose
            def shown(self, ctxt: Any) -> str:
                return "shown"

            def hidden(self, ctxt: Any) -> str:
                return "hidden"

        topic = bus.topic()
        bus.server(topic, [Api()], access_policy=msgbus.ExplicitRPCAccessPolicy)
        client = bus.client(topic)
        assert client.call({}, "shown") == "shown"
        with pytest.raises(msgbus.NoSuchMethod):
            client.call({}, "hidden")

    def test_versions(self, bus: Bus) -> None:
        class V11:
            target = msgbus.Target(version="1.1")

            def ping(self, ctxt: Any) -> str:
                return "1.1"

        topic = bus.topic()
        bus.server(topic, [V11()])
        client = bus.client(topic)
        assert client.call({}, "ping") == "1.1"
        assert client.prepare(version="1.0").call({}, "ping") == "1.1"
        assert client.prepare(version="1.1").call({}, "ping") == "1.1"
        with pytest.raises(msgbus.UnsupportedVersion):
            client.prepare(version="1.2").call({}, "ping")
        with pytest.raises(msgbus.UnsupportedVersion):
            client.prepare(version="2.0").call({}, "ping")

    def test_namespaces(self, bus: Bus) -> None:
        class A:
            target = msgbus.Target(namespace="alpha")

            def which(self, ctxt: Any) -> str:
                return "alpha"

        class B:
            target = msgbus.Target(namespace="beta", legacy_namespaces=["old-beta"])

            def which(self, ctxt: Any) -> str:
                return "beta"

        class Default:
            def which(self, ctxt: Any) -> str:
                return "default"

        topic = bus.topic()
        bus.server(topic, [A(), B(), Default()])
        client = bus.client(topic)
        assert client.call({}, "which") == "default"
        assert client.prepare(namespace="alpha").call({}, "which") == "alpha"
        assert client.prepare(namespace="beta").call({}, "which") == "beta"
        assert client.prepare(namespace="old-beta").call({}, "which") == "beta"
        with pytest.raises(msgbus.UnsupportedVersion):
            client.prepare(namespace="gamma").call({}, "which")

    def test_expected_exceptions_reach_the_caller(self, bus: Bus) -> None:
        class Api:
            @msgbus.expected_exceptions(ValueError)
            def check(self, ctxt: Any, value: int) -> int:
                if value < 0:
                    raise ValueError("negative")
                return value

        topic = bus.topic()
        bus.server(topic, [Api()])
        client = bus.client(topic)
        assert client.call({}, "check", value=3) == 3
        with pytest.raises(ValueError, match="negative"):
            client.call({}, "check", value=-1)


class TestPayloads:
    """Sizes and shapes of data."""

    def test_one_mebibyte_payload(self, bus: Bus) -> None:
        topic = bus.topic()
        bus.server(topic, [Echo("a")])
        data = "x" * (1024 * 1024)
        client = bus.client(topic)
        assert client.call({}, "length", data=data) == len(data)
        assert client.call({}, "echo", value=data) == data

    def test_unicode_round_trip(self, bus: Bus) -> None:
        topic = bus.topic()
        bus.server(topic, [Echo("a")])
        value = {"ключ": "значение", "emoji": "\U0001f680", "nul": "a\u0000b"}
        assert bus.client(topic).call({}, "echo", value=value) == value

    def test_unserializable_argument_fails_before_sending(self, bus: Bus) -> None:
        with pytest.raises(msgbus.MessageSerializationError):
            bus.client(bus.topic("nobody")).cast({}, "echo", value=object())


class TestConcurrency:
    """Many callers on one transport: every reply reaches its own caller."""

    def test_32_threads_calling_get_their_own_replies(self, bus: Bus) -> None:
        topic = bus.topic()
        bus.server(topic, [Echo("a")])
        bus.server(topic, [Echo("b")], server="server2")
        client = bus.client(topic)

        def worker(n: int) -> list[tuple[Any, Any]]:
            out = []
            for i in range(25):
                value = f"{n}-{i}"
                out.append((value, client.call({}, "echo", value=value)))
            return out

        with concurrent.futures.ThreadPoolExecutor(32) as pool:
            results = [f.result(timeout=WAIT * 2) for f in
                       [pool.submit(worker, n) for n in range(32)]]
        pairs = [p for r in results for p in r]
        assert len(pairs) == 32 * 25
        assert all(sent == got for sent, got in pairs)

    def test_clients_on_separate_transports(self, bus: Bus) -> None:
        topic = bus.topic()
        bus.server(topic, [Echo("a")])
        clients = [bus.client(topic) for _ in range(4)]
        with concurrent.futures.ThreadPoolExecutor(4) as pool:
            got = list(pool.map(lambda ic: ic[1].call({}, "echo", value=ic[0]),
                                enumerate(clients)))
        assert got == [0, 1, 2, 3]


class TestLifecycle:
    """Servers stop gracefully and restart."""

    def test_stop_lets_calls_in_flight_finish(self, bus: Bus) -> None:
        entered = Recorder()
        release = threading.Event()

        class Blocking:
            def block(self, ctxt: Any, n: int) -> int:
                entered.add(n)
                release.wait(WAIT)
                return n * 10

        topic = bus.topic()
        srv = bus.server(topic, [Blocking()])
        client = bus.client(topic)
        with concurrent.futures.ThreadPoolExecutor(5) as pool:
            futures = [pool.submit(client.call, {}, "block", n=n) for n in range(5)]
            entered.wait_count(5)
            stopper = threading.Thread(target=srv.stop)
            stopper.start()
            stopper.join(WAIT)
            release.set()
            srv.wait()
            assert sorted(f.result(timeout=WAIT) for f in futures) == [0, 10, 20, 30, 40]

    def test_restart_on_same_topic(self, bus: Bus) -> None:
        topic = bus.topic()
        srv = bus.server(topic, [Echo("first")])
        client = bus.client(topic)
        assert client.call({}, "whoami") == "first"
        srv.stop()
        srv.wait()
        srv.start()
        assert client.call({}, "whoami") == "first"
        srv.stop()
        srv.wait()
        bus.server(topic, [Echo("second")])
        assert client.call({}, "whoami") == "second"

    def test_casts_just_before_close_are_not_lost(self, bus: Bus, recorder: Recorder) -> None:
        """A driver may return from a cast before the broker has it (pipelining); closing the
        transport right after a burst must still deliver every cast."""
        topic = bus.topic()
        bus.server(topic, [Echo("a", recorder)])
        transport = msgbus.get_rpc_transport(url=bus.url)
        try:
            client = bus.client(topic, transport=transport)
            for i in range(300):
                client.cast({}, "note", value=i)
        finally:
            transport.cleanup()
        events = recorder.wait_count(300, timeout=60)
        assert sorted(value for _, value in events) == list(range(300))

    def test_cast_to_topic_waits_for_a_restarted_server(self, bus: Bus, recorder: Recorder) -> None:
        """A cast to a topic whose only server has stopped is kept for the next server."""
        require(bus, Capability.RPC_STORE_AND_FORWARD)
        topic = bus.topic()
        srv = bus.server(topic, [Echo("a", recorder)])
        srv.stop()
        srv.wait()
        bus.client(topic).cast({}, "note", value="kept")
        bus.server(topic, [Echo("b", recorder)], server="server2")
        assert recorder.wait_count(1)[0][1] == "kept"
