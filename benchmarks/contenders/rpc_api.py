"""Contenders that speak oslo.messaging's public API: msgbus and oslo.messaging itself.

Both offer ``get_rpc_transport``, ``Target``, ``get_rpc_client`` and ``get_rpc_server`` with the
same meaning, so one session and one server serve both; a subclass says how to make a transport.
"""

from __future__ import annotations

import abc
import threading
import time
from collections.abc import Callable
from types import ModuleType
from typing import Any

from benchmarks.contenders.base import (
    CALL_TIMEOUT,
    COUNT_TIMEOUT,
    Contender,
    Counter,
    Session,
)


class BenchEndpoint:
    """The RPC endpoint every server of these contenders exposes."""

    def __init__(self) -> None:
        self._counter = Counter()

    def echo(self, ctxt: Any, payload: Any) -> Any:
        return payload

    def tick(self, ctxt: Any) -> None:
        self._counter.tick()

    def wait_count(self, ctxt: Any, n: int) -> int:
        return self._counter.wait_for(n)


class RpcApiSession(Session):
    """One transport and one client on a topic, shared by every calling thread."""

    def __init__(self, contender: RpcApiContender, topic: str) -> None:
        lib = contender.library()
        self._contender = contender
        self._transport = contender.make_transport()
        self._client = lib.get_rpc_client(self._transport, lib.Target(topic=topic),
                                          timeout=CALL_TIMEOUT)
        self._fanout = self._client.prepare(fanout=True)
        self._waits: dict[str | None, Any] = {}
        self._lib = lib

    def payload(self, size: int) -> str:
        return "x" * size

    def echo(self, payload: Any) -> Any:
        return self._client.call({}, "echo", payload=payload)

    def tick(self) -> None:
        self._client.cast({}, "tick")

    def fanout_tick(self) -> None:
        self._fanout.cast({}, "tick")

    def wait_count(self, n: int, server: str | None = None) -> int:
        ctx = self._waits.get(server)
        if ctx is None:
            ctx = self._client.prepare(server=server, timeout=COUNT_TIMEOUT + CALL_TIMEOUT)
            self._waits[server] = ctx
        return int(ctx.call({}, "wait_count", n=n))

    def close(self) -> None:
        self._contender.note_reply_queue(self._transport)
        self._transport.cleanup()


class RpcApiContender(Contender):
    """A contender built on a library with oslo.messaging's RPC API."""

    def __init__(self, name: str, group: str, url: str) -> None:
        self.name = name
        self.group = group
        self.url = url
        self._reply_queues: list[str] = []

    @abc.abstractmethod
    def library(self) -> ModuleType:
        """The library module (``msgbus`` or ``oslo_messaging``)."""

    @abc.abstractmethod
    def make_transport(self) -> Any:
        """A new RPC transport on :attr:`url`."""

    def reply_queue_of(self, transport: Any) -> str | None:
        """The RabbitMQ reply queue a transport made, if it leaves it behind (else None)."""
        return None

    def note_reply_queue(self, transport: Any) -> None:
        name = self.reply_queue_of(transport)
        if name:
            self._reply_queues.append(name)

    def leftover_queues(self, topic: str, servers: list[str]) -> list[str]:
        return super().leftover_queues(topic, servers) + self._reply_queues

    def open_session(self, topic: str) -> Session:
        return RpcApiSession(self, topic)

    def serve(self, topic: str, server: str, ready: Callable[[], None],
              stop: threading.Event) -> None:
        lib = self.library()
        transport = self.make_transport()
        try:
            rpc_server = lib.get_rpc_server(transport, lib.Target(topic=topic, server=server),
                                            [BenchEndpoint()], executor="threading")
            rpc_server.start()
            try:
                ready()
                stop.wait()
            finally:
                rpc_server.stop()
                rpc_server.wait()
        finally:
            transport.cleanup()

    def first_call_seconds(self, topic: str) -> float:
        lib = self.library()
        start = time.perf_counter()
        transport = self.make_transport()
        try:
            client = lib.get_rpc_client(transport, lib.Target(topic=topic), timeout=CALL_TIMEOUT)
            client.call({}, "echo", payload="x")
            return time.perf_counter() - start
        finally:
            self.note_reply_queue(transport)
            transport.cleanup()
