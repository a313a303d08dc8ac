"""aio-pika by hand, as its RPC tutorial does: the client publishes to the topic's queue with
``reply_to`` (its own exclusive queue) and a ``correlation_id``, and resolves one future per
call from its reply consumer; the server consumes the queue and publishes each reply
(``aiopika-rabbit``; asyncio scenarios only)."""

from __future__ import annotations

import asyncio
import threading
import uuid
from collections.abc import Callable
from typing import Any

from benchmarks.contenders.base import (CALL_TIMEOUT, AsyncOnlyContender, AsyncSession,
                                        rabbit_url)


class AioPikaSession(AsyncSession):
    """One connection and channel; calls in flight are futures keyed by correlation id."""

    def __init__(self, topic: str) -> None:
        self._topic = topic
        self._futures: dict[str, asyncio.Future] = {}
        self._connection: Any = None
        self._channel: Any = None
        self._reply_queue: Any = None

    async def open(self) -> "AioPikaSession":
        import aio_pika
        self._connection = await aio_pika.connect(rabbit_url("amqp"))
        self._channel = await self._connection.channel()
        self._reply_queue = await self._channel.declare_queue(exclusive=True, auto_delete=True)
        await self._reply_queue.consume(self._on_reply, no_ack=True)
        return self

    async def _on_reply(self, message: Any) -> None:
        future = self._futures.pop(message.correlation_id, None)
        if future is not None and not future.done():
            future.set_result(message.body)

    def payload(self, size: int) -> bytes:
        return b"x" * size

    async def echo(self, payload: Any) -> Any:
        import aio_pika
        correlation_id = uuid.uuid4().hex
        future = asyncio.get_running_loop().create_future()
        self._futures[correlation_id] = future
        try:
            await self._channel.default_exchange.publish(
                aio_pika.Message(payload, correlation_id=correlation_id,
                                 reply_to=self._reply_queue.name),
                routing_key=self._topic)
            return await asyncio.wait_for(future, CALL_TIMEOUT)
        finally:
            self._futures.pop(correlation_id, None)

    async def close(self) -> None:
        await self._connection.close()


class AioPikaContender(AsyncOnlyContender):
    """Hand-written RPC over aio-pika on the local RabbitMQ."""

    name = "aiopika-rabbit"
    group = "rabbit"
    module = "aio_pika"
    distributions = ("aio-pika", "aiormq")

    async def open_async_session(self, topic: str) -> AsyncSession:
        return await AioPikaSession(topic).open()

    async def serve_async(self, topic: str, ready: Callable[[], None],
                          stop: threading.Event) -> None:
        import aio_pika
        connection = await aio_pika.connect(rabbit_url("amqp"))
        try:
            channel = await connection.channel()
            await channel.set_qos(prefetch_count=256)
            queue = await channel.declare_queue(topic)

            async def on_request(message: Any) -> None:
                async with message.process():
                    await channel.default_exchange.publish(
                        aio_pika.Message(message.body, correlation_id=message.correlation_id),
                        routing_key=message.reply_to)

            await queue.consume(on_request)
            ready()
            await asyncio.get_running_loop().run_in_executor(None, stop.wait)
        finally:
            await connection.close()
