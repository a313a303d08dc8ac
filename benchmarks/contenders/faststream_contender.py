"""FastStream (``faststream[rabbit]``): an async subscriber as the server, ``broker.request``
(RabbitMQ's direct reply-to) as the client (``faststream-rabbit``; asyncio scenarios only).

Per-message logging is turned off on both sides, as msgbus logs nothing per message.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from typing import Any

from benchmarks.contenders.base import (CALL_TIMEOUT, AsyncOnlyContender, AsyncSession,
                                        rabbit_url)


def _broker() -> Any:
    from faststream.rabbit import RabbitBroker
    return RabbitBroker(rabbit_url("amqp"), logger=None)


class FastStreamSession(AsyncSession):
    """One connected broker; every task of the scenario awaits ``broker.request`` on it."""

    def __init__(self, broker: Any, topic: str) -> None:
        self._broker = broker
        self._topic = topic

    async def echo(self, payload: Any) -> Any:
        response = await self._broker.request(payload, queue=self._topic, timeout=CALL_TIMEOUT)
        return await response.decode()

    async def close(self) -> None:
        await self._broker.stop()


class FastStreamContender(AsyncOnlyContender):
    """FastStream's RabbitBroker on the local RabbitMQ."""

    name = "faststream-rabbit"
    group = "rabbit"
    module = "faststream.rabbit"
    distributions = ("faststream", "aio-pika")

    async def open_async_session(self, topic: str) -> AsyncSession:
        broker = _broker()
        await broker.connect()
        return FastStreamSession(broker, topic)

    async def serve_async(self, topic: str, ready: Callable[[], None],
                          stop: threading.Event) -> None:
        broker = _broker()

        @broker.subscriber(topic)
        async def echo(body: str) -> str:
            return body

        await broker.start()
        try:
            ready()
            await asyncio.get_running_loop().run_in_executor(None, stop.wait)
        finally:
            await broker.stop()
