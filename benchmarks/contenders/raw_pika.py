"""Hand-written request/reply on pika's BlockingConnection: the floor any AMQP stack sits on.

No envelope, no JSON, no serializer: the AMQP ``type`` property names the method, the body is the
payload, a reply goes to the caller's exclusive reply queue with the request's correlation id.
Every client thread has its own connection (BlockingConnection is not thread-safe); the server is
one thread with manual acks and a prefetch window, like the RPC servers it is compared with.
"""

from __future__ import annotations

import importlib.metadata
import threading
import time
import uuid
from collections.abc import Callable
from typing import Any

from benchmarks.contenders.per_thread import CountingServer, HandWrittenContender
from benchmarks.contenders.base import (
    CALL_TIMEOUT,
    COUNT_TIMEOUT,
    RABBIT_HOST,
    RABBIT_PORT,
)

PREFETCH = 64


def _parameters() -> Any:
    import pika
    return pika.ConnectionParameters(host=RABBIT_HOST, port=RABBIT_PORT,
                                     credentials=pika.PlainCredentials("guest", "guest"))


class _Caller:
    """One connection with its exclusive reply queue; used by one thread only."""

    def __init__(self) -> None:
        import pika
        self._pika = pika
        self.connection = pika.BlockingConnection(_parameters())
        self.channel = self.connection.channel()
        self.reply_queue = self.channel.queue_declare("", exclusive=True).method.queue
        self._replies: dict[str, bytes] = {}
        self.channel.basic_consume(self.reply_queue, self._on_reply, auto_ack=True)

    def _on_reply(self, channel: Any, method: Any, props: Any, body: bytes) -> None:
        self._replies[props.correlation_id] = body

    def publish(self, routing_key: str, kind: str, body: bytes, exchange: str = "",
                reply: bool = False) -> str:
        correlation = uuid.uuid4().hex
        props = self._pika.BasicProperties(
            type=kind, correlation_id=correlation, reply_to=self.reply_queue if reply else None)
        self.channel.basic_publish(exchange, routing_key, body, props)
        return correlation

    def call(self, routing_key: str, kind: str, body: bytes,
             timeout: float = CALL_TIMEOUT) -> bytes:
        correlation = self.publish(routing_key, kind, body, reply=True)
        deadline = time.monotonic() + timeout
        while correlation not in self._replies:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(f"no reply to {kind} on {routing_key} in {timeout}s")
            self.connection.process_data_events(time_limit=remaining)
        return self._replies.pop(correlation)

    def close(self) -> None:
        if self.connection.is_open:
            self.connection.close()


class _RawServer(CountingServer):
    """The server's request handling on pika's BlockingConnection."""

    def __init__(self, connection: Any, channel: Any) -> None:
        import pika
        super().__init__()
        self._pika = pika
        self._connection = connection
        self._channel = channel

    def reply(self, reply_to: str, correlation: str, body: bytes) -> None:
        self._channel.basic_publish("", reply_to, body,
                                    self._pika.BasicProperties(correlation_id=correlation))

    def on_message(self, channel: Any, method: Any, props: Any, body: bytes) -> None:
        self.handle(props.type, body, props.reply_to, props.correlation_id)
        if props.type == "wait_count" and self.waiting:
            # answer it at its deadline even if no cast ever comes
            self._connection.call_later(COUNT_TIMEOUT, self.answer_waiters)
        channel.basic_ack(method.delivery_tag)


class RawPikaContender(HandWrittenContender):
    """Plain pika request/reply, no framework."""

    name = "raw-pika"
    module = "pika"

    def make_caller(self) -> _Caller:
        return _Caller()

    def serve(self, topic: str, server: str, ready: Callable[[], None],
              stop: threading.Event) -> None:
        import pika
        connection = pika.BlockingConnection(_parameters())
        try:
            channel = connection.channel()
            channel.basic_qos(prefetch_count=PREFETCH)
            direct = f"{topic}.{server}"
            fanout_exchange = f"{topic}_fanout"
            channel.queue_declare(topic)
            channel.queue_declare(direct)
            channel.exchange_declare(fanout_exchange, "fanout", auto_delete=True)
            fanout_queue = channel.queue_declare("", exclusive=True).method.queue
            channel.queue_bind(fanout_queue, fanout_exchange)
            handler = _RawServer(connection, channel)
            for queue in (topic, direct, fanout_queue):
                channel.basic_consume(queue, handler.on_message)

            def stopper() -> None:
                stop.wait()
                connection.add_callback_threadsafe(channel.stop_consuming)

            threading.Thread(target=stopper, name="raw-pika-stopper", daemon=True).start()
            ready()
            channel.start_consuming()
        finally:
            if connection.is_open:
                connection.close()

    def versions(self) -> dict[str, str]:
        return {"pika": importlib.metadata.version("pika")}
