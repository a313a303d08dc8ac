"""What every contender provides: a client session, a server, and its RabbitMQ leftovers.

A contender is one messaging stack (msgbus on some driver, oslo.messaging, hand-written pika).
Its server side runs :class:`Counter`-backed methods: ``echo(payload)`` returns the payload,
``tick()`` (a cast) counts, ``wait_count(n)`` returns once the count reaches ``n`` (bounded).
"""

from __future__ import annotations

import abc
import asyncio
import importlib
import importlib.metadata
import os
import threading
from collections.abc import Callable
from typing import Any

#: Bound of every single call (seconds).
CALL_TIMEOUT = 30.0
#: Bound of a server-side wait for casts to be processed (seconds); calls waiting on it get more.
COUNT_TIMEOUT = 60.0

RABBIT_HOST = os.environ.get("BENCH_RABBIT_HOST", "127.0.0.1")
RABBIT_PORT = int(os.environ.get("BENCH_RABBIT_PORT", "5672"))


def rabbit_url(scheme: str) -> str:
    """The local broker's URL (guest/guest, vhost /) with ``scheme``."""
    return f"{scheme}://guest:guest@{RABBIT_HOST}:{RABBIT_PORT}/"


class Counter:
    """Counts processed casts; lets a caller wait until a count is reached."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._count = 0

    def tick(self) -> None:
        with self._cond:
            self._count += 1
            self._cond.notify_all()

    def wait_for(self, n: int, timeout: float = COUNT_TIMEOUT) -> int:
        """The count once it is at least ``n``, or whatever it is after ``timeout`` seconds."""
        with self._cond:
            self._cond.wait_for(lambda: self._count >= n, timeout)
            return self._count

    @property
    def value(self) -> int:
        with self._cond:
            return self._count


class Session(abc.ABC):
    """The client side of a contender on one topic; ``echo`` must be thread-safe."""

    @abc.abstractmethod
    def payload(self, size: int) -> Any:
        """A payload of ``size`` bytes in the form this stack sends (str for JSON, else bytes)."""

    @abc.abstractmethod
    def echo(self, payload: Any) -> Any:
        """Call ``echo`` on the topic (any server) and return the reply."""

    @abc.abstractmethod
    def tick(self) -> None:
        """Cast ``tick`` to the topic."""

    @abc.abstractmethod
    def fanout_tick(self) -> None:
        """Cast ``tick`` to every server of the topic."""

    @abc.abstractmethod
    def wait_count(self, n: int, server: str | None = None) -> int:
        """Call ``wait_count(n)`` (on ``server`` if given) and return the server's count."""

    @abc.abstractmethod
    def close(self) -> None:
        """Release connections and private queues."""


class AsyncSession(abc.ABC):
    """The asyncio client side of a contender on one topic, opened and used on one loop."""

    def payload(self, size: int) -> Any:
        """A payload of ``size`` bytes in the form this stack sends."""
        return "x" * size

    @abc.abstractmethod
    async def echo(self, payload: Any) -> Any:
        """Await ``echo`` on the topic (any server) and return the reply."""

    @abc.abstractmethod
    async def close(self) -> None:
        """Release connections and private queues."""


class ServerHandle(abc.ABC):
    """A running server; ``pid`` is its process when it has its own (None: in this process)."""

    name: str
    pid: int | None

    @abc.abstractmethod
    def stop(self) -> None:
        """Stop serving and release everything (bounded)."""


class Contender(abc.ABC):
    """One messaging stack under test."""

    #: Name used on the command line and in the table, e.g. ``msgbus-rabbit``.
    name: str
    #: ``fake`` (in-process, no broker) or ``rabbit`` (the local RabbitMQ).
    group: str
    #: Whether the thread-based scenarios run (through :meth:`open_session`).
    runs_sync: bool = True
    #: Whether the asyncio scenarios run (through :meth:`open_async_session`).
    runs_async: bool = False

    async def open_async_session(self, topic: str) -> AsyncSession:
        """An asyncio client session on ``topic`` (contenders with :attr:`runs_async`)."""
        raise NotImplementedError(f"{self.name} has no asyncio client")

    @abc.abstractmethod
    def unavailable(self) -> str | None:
        """Why this contender cannot run here (e.g. its driver is not installed), or None."""

    @abc.abstractmethod
    def open_session(self, topic: str) -> Session:
        """A client session on ``topic``."""

    @abc.abstractmethod
    def serve(self, topic: str, server: str, ready: Callable[[], None],
              stop: threading.Event) -> None:
        """Serve ``topic`` as ``server`` until ``stop`` is set; call ``ready`` once consuming."""

    @abc.abstractmethod
    def first_call_seconds(self, topic: str) -> float:
        """Seconds from making a fresh transport (connection) to the first reply, then cleanup."""

    @property
    def in_process(self) -> bool:
        """Whether servers must live in the client's process (an in-process fake broker)."""
        return self.group == "fake"

    def leftover_queues(self, topic: str, servers: list[str]) -> list[str]:
        """Queue names on RabbitMQ that this contender may leave behind for ``topic``."""
        return [topic] + [f"{topic}.{server}" for server in servers]

    def leftover_exchanges(self, topic: str) -> list[str]:
        """Exchange names on RabbitMQ that this contender may leave behind for ``topic``."""
        return [f"{topic}_fanout"]

    def versions(self) -> dict[str, str]:
        """Distribution versions that make up this contender."""
        return {}


class AsyncOnlyContender(Contender):
    """A stack with an asyncio API only: it runs the asyncio scenarios, its server is a
    coroutine (:meth:`serve_async`) run on its own loop in the server process."""

    runs_sync = False
    runs_async = True
    #: The module whose import tells whether the stack is installed, and the distributions
    #: whose versions the report shows (the first is named in the "not installed" line).
    module: str
    distributions: tuple[str, ...]

    def unavailable(self) -> str | None:
        try:
            importlib.import_module(self.module)
        except ImportError as exc:
            return f"{self.distributions[0]} not installed (pip install -e '.[bench]'): {exc}"
        return None

    def versions(self) -> dict[str, str]:
        return {name: importlib.metadata.version(name) for name in self.distributions}

    def open_session(self, topic: str) -> Session:
        raise NotImplementedError(f"{self.name} runs the asyncio scenarios only")

    def first_call_seconds(self, topic: str) -> float:
        raise NotImplementedError(f"{self.name} runs the asyncio scenarios only")

    def serve(self, topic: str, server: str, ready: Callable[[], None],
              stop: threading.Event) -> None:
        asyncio.run(self.serve_async(topic, ready, stop))

    @abc.abstractmethod
    async def serve_async(self, topic: str, ready: Callable[[], None],
                          stop: threading.Event) -> None:
        """Serve ``topic`` until ``stop`` is set; call ``ready`` once consuming."""
