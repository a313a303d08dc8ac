"""The asyncio executor on fake://: async and plain endpoints, the coroutine bound, lifecycle
from async code, contextvars, cancelled calls, async notification listeners and AsyncNotifier."""

from __future__ import annotations

import asyncio
import contextvars
import logging
import threading
from typing import Any

import pytest

import msgbus
import msgbus.fake
from msgbus.aio import AsyncNotifier
from msgbus.executors.aio import asyncio_opts
from msgbus.notify import (NotificationResult, get_batch_notification_listener,
                           get_notification_listener, get_notification_transport)

REQUEST = contextvars.ContextVar("REQUEST", default="unset")


class Api:
    def __init__(self) -> None:
        self.running = 0
        self.most = 0
        self.release = asyncio.Event()
        self.finished: list[int] = []

    async def add(self, ctxt: Any, a: int, b: int) -> int:
        await asyncio.sleep(0)
        return a + b

    def plain(self, ctxt: Any, a: int) -> dict:
        return {"thread": threading.current_thread().name, "a": a}

    async def where(self, ctxt: Any) -> str:
        return threading.current_thread().name

    async def fail(self, ctxt: Any) -> None:
        raise ValueError("async failure")

    @msgbus.expected_exceptions(KeyError)
    async def expected(self, ctxt: Any) -> None:
        raise KeyError("expected")

    async def held(self, ctxt: Any, n: int) -> int:
        self.running += 1
        self.most = max(self.most, self.running)
        await self.release.wait()
        self.running -= 1
        self.finished.append(n)
        return n

    async def request(self, ctxt: Any, value: str) -> list[str]:
        seen = REQUEST.get()
        REQUEST.set(value)  # must not leak into another request
        await asyncio.sleep(0)
        return [seen, REQUEST.get()]

    async def slow(self, ctxt: Any, seconds: float) -> str:
        await asyncio.sleep(seconds)
        return "late"


async def _until(predicate: Any, timeout: float = 10) -> None:
    """Poll a cheap in-process condition until it holds (bounded)."""
    loop = asyncio.get_running_loop()
    give_up = loop.time() + timeout
    while not predicate():
        if loop.time() > give_up:
            raise AssertionError(f"condition not met within {timeout}s")
        await asyncio.sleep(0.005)


def _transport(url: str = "fake://aio/") -> Any:
    return msgbus.get_rpc_transport(url=url)


@pytest.fixture
def transport() -> Any:
    transport = _transport()
    yield transport
    transport.cleanup()
    msgbus.fake.reset()


def _server(transport: Any, api: Any, **kwargs: Any) -> Any:
    return msgbus.get_rpc_server(transport, msgbus.Target(topic="t", server="s"), [api],
                                 executor="asyncio", **kwargs)


def _client(transport: Any, timeout: float = 10, **kwargs: Any) -> Any:
    return msgbus.get_rpc_client(transport, msgbus.Target(topic="t"), timeout=timeout, **kwargs)


def test_async_and_plain_endpoints_mix(transport: Any) -> None:
    api = Api()

    async def main() -> None:
        loop_thread = threading.current_thread().name
        async with _server(transport, api):
            client = _client(transport)
            assert await client.call_async({}, "add", a=1, b=2) == 3
            assert await client.call_async({}, "where") == loop_thread
            plain = await client.call_async({}, "plain", a=5)
            assert plain["a"] == 5 and plain["thread"].startswith("msgbus-worker")
            with pytest.raises(ValueError, match="async failure"):
                await client.call_async({}, "fail")
            with pytest.raises(KeyError):
                await client.call_async({}, "expected")
            results = await asyncio.gather(*(client.call_async({}, "add", a=i, b=1)
                                              for i in range(500)))
            assert results == [i + 1 for i in range(500)]

    asyncio.run(main())


def test_sync_client_calls_async_endpoints_from_another_thread(transport: Any) -> None:
    api = Api()

    async def main() -> None:
        async with _server(transport, api):
            client = _client(transport)
            loop = asyncio.get_running_loop()
            assert await loop.run_in_executor(None, lambda: client.call({}, "add", a=2, b=3)) \
                == 5

    asyncio.run(main())


def test_coroutines_at_once_are_bounded(transport: Any) -> None:
    transport.conf.register_opts(asyncio_opts)
    transport.conf.set_override("executor_coroutine_limit", 3)
    api = Api()

    async def main() -> None:
        async with _server(transport, api):
            client = _client(transport)
            calls = [asyncio.ensure_future(client.call_async({}, "held", n=i))
                     for i in range(12)]
            await _until(lambda: api.running == 3)
            api.release.set()
            assert sorted(await asyncio.gather(*calls)) == list(range(12))
        assert api.most == 3

    asyncio.run(main())


def test_wait_async_returns_after_handlers_finished(transport: Any) -> None:
    api = Api()

    async def main() -> None:
        server = _server(transport, api)
        await server.start_async()
        client = _client(transport)
        for i in range(5):
            await client.cast_async({}, "held", n=i)
        await _until(lambda: api.running == 5)
        await server.stop_async()
        asyncio.get_running_loop().call_later(0.05, api.release.set)
        await server.wait_async()
        assert sorted(api.finished) == list(range(5))
        assert not server.running

    asyncio.run(main())


def test_oslo_style_calls_keep_working(transport: Any) -> None:
    api = Api()

    async def main() -> None:
        server = _server(transport, api)
        server.start()  # from a coroutine: binds to this loop
        assert await _client(transport).call_async({}, "add", a=1, b=1) == 2
        server.stop()
        with pytest.raises(RuntimeError, match="wait_async"):
            server.wait()  # would block the loop the handlers run on
        await asyncio.get_running_loop().run_in_executor(None, server.wait)  # another thread
        server.start()
        assert await _client(transport).call_async({}, "add", a=2, b=1) == 3
        await server.wait_async()

    asyncio.run(main())


def test_start_outside_a_loop_says_what_to_do(transport: Any) -> None:
    server = _server(transport, Api())
    with pytest.raises(RuntimeError, match="start_async"):
        server.start()


def test_contextvars_at_start_are_seen_and_requests_are_isolated(transport: Any) -> None:
    api = Api()

    async def main() -> None:
        REQUEST.set("at-start")
        async with _server(transport, api):
            REQUEST.set("changed-after-start")
            client = _client(transport)
            results = await asyncio.gather(*(client.call_async({}, "request", value=str(i))
                                             for i in range(20)))
        assert results == [["at-start", str(i)] for i in range(20)]

    asyncio.run(main())


class ContextSerializer(msgbus.NoOpSerializer):
    """Carries REQUEST in the context: set from the caller's task, set again on the server."""

    def serialize_context(self, ctxt: Any) -> dict:
        return dict(ctxt, request=REQUEST.get())

    def deserialize_context(self, ctxt: dict) -> dict:
        REQUEST.set("server:" + str(ctxt.get("request")))
        return ctxt


def test_serializer_carries_a_contextvar_from_caller_task_to_endpoint(transport: Any) -> None:
    api = Api()

    async def one(client: Any, value: str) -> list[str]:
        REQUEST.set(value)
        return await client.call_async({}, "request", value="x")

    async def main() -> None:
        async with _server(transport, api, serializer=ContextSerializer()):
            client = _client(transport, serializer=ContextSerializer())
            results = await asyncio.gather(*(one(client, f"task-{i}") for i in range(10)))
        assert [seen for seen, _ in results] == [f"server:task-{i}" for i in range(10)]

    asyncio.run(main())


def test_cancelled_call_frees_its_slot_and_late_reply_is_dropped(
        transport: Any, caplog: pytest.LogCaptureFixture) -> None:
    api = Api()

    async def main() -> None:
        async with _server(transport, api):
            client = _client(transport)
            task = asyncio.ensure_future(client.call_async({}, "held", n=1))
            await _until(lambda: api.running == 1)
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            assert transport.reply_waiter()._pending == {}
            with caplog.at_level(logging.INFO, logger="msgbus.rpc.reply_waiter"):
                api.release.set()
                assert await client.call_async({}, "add", a=1, b=1) == 2
                await _until(lambda: any("no caller is waiting" in r.getMessage()
                                         for r in caplog.records))
        assert not [r for r in caplog.records if r.levelno >= logging.WARNING]

    asyncio.run(main())


def test_async_call_options_timeout_and_monitor(transport: Any) -> None:
    api = Api()

    async def main() -> None:
        async with _server(transport, api):
            client = _client(transport)
            with pytest.raises(msgbus.MessagingTimeout):
                await client.prepare(timeout=0.2).call_async({}, "slow", seconds=1)
            # heartbeats keep a call alive past the monitor timeout
            assert await client.prepare(timeout=5, call_monitor_timeout=0.2).call_async(
                {}, "slow", seconds=0.6) == "late"
            with pytest.raises(msgbus.MessagingTimeout):
                await client.prepare(topic="nobody", timeout=0.3).call_async({}, "add", a=1,
                                                                            b=1)
            with pytest.raises(msgbus.RPCVersionCapError):
                await client.prepare(version="2.0", version_cap="1.5").call_async({}, "add",
                                                                                 a=1, b=1)

    asyncio.run(main())


def test_threading_executor_refuses_async_endpoints_clearly(transport: Any) -> None:
    server = msgbus.get_rpc_server(transport, msgbus.Target(topic="t", server="s"), [Api()])
    server.start()
    try:
        with pytest.raises(msgbus.MessagingException, match="executor='asyncio'"):
            _client(transport).call({}, "add", a=1, b=2)
    finally:
        server.stop()
        server.wait()


class Listener:
    def __init__(self) -> None:
        self.seen: list[tuple[str, Any]] = []
        self.batches: list[int] = []
        self.got = asyncio.Event()
        self.fail_once = True

    async def info(self, ctxt: Any, publisher_id: str, event_type: str, payload: Any,
                   metadata: dict) -> Any:
        await asyncio.sleep(0)
        self.seen.append(("info", payload))
        self.got.set()
        return None

    def warn(self, ctxt: Any, publisher_id: str, event_type: str, payload: Any,
             metadata: dict) -> Any:
        self.seen.append(("warn", payload))
        return None

    async def error(self, ctxt: Any, publisher_id: str, event_type: str, payload: Any,
                    metadata: dict) -> Any:
        if self.fail_once:
            self.fail_once = False
            return NotificationResult.REQUEUE
        self.seen.append(("error", payload))
        return None


class BatchListener:
    def __init__(self) -> None:
        self.batches: list[list[Any]] = []

    async def info(self, messages: list[dict]) -> None:
        await asyncio.sleep(0)
        self.batches.append([m["payload"] for m in messages])


@pytest.fixture
def notify_transport() -> Any:
    transport = get_notification_transport(url="fake://aio-notify/")
    yield transport
    transport.cleanup()
    msgbus.fake.reset()


def test_async_notification_listener_and_async_notifier(notify_transport: Any) -> None:
    endpoint = Listener()

    async def main() -> None:
        listener = get_notification_listener(notify_transport, [msgbus.Target(topic="n")],
                                             [endpoint], executor="asyncio",
                                             allow_requeue=True)
        notifier = AsyncNotifier(notify_transport, "pub", driver="messaging", topics=["n"])
        async with listener:
            await notifier.info({}, "e.info", 1)
            await notifier.warn({}, "e.warn", 2)
            await notifier.error({}, "e.error", 3)
            await _until(lambda: len(endpoint.seen) == 3)
        assert sorted(endpoint.seen) == [("error", 3), ("info", 1), ("warn", 2)]

    asyncio.run(main())


def test_async_batch_listener(notify_transport: Any) -> None:
    endpoint = BatchListener()

    async def main() -> None:
        listener = get_batch_notification_listener(
            notify_transport, [msgbus.Target(topic="b")], [endpoint], executor="asyncio",
            batch_size=5, batch_timeout=0.2)
        notifier = AsyncNotifier(notify_transport, "pub", driver="messaging", topics=["b"])
        async with listener:
            for i in range(12):
                await notifier.info({}, "e", i)
            await _until(lambda: sum(map(len, endpoint.batches)) == 12)
        assert sorted(p for batch in endpoint.batches for p in batch) == list(range(12))
        assert max(map(len, endpoint.batches)) <= 5

    asyncio.run(main())


class PlainReader:
    def read(self, ctxt: Any) -> str:
        return REQUEST.get()


def test_plain_methods_see_the_context_at_start_too(transport: Any) -> None:
    async def main() -> None:
        REQUEST.set("at-start")
        async with _server(transport, PlainReader()):
            REQUEST.set("later")
            assert await _client(transport).call_async({}, "read") == "at-start"

    asyncio.run(main())


def test_handlers_queued_past_the_bound_still_reply_after_wait_starts(transport: Any) -> None:
    transport.conf.register_opts(asyncio_opts)
    transport.conf.set_override("executor_coroutine_limit", 2)
    api = Api()

    async def main() -> None:
        server = _server(transport, api)
        await server.start_async()
        client = _client(transport)
        calls = [asyncio.ensure_future(client.call_async({}, "held", n=i)) for i in range(10)]
        # all ten taken by the server: two running, eight queued behind the bound
        await _until(lambda: api.running == 2 and server._executor._inflight == 10)
        await server.stop_async()
        waiting = asyncio.ensure_future(server.wait_async())
        await asyncio.sleep(0)  # wait_async has taken the executor off the server
        api.release.set()
        await waiting
        assert sorted(await asyncio.gather(*calls)) == list(range(10))

    asyncio.run(main())


def test_endpoint_method_changing_kind_between_calls_still_runs(transport: Any) -> None:
    """The server remembers which requests named async methods; one that became plain still
    runs (on a thread), one that became async runs on the loop, one that went away fails."""
    api = Api()

    async def main() -> None:
        loop_thread = threading.current_thread().name
        async with _server(transport, api):
            client = _client(transport)
            assert await client.call_async({}, "where") == loop_thread
            api.where = lambda ctxt: threading.current_thread().name  # type: ignore
            assert (await client.call_async({}, "where")).startswith("msgbus-worker")

            async def swapped(ctxt: Any, a: int) -> dict:
                return {"thread": threading.current_thread().name, "a": a}

            api.plain = swapped  # type: ignore
            assert (await client.call_async({}, "plain", a=1))["thread"] == loop_thread
            api.where = None  # type: ignore
            with pytest.raises(msgbus.NoSuchMethod):
                await client.call_async({}, "where")

    asyncio.run(main())
