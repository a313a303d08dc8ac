"""Hand-written request/reply on kombu with publisher confirms: what py-amqp's public API costs.

The floor for msgbus-kombu's reference path (``msgbus-rabbit-public``): kombu connections on
py-amqp, every publish confirmed (``confirm_publish``, as oslo.messaging and msgbus publish),
requests acknowledged after their reply, no envelope, no JSON. The AMQP ``type`` property names
the method, a reply goes to the caller's exclusive reply queue with the request's correlation
id. Every client thread has its own connection; the server is one thread that consumes on one
connection and replies on another (a confirm wait inside a delivery callback would nest).
"""

from __future__ import annotations

import importlib.metadata
import threading
import time
import uuid
from collections.abc import Callable
from typing import Any

from benchmarks.contenders.per_thread import CountingServer, HandWrittenContender
from benchmarks.contenders.base import (CALL_TIMEOUT, rabbit_url)

PREFETCH = 64
#: Properties of every message: raw bytes, no serializer.
_RAW = {"content_type": "application/octet-stream", "content_encoding": "binary"}


def _connection() -> Any:
    import kombu
    return kombu.Connection(rabbit_url("amqp"), transport_options={"confirm_publish": True})


class _Caller:
    """One connection: a confirming producer and an exclusive reply queue; one thread only."""

    def __init__(self) -> None:
        import kombu
        self.connection = _connection()
        self.producer = kombu.Producer(self.connection.channel())
        self.reply_queue = f"raw-kombu-reply-{uuid.uuid4().hex}"
        queue = kombu.Queue(self.reply_queue, exclusive=True, auto_delete=True)
        self._replies: dict[str, bytes] = {}
        self._consumer = kombu.Consumer(self.connection.channel(), queues=[queue], no_ack=True,
                                        on_message=self._on_reply)
        self._consumer.consume()

    def _on_reply(self, message: Any) -> None:
        self._replies[message.properties["correlation_id"]] = message.body

    def publish(self, routing_key: str, kind: str, body: bytes, exchange: str = "",
                reply: bool = False) -> str:
        correlation = uuid.uuid4().hex
        self.producer.publish(body, exchange=exchange, routing_key=routing_key, type=kind,
                              correlation_id=correlation,
                              reply_to=self.reply_queue if reply else None, **_RAW)
        return correlation

    def call(self, routing_key: str, kind: str, body: bytes,
             timeout: float = CALL_TIMEOUT) -> bytes:
        correlation = self.publish(routing_key, kind, body, reply=True)
        deadline = time.monotonic() + timeout
        while correlation not in self._replies:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(f"no reply to {kind} on {routing_key} in {timeout}s")
            try:
                self.connection.drain_events(timeout=remaining)
            except TimeoutError:
                pass
        return self._replies.pop(correlation)

    def close(self) -> None:
        self.connection.release()


class _RawServer(CountingServer):
    """The server's request handling on kombu; replies confirmed, then the ack."""

    def __init__(self, producer: Any) -> None:
        super().__init__()
        self._producer = producer
        self.inbox: list[Any] = []

    def reply(self, reply_to: str, correlation: str, body: bytes) -> None:
        self._producer.publish(body, exchange="", routing_key=reply_to,
                               correlation_id=correlation, **_RAW)

    def on_message(self, message: Any) -> None:
        props = message.properties
        self.handle(props.get("type"), message.body, props.get("reply_to"),
                    props.get("correlation_id"))
        message.ack()


class RawKombuContender(HandWrittenContender):
    """Plain kombu request/reply with publisher confirms, no framework."""

    name = "raw-kombu"
    module = "kombu"

    def make_caller(self) -> _Caller:
        return _Caller()

    def serve(self, topic: str, server: str, ready: Callable[[], None],
              stop: threading.Event) -> None:
        import kombu
        consuming, replying = _connection(), _connection()
        try:
            channel = consuming.channel()
            channel.basic_qos(0, PREFETCH, False)
            fanout = kombu.Exchange(f"{topic}_fanout", "fanout", auto_delete=True)
            queues = [kombu.Queue(topic), kombu.Queue(f"{topic}.{server}"),
                      kombu.Queue(f"raw-kombu-fanout-{uuid.uuid4().hex}", fanout,
                                  exclusive=True, auto_delete=True)]
            handler = _RawServer(kombu.Producer(replying.channel()))
            consumer = kombu.Consumer(channel, queues=queues, on_message=handler.inbox.append)
            consumer.consume()
            ready()
            while not stop.is_set():
                try:
                    consuming.drain_events(timeout=0.1)
                except TimeoutError:
                    handler.answer_waiters()  # deadlines of waits no cast will satisfy
                    continue
                inbox, handler.inbox[:] = list(handler.inbox), []
                for message in inbox:
                    handler.on_message(message)
        finally:
            consuming.release()
            replying.release()

    def versions(self) -> dict[str, str]:
        return {name: importlib.metadata.version(name) for name in ("kombu", "amqp")}
