"""asyncio scenarios every driver must pass: the RPC and notification contract again, with
``async def`` endpoints on the ``asyncio`` executor, awaited clients and an AsyncNotifier.

No driver needs asyncio support for these: the core runs async endpoints on the test's event
loop and keeps the driver's threads off it. Each scenario runs one ``asyncio.run``; servers are
started and stopped with ``async with`` (and tracked by ``bus`` in case a scenario fails).

(Over 400 lines on purpose: it is the asyncio contract a driver author reads, RPC and
notifications side by side, one scenario group per class.)
"""

from __future__ import annotations

import asyncio
import contextvars
from typing import Any, Callable, Coroutine

import pytest

import msgbus
from msgbus.aio import AsyncNotifier
from msgbus.notify import (NotificationResult, get_batch_notification_listener,
                           get_notification_listener)
from msgbus.testing.fixtures import WAIT, Bus

__all__ = ["TestAsyncRPC", "TestAsyncCallSemantics", "TestAsyncNotifications",
           "TestAsyncLifecycle"]

REQUEST_ID = contextvars.ContextVar("REQUEST_ID", default="none")


class AsyncSuiteError(Exception):
    """An application exception the suite's async clients may rebuild."""


async def until(predicate: Callable[[], bool], timeout: float = WAIT) -> None:
    """Wait (bounded) for an in-process condition the scenario's own endpoints change."""
    loop = asyncio.get_running_loop()
    give_up = loop.time() + timeout
    while not predicate():
        if loop.time() > give_up:
            raise AssertionError(f"condition not met within {timeout}s")
        await asyncio.sleep(0.005)


class AsyncEcho:
    """Async endpoint methods, and one plain one, recording what they handled."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.seen: list[Any] = []
        self.running = 0
        self.release = asyncio.Event()

    async def echo(self, ctxt: Any, value: Any) -> Any:
        await asyncio.sleep(0)
        self.seen.append(value)
        return value

    async def whoami(self, ctxt: Any) -> str:
        self.seen.append("whoami")
        return self.name

    def plain_echo(self, ctxt: Any, value: Any) -> Any:
        self.seen.append(value)
        return value

    async def fail(self, ctxt: Any, message: str) -> None:
        raise AsyncSuiteError(message)

    async def fail_builtin(self, ctxt: Any, message: str) -> None:
        raise KeyError(message)

    async def held(self, ctxt: Any, value: Any) -> Any:
        self.running += 1
        try:
            await self.release.wait()
        finally:
            self.running -= 1
        self.seen.append(value)
        return value

    async def sleep(self, ctxt: Any, seconds: float) -> str:
        await asyncio.sleep(seconds)
        return "slept"

    async def request_id(self, ctxt: Any) -> str:
        return REQUEST_ID.get()


def run(main: Callable[[], Coroutine[Any, Any, None]]) -> None:
    """One scenario's event loop."""
    asyncio.run(main())


def async_server(bus: Bus, topic: str, endpoints: list[Any], server: str = "server1",
                 **kwargs: Any) -> Any:
    """An (unstarted) RPC server on the asyncio executor, stopped by ``bus`` if left running."""
    return bus.server(topic, endpoints, server=server, start=False, executor="asyncio",
                      **kwargs)


class TestAsyncRPC:
    """Delivery and results with async endpoints and awaited calls and casts."""

    def test_async_call_to_async_endpoint(self, bus: Bus) -> None:
        topic = bus.topic()
        echo = AsyncEcho("a")

        async def main() -> None:
            async with async_server(bus, topic, [echo]):
                client = bus.client(topic)
                assert await client.call_async({}, "echo", value={"x": [1, "two", None]}) == \
                    {"x": [1, "two", None]}
                assert await client.call_async({}, "plain_echo", value=7) == 7

        run(main)

    def test_sync_client_reaches_async_endpoint(self, bus: Bus) -> None:
        topic = bus.topic()

        async def main() -> None:
            async with async_server(bus, topic, [AsyncEcho("a")]):
                client = bus.client(topic)
                loop = asyncio.get_running_loop()
                assert await loop.run_in_executor(
                    None, lambda: client.call({}, "echo", value="sync")) == "sync"

        run(main)

    def test_casts_to_topic_server_and_fanout(self, bus: Bus) -> None:
        topic = bus.topic()
        a, b = AsyncEcho("a"), AsyncEcho("b")

        async def main() -> None:
            async with async_server(bus, topic, [a], server="a"), \
                    async_server(bus, topic, [b], server="b"):
                for i in range(20):
                    await bus.client(topic).cast_async({}, "echo", value=i)
                await until(lambda: len(a.seen) + len(b.seen) == 20)
                assert sorted(a.seen + b.seen) == list(range(20))
                await bus.client(topic, server="b").cast_async({}, "echo", value="only-b")
                await bus.client(topic, fanout=True).cast_async({}, "echo", value="all")
                await until(lambda: "all" in a.seen and "all" in b.seen and "only-b" in b.seen)
                assert await bus.client(topic, server="a").call_async({}, "whoami") == "a"
            assert "only-b" not in a.seen
            assert a.seen.count("all") == 1 and b.seen.count("all") == 1

        run(main)

    def test_thousand_calls_in_flight(self, bus: Bus) -> None:
        topic = bus.topic()

        async def main() -> None:
            async with async_server(bus, topic, [AsyncEcho("a")]):
                client = bus.client(topic)
                results = await asyncio.gather(*(client.call_async({}, "echo", value=i)
                                                 for i in range(1000)))
                assert results == list(range(1000))

        run(main)

    def test_remote_errors(self, bus: Bus) -> None:
        topic = bus.topic()

        async def main() -> None:
            async with async_server(bus, topic, [AsyncEcho("a")]):
                client = bus.client(topic,
                                    transport=bus.transport(allowed_remote_exmods=[__name__]))
                with pytest.raises(AsyncSuiteError, match="async boom"):
                    await client.call_async({}, "fail", message="async boom")
                with pytest.raises(KeyError, match="missing"):
                    await client.call_async({}, "fail_builtin", message="missing")
                with pytest.raises(msgbus.NoSuchMethod):
                    await client.call_async({}, "nothing_here")
                assert await client.call_async({}, "echo", value="still serving") == \
                    "still serving"

        run(main)


class TestAsyncCallSemantics:
    """Timeouts, the call monitor, versions and cancellation, awaited."""

    def test_timeout_and_late_reply_dropped(self, bus: Bus) -> None:
        topic = bus.topic()
        echo = AsyncEcho("a")

        async def main() -> None:
            async with async_server(bus, topic, [echo]):
                client = bus.client(topic)
                with pytest.raises(msgbus.MessagingTimeout):
                    await client.prepare(timeout=0.3).call_async({}, "held", value="late")
                echo.release.set()
                await until(lambda: "late" in echo.seen)
                assert await client.call_async({}, "echo", value="next") == "next"

        run(main)

    def test_call_without_server_times_out(self, bus: Bus) -> None:
        async def main() -> None:
            client = bus.client(bus.topic("nobody"), timeout=0.5)
            start = asyncio.get_running_loop().time()
            with pytest.raises(msgbus.MessagingTimeout):
                await client.call_async({}, "echo", value=1)
            assert asyncio.get_running_loop().time() - start < 0.5 + 5

        run(main)

    def test_call_monitor_heartbeats(self, bus: Bus) -> None:
        topic = bus.topic()

        async def main() -> None:
            async with async_server(bus, topic, [AsyncEcho("a")]):
                # heartbeats every 0.5 s; a loaded machine still gets them within 1 s
                client = bus.client(topic, timeout=WAIT, call_monitor_timeout=1.0)
                assert await client.call_async({}, "sleep", seconds=2.5) == "slept"

        run(main)

    def test_versions_and_cap(self, bus: Bus) -> None:
        topic = bus.topic()
        echo = AsyncEcho("a")
        echo.target = msgbus.Target(version="1.3")  # type: ignore[attr-defined]

        async def main() -> None:
            async with async_server(bus, topic, [echo]):
                client = bus.client(topic)
                assert await client.prepare(version="1.2").call_async({}, "whoami") == "a"
                with pytest.raises(msgbus.UnsupportedVersion):
                    await client.prepare(version="2.0").call_async({}, "whoami")
                with pytest.raises(msgbus.RPCVersionCapError):
                    await client.prepare(version="1.3", version_cap="1.2").call_async(
                        {}, "whoami")

        run(main)

    def test_cancelled_call_frees_its_reply_slot(self, bus: Bus) -> None:
        topic = bus.topic()
        echo = AsyncEcho("a")

        async def main() -> None:
            async with async_server(bus, topic, [echo]):
                transport = bus.transport()
                client = bus.client(topic, transport=transport)
                task = asyncio.ensure_future(client.call_async({}, "held", value="cancelled"))
                await until(lambda: echo.running == 1)
                task.cancel()
                with pytest.raises(asyncio.CancelledError):
                    await task
                assert not transport.reply_waiter()._pending
                echo.release.set()
                await until(lambda: "cancelled" in echo.seen)
                assert await client.call_async({}, "echo", value="after") == "after"

        run(main)

    def test_at_least_once_unroutable_call_fails_fast(self, bus: Bus) -> None:
        from msgbus.driver.base import Capability
        if Capability.MANDATORY not in bus.capabilities:
            pytest.xfail(f"{bus.scheme} does not declare MANDATORY (unroutable messages "
                         f"cannot be detected)")

        async def main() -> None:
            client = bus.client(bus.topic("nobody"), timeout=WAIT,
                                transport_options=msgbus.TransportOptions(at_least_once=True))
            with pytest.raises(msgbus.MessageUndeliverable):
                await client.call_async({}, "echo", value=1)

        run(main)

    def test_caller_contextvars_reach_the_serializer(self, bus: Bus) -> None:
        topic = bus.topic()

        class Serializer(msgbus.NoOpSerializer):
            def serialize_context(self, ctxt: Any) -> dict:
                return dict(ctxt, request_id=REQUEST_ID.get())

            def deserialize_context(self, ctxt: dict) -> dict:
                REQUEST_ID.set(str(ctxt.get("request_id")))
                return ctxt

        async def one(client: Any, i: int) -> str:
            REQUEST_ID.set(f"req-{i}")
            return await client.call_async({}, "request_id")

        async def main() -> None:
            async with async_server(bus, topic, [AsyncEcho("a")], serializer=Serializer()):
                client = bus.client(topic, serializer=Serializer())
                assert await asyncio.gather(*(one(client, i) for i in range(20))) == \
                    [f"req-{i}" for i in range(20)]

        run(main)


class AsyncCollector:
    """Async notification endpoint: records payloads; requeues the first ``error`` once."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, Any]] = []
        self.requeued = False

    async def info(self, ctxt: Any, publisher_id: str, event_type: str, payload: Any,
                   metadata: dict) -> None:
        await asyncio.sleep(0)
        self.seen.append(("info", payload))

    def warn(self, ctxt: Any, publisher_id: str, event_type: str, payload: Any,
             metadata: dict) -> None:
        self.seen.append(("warn", payload))

    async def error(self, ctxt: Any, publisher_id: str, event_type: str, payload: Any,
                    metadata: dict) -> Any:
        if not self.requeued:
            self.requeued = True
            return NotificationResult.REQUEUE
        self.seen.append(("error", payload))
        return None


class AsyncBatchCollector:
    def __init__(self) -> None:
        self.batches: list[list[Any]] = []

    async def info(self, messages: list[dict]) -> None:
        await asyncio.sleep(0)
        self.batches.append([m["payload"] for m in messages])


class TestAsyncNotifications:
    """Async listener endpoints (batch too) fed by an AsyncNotifier."""

    def test_async_endpoints_receive_every_priority_sent(self, bus: Bus) -> None:
        topic = bus.topic("notif")
        endpoint = AsyncCollector()

        async def main() -> None:
            transport = bus.notification_transport()
            listener = bus.track(get_notification_listener(
                transport, [msgbus.Target(topic=topic)], [endpoint], executor="asyncio"))
            notifier = AsyncNotifier(transport, "suite.aio", driver="messagingv2",
                                     topics=[topic])
            async with listener:
                for i in range(10):
                    await notifier.info({}, "suite.info", i)
                await notifier.warn({}, "suite.warn", "w")
                await until(lambda: len(endpoint.seen) == 11)
            assert sorted(p for kind, p in endpoint.seen if kind == "info") == list(range(10))
            assert ("warn", "w") in endpoint.seen

        run(main)

    def test_requeue_from_async_endpoint(self, bus: Bus) -> None:
        from msgbus.driver.base import Capability
        if Capability.REQUEUE not in bus.capabilities:
            pytest.xfail(f"{bus.scheme} does not declare REQUEUE")
        topic = bus.topic("requeue")
        endpoint = AsyncCollector()

        async def main() -> None:
            transport = bus.notification_transport()
            listener = bus.track(get_notification_listener(
                transport, [msgbus.Target(topic=topic)], [endpoint], executor="asyncio",
                allow_requeue=True))
            notifier = AsyncNotifier(transport, "suite.aio", driver="messagingv2",
                                     topics=[topic])
            async with listener:
                await notifier.error({}, "suite.error", "again")
                await until(lambda: ("error", "again") in endpoint.seen)
            assert endpoint.requeued

        run(main)

    def test_async_batch_endpoint(self, bus: Bus) -> None:
        topic = bus.topic("batch")
        endpoint = AsyncBatchCollector()

        async def main() -> None:
            transport = bus.notification_transport()
            listener = bus.track(get_batch_notification_listener(
                transport, [msgbus.Target(topic=topic)], [endpoint], executor="asyncio",
                batch_size=10, batch_timeout=0.2))
            notifier = AsyncNotifier(transport, "suite.aio", driver="messagingv2",
                                     topics=[topic])
            async with listener:
                await asyncio.gather(*(notifier.info({}, "suite.batch", i) for i in range(25)))
                await until(lambda: sum(map(len, endpoint.batches)) == 25)
            assert sorted(p for batch in endpoint.batches for p in batch) == list(range(25))
            assert max(map(len, endpoint.batches)) <= 10

        run(main)


class TestAsyncLifecycle:
    """Start, stop and wait from async code; the coroutine bound."""

    def test_wait_async_lets_handlers_in_flight_finish(self, bus: Bus) -> None:
        topic = bus.topic()
        echo = AsyncEcho("a")

        async def main() -> None:
            server = async_server(bus, topic, [echo])
            await server.start_async()
            client = bus.client(topic)
            calls = [asyncio.ensure_future(client.call_async({}, "held", value=i))
                     for i in range(5)]
            await until(lambda: echo.running == 5)
            await server.stop_async()
            echo.release.set()
            await server.wait_async()
            assert sorted(await asyncio.gather(*calls)) == list(range(5))

        run(main)

    def test_restart_on_same_topic(self, bus: Bus) -> None:
        topic = bus.topic()

        async def main() -> None:
            server = async_server(bus, topic, [AsyncEcho("a")])
            client = bus.client(topic)
            for value in ("first", "second"):
                async with server:
                    assert await client.call_async({}, "echo", value=value) == value

        run(main)

    def test_coroutines_at_once_are_bounded(self, bus: Bus) -> None:
        from msgbus.executors.aio import asyncio_opts
        topic = bus.topic()
        echo = AsyncEcho("a")
        most = [0]
        transport = bus.transport()
        transport.conf.register_opts(asyncio_opts)
        transport.conf.set_override("executor_coroutine_limit", 4)

        async def watch() -> None:
            while True:
                most[0] = max(most[0], echo.running)
                await asyncio.sleep(0)

        async def main() -> None:
            async with async_server(bus, topic, [echo], transport=transport):
                watcher = asyncio.ensure_future(watch())
                client = bus.client(topic)
                calls = [asyncio.ensure_future(client.call_async({}, "held", value=i))
                         for i in range(20)]
                await until(lambda: echo.running == 4)
                echo.release.set()
                assert sorted(await asyncio.gather(*calls)) == list(range(20))
                watcher.cancel()
            assert most[0] == 4

        run(main)
