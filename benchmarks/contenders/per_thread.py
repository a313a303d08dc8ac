"""What the hand-written contenders (raw pika, raw kombu) share: a client session with one
connection per calling thread, and the server's handling of requests.

Their connections are not thread-safe, so each calling thread gets its own :class:`Caller`; the
session closes them all. :class:`CountingServer` is the server side minus the library: echo,
count ticks, answer ``wait_count`` once enough ticks came or at its deadline.
"""

from __future__ import annotations

import importlib
import threading
import time
from collections.abc import Callable
from typing import Any, Protocol

from benchmarks.contenders.base import CALL_TIMEOUT, COUNT_TIMEOUT, Contender, Session


class Caller(Protocol):
    """One connection with its reply queue, used by one thread."""

    def publish(self, routing_key: str, kind: str, body: bytes, exchange: str = "",
                reply: bool = False) -> str: ...

    def call(self, routing_key: str, kind: str, body: bytes,
             timeout: float = CALL_TIMEOUT) -> bytes: ...

    def close(self) -> None: ...


class PerThreadSession(Session):
    """Calls ``make_caller()`` once per calling thread; every caller is closed with it."""

    def __init__(self, topic: str, make_caller: Callable[[], Caller]) -> None:
        self._topic = topic
        self._make_caller = make_caller
        self._local = threading.local()
        self._lock = threading.Lock()
        self._callers: list[Caller] = []

    def _caller(self) -> Caller:
        caller = getattr(self._local, "caller", None)
        if caller is None:
            caller = self._make_caller()
            self._local.caller = caller
            with self._lock:
                self._callers.append(caller)
        return caller

    def payload(self, size: int) -> bytes:
        return b"x" * size

    def echo(self, payload: Any) -> Any:
        return self._caller().call(self._topic, "echo", payload)

    def tick(self) -> None:
        self._caller().publish(self._topic, "tick", b"")

    def fanout_tick(self) -> None:
        self._caller().publish("", "tick", b"", exchange=f"{self._topic}_fanout")

    def wait_count(self, n: int, server: str | None = None) -> int:
        key = f"{self._topic}.{server}" if server else self._topic
        return int(self._caller().call(key, "wait_count", str(n).encode(),
                                       timeout=COUNT_TIMEOUT + CALL_TIMEOUT))

    def close(self) -> None:
        with self._lock:
            callers, self._callers = self._callers, []
        for caller in callers:
            caller.close()


class CountingServer:
    """Echo, count, and deferred answers to ``wait_count``; a subclass sends the replies."""

    def __init__(self) -> None:
        self._count = 0
        # wait_count requests not satisfied yet: (n, reply_to, correlation_id, deadline)
        self._waiting: list[tuple[int, str, str, float]] = []

    def reply(self, reply_to: str, correlation: str, body: bytes) -> None:
        raise NotImplementedError

    @property
    def waiting(self) -> bool:
        """Whether a ``wait_count`` is still unanswered."""
        return bool(self._waiting)

    def answer_waiters(self) -> None:
        """Answer the ``wait_count`` requests that enough ticks satisfy or whose time is up."""
        now = time.monotonic()
        keep = []
        for n, reply_to, correlation, deadline in self._waiting:
            if self._count >= n or now >= deadline:
                self.reply(reply_to, correlation, str(self._count).encode())
            else:
                keep.append((n, reply_to, correlation, deadline))
        self._waiting = keep

    def handle(self, kind: str | None, body: bytes, reply_to: Any, correlation: Any) -> None:
        """One request: ``kind`` is its AMQP ``type`` property; ``reply_to`` and
        ``correlation`` its properties of those names (absent on a tick)."""
        if kind == "echo":
            self.reply(reply_to, correlation, body)
        elif kind == "tick":
            self._count += 1
            if self._waiting:
                self.answer_waiters()
        elif kind == "wait_count":
            # casts may sit in another queue (fanout): answer once they are all counted
            self._waiting.append((int(body), reply_to, correlation,
                                  time.monotonic() + COUNT_TIMEOUT))
            self.answer_waiters()


class HandWrittenContender(Contender):
    """A hand-written client on one library: a :class:`PerThreadSession` of ``make_caller``
    callers; the first call is timed on a new caller (a new connection)."""

    group = "rabbit"
    #: The library module whose import tells whether it is installed.
    module: str

    def make_caller(self) -> Caller:
        raise NotImplementedError

    def unavailable(self) -> str | None:
        try:
            importlib.import_module(self.module)
        except ImportError as exc:
            return str(exc)
        return None

    def open_session(self, topic: str) -> Session:
        return PerThreadSession(topic, self.make_caller)

    def first_call_seconds(self, topic: str) -> float:
        start = time.perf_counter()
        caller = self.make_caller()
        try:
            caller.call(topic, "echo", b"x")
            return time.perf_counter() - start
        finally:
            caller.close()
