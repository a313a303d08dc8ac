"""Helpers of the rabbit:// driver tests: configuration, cleanup, endpoints, log capture."""

from __future__ import annotations

import logging
import threading
import uuid
from collections.abc import Callable, Sequence
from typing import Any

from oslo_config import cfg

import msgbus

HOST, PORT = "127.0.0.1", 5672
RABBIT_URL = f"rabbit://guest:guest@{HOST}:{PORT}/"
#: Options that make reconnects quick in tests (the defaults wait seconds between tries).
FAST_RECONNECT = {"rabbit_retry_interval": 0.05, "rabbit_retry_backoff": 0.05,
                  "rabbit_interval_max": 0.3}


def make_conf(**overrides: Any) -> cfg.ConfigOpts:
    """A fresh ConfigOpts with the driver's options registered and ``overrides`` set."""
    from msgbus import options as core_options
    from msgbus_kombu.options import GROUP, register_opts
    conf = core_options.new_conf()
    register_opts(conf)
    for key, value in overrides.items():
        conf.set_override(key, value, group=GROUP)
    return conf


#: Every topic these tests make starts with this (the session deletes their queues at the end).
TOPIC_PREFIX = "msgbus-kombu-"


def unique(name: str) -> str:
    """A topic name no other test (or test run) uses."""
    return f"{TOPIC_PREFIX}{name}-{uuid.uuid4().hex[:10]}"


class Closer:
    """Servers and transports a test made; stopped and closed after it, in reverse order."""

    def __init__(self) -> None:
        self._items: list[Callable[[], None]] = []

    def transport(self, url: str = RABBIT_URL, conf: cfg.ConfigOpts | None = None,
                  **kwargs: Any) -> msgbus.Transport:
        transport = msgbus.get_rpc_transport(conf or make_conf(), url=url, **kwargs)
        self._items.append(transport.cleanup)
        return transport

    def server(self, transport: msgbus.Transport, topic: str, endpoints: list[Any],
               server: str = "s1", start: bool = True, **kwargs: Any) -> msgbus.RPCServer:
        srv = msgbus.get_rpc_server(transport, msgbus.Target(topic=topic, server=server),
                                    endpoints, **kwargs)

        def stop() -> None:
            srv.stop()
            srv.wait()
        self._items.append(stop)
        if start:
            srv.start()
        return srv

    def add(self, fn: Callable[[], None]) -> None:
        self._items.append(fn)

    def close(self) -> None:
        errors = []
        for fn in reversed(self._items):
            try:
                fn()
            except Exception as exc:  # noqa: BLE001 - all cleanups run, the first error is raised
                errors.append(exc)
        self._items.clear()
        if errors:
            raise errors[0]


class Echo:
    """A small endpoint: echo, count casts, and fail on request."""

    def __init__(self, name: str = "echo") -> None:
        self.name = name
        self.seen: list[Any] = []
        self._cond = threading.Condition()

    def echo(self, ctxt: Any, value: Any) -> Any:
        return value

    def whoami(self, ctxt: Any) -> str:
        return self.name

    def note(self, ctxt: Any, value: Any) -> None:
        with self._cond:
            self.seen.append(value)
            self._cond.notify_all()

    def fail(self, ctxt: Any, message: str) -> None:
        raise ValueError(message)

    def wait_seen(self, predicate: Callable[[list[Any]], bool], timeout: float = 30.0) -> bool:
        with self._cond:
            return self._cond.wait_for(lambda: predicate(self.seen), timeout)


class LogCapture(logging.Handler):
    """Collects log records of some loggers (for asserting that a problem was logged)."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []
        self._cond = threading.Condition()

    def emit(self, record: logging.LogRecord) -> None:
        with self._cond:
            self.records.append(record)
            self._cond.notify_all()

    def messages(self, level: int = logging.DEBUG) -> list[str]:
        with self._cond:
            return [r.getMessage() for r in self.records if r.levelno >= level]

    def wait_for(self, text: str, level: int = logging.DEBUG, timeout: float = 30.0) -> bool:
        with self._cond:
            return self._cond.wait_for(
                lambda: any(text in r.getMessage() for r in self.records if r.levelno >= level),
                timeout)


class InteropError(Exception):
    """An application error both sides allow to be rebuilt (its module is allowed)."""


def delete_entities(queues: Sequence[str] = (), exchanges: Sequence[str] = ()) -> None:
    """Delete queues and exchanges on the shared broker (e.g. durable ones a test made)."""
    import amqp
    conn = amqp.Connection(f"{HOST}:{PORT}", userid="guest", password="guest")
    conn.connect()
    try:
        channel = conn.channel()
        for name in queues:
            channel.queue_delete(name)
        for name in exchanges:
            channel.exchange_delete(name)
    finally:
        conn.close()
