"""The asyncio face of RPCClient: call_async and cast_async on fake://."""

import asyncio
import threading
from typing import Any

import pytest

import msgbus
import msgbus.fake


class Api:
    def __init__(self) -> None:
        self.noted = threading.Event()

    def add(self, ctxt: Any, a: int, b: int) -> int:
        return a + b

    def fail(self, ctxt: Any) -> None:
        raise ValueError("async failure")

    def note(self, ctxt: Any) -> None:
        self.noted.set()


@pytest.fixture
def client_and_api():
    transport = msgbus.get_rpc_transport(url="fake://async/")
    api = Api()
    server = msgbus.get_rpc_server(transport, msgbus.Target(topic="t", server="s"), [api])
    server.start()
    yield msgbus.get_rpc_client(transport, msgbus.Target(topic="t"), timeout=10), api
    server.stop()
    server.wait()
    transport.cleanup()
    msgbus.fake.reset()


def test_many_concurrent_async_calls(client_and_api) -> None:
    client, _ = client_and_api

    async def main() -> list[int]:
        return await asyncio.gather(*(client.call_async({}, "add", a=i, b=1) for i in range(200)))

    assert asyncio.run(main()) == [i + 1 for i in range(200)]


def test_async_errors_and_timeouts(client_and_api) -> None:
    client, api = client_and_api

    async def main() -> None:
        with pytest.raises(ValueError, match="async failure"):
            await client.call_async({}, "fail")
        with pytest.raises(msgbus.MessagingTimeout):
            await client.prepare(topic="nobody", timeout=0.3).call_async({}, "add", a=1, b=2)
        await client.cast_async({}, "note")

    asyncio.run(main())
    assert api.noted.wait(10)
