"""msgbus from asyncio code: ``call_async`` clients, and a server on the ``asyncio`` executor
whose endpoint methods are ``async def`` (``msgbus-async-rabbit``).

``msgbus-rabbit`` runs the same asyncio client scenarios against its threaded server, which is
the baseline the asyncio server must not be costlier than.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from typing import Any

from benchmarks.contenders.base import CALL_TIMEOUT, AsyncSession, Counter
from benchmarks.contenders.msgbus_contender import MsgbusContender


class MsgbusAsyncSession(AsyncSession):
    """One transport and one client; every task of the scenario awaits ``call_async`` on it."""

    def __init__(self, contender: MsgbusContender, topic: str) -> None:
        import msgbus
        self._contender = contender
        self._transport = contender.make_transport()
        self._client = msgbus.get_rpc_client(self._transport, msgbus.Target(topic=topic),
                                             timeout=CALL_TIMEOUT)

    async def echo(self, payload: Any) -> Any:
        return await self._client.call_async({}, "echo", payload=payload)

    async def close(self) -> None:
        self._contender.note_reply_queue(self._transport)
        await asyncio.get_running_loop().run_in_executor(None, self._transport.cleanup)


class AsyncBenchEndpoint:
    """The benchmark endpoint with ``async def`` methods (``wait_count`` stays plain: it
    blocks, so the executor runs it on its threads)."""

    def __init__(self) -> None:
        self._counter = Counter()

    async def echo(self, ctxt: Any, payload: Any) -> Any:
        return payload

    async def tick(self, ctxt: Any) -> None:
        self._counter.tick()

    def wait_count(self, ctxt: Any, n: int) -> int:
        return self._counter.wait_for(n)


class MsgbusAsyncContender(MsgbusContender):
    """msgbus-kombu with an asyncio server and async endpoints; asyncio scenarios only."""

    runs_sync = False
    runs_async = True

    def __init__(self, scheme: str = "rabbit") -> None:
        super().__init__(scheme)
        self.name = f"msgbus-async-{scheme}"

    def serve(self, topic: str, server: str, ready: Callable[[], None],
              stop: threading.Event) -> None:
        asyncio.run(self._serve(topic, server, ready, stop))

    async def _serve(self, topic: str, server: str, ready: Callable[[], None],
                     stop: threading.Event) -> None:
        import msgbus
        loop = asyncio.get_running_loop()
        transport = await loop.run_in_executor(None, self.make_transport)
        try:
            rpc_server = msgbus.get_rpc_server(transport, msgbus.Target(topic=topic, server=server),
                                               [AsyncBenchEndpoint()], executor="asyncio")
            async with rpc_server:
                ready()
                await loop.run_in_executor(None, stop.wait)
        finally:
            await loop.run_in_executor(None, transport.cleanup)


async def open_msgbus_async_session(contender: MsgbusContender, topic: str) -> AsyncSession:
    """The asyncio session of any msgbus contender (made off the loop: it connects)."""
    return await asyncio.get_running_loop().run_in_executor(
        None, MsgbusAsyncSession, contender, topic)
