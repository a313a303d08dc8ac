"""Pieces for a broker driver's own tests, beyond the conformance suite.

Fault, interop and bad-input tests of a driver need the same few things: a cleanup stack that
owns the transports and servers a test made, small endpoints, and a capture of log records to
assert that a problem was logged. Our AMQP drivers' tests use these; a third-party driver's may.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

from oslo_config import cfg

import msgbus
from msgbus.testing.fixtures import Recorder

__all__ = ["Closer", "Echo", "InteropEndpoint", "InteropError", "LogCapture", "capture_logs",
           "cast_through_cuts", "check_oversized_refused"]


class Closer:
    """Servers and transports a test made; stopped and closed after it, in reverse order.

    ``url`` is the default transport URL and ``make_conf`` builds a fresh ConfigOpts for each
    transport that is not given one.
    """

    def __init__(self, url: str, make_conf: Callable[[], cfg.ConfigOpts]) -> None:
        self.url = url
        self._make_conf = make_conf
        self._items: list[Callable[[], None]] = []

    def transport(self, url: str | None = None, conf: cfg.ConfigOpts | None = None,
                  **kwargs: Any) -> msgbus.Transport:
        """A new RPC transport (on ``url``, default the closer's), closed after the test."""
        transport = msgbus.get_rpc_transport(conf or self._make_conf(), url=url or self.url,
                                             **kwargs)
        self._items.append(transport.cleanup)
        return transport

    def server(self, transport: msgbus.Transport, topic: str, endpoints: list[Any],
               server: str = "s1", start: bool = True, **kwargs: Any) -> msgbus.RPCServer:
        """An RPC server on ``topic``/``server`` (started unless told not to), stopped after."""
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
        """Run ``fn()`` at cleanup (before what was added earlier)."""
        self._items.append(fn)

    def close(self) -> None:
        """Run every cleanup, newest first; all run, the first error is raised."""
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
    """A small endpoint: echo, say who it is, record casts, fail on request."""

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

    def grow(self, ctxt: Any, size: int) -> str:
        """A result of ``size`` bytes (for replies larger than a broker accepts)."""
        return "x" * size

    def wait_seen(self, predicate: Callable[[list[Any]], bool], timeout: float = 30.0) -> bool:
        """Wait until ``predicate(seen)`` holds; False if it did not within ``timeout``."""
        with self._cond:
            return self._cond.wait_for(lambda: predicate(self.seen), timeout)


def cast_through_cuts(client: msgbus.RPCClient, echo: Echo, cut: Callable[[], Any],
                      count: int = 600, every: int = 150) -> None:
    """Cast ``0..count-1`` to ``echo.note``, calling ``cut()`` (drop the connections) every
    ``every`` casts, then assert that each value arrived exactly once."""
    for i in range(count):
        client.cast({}, "note", value=i)
        if i % every == every // 2:
            cut()
    assert echo.wait_seen(lambda seen: len(set(seen)) >= count, timeout=60), \
        f"{count - len(set(echo.seen))} of {count} casts never arrived"
    assert sorted(echo.seen) == list(range(count)), "some casts arrived twice"


def check_oversized_refused(client: msgbus.RPCClient, echo: Echo, limit: int) -> None:
    """On a broker whose ``max_message_size`` is ``limit``: a cast and a call of a larger body
    raise MessageDeliveryFailure with the broker's reason, a larger reply comes back as a
    MessageDeliveryFailure too, and the transport goes on working. ``echo`` serves the topic."""
    big = "x" * (2 * limit)
    for send in (client.cast, client.call):
        try:
            send({}, "note", value=big)
        except msgbus.MessageDeliveryFailure as exc:
            assert "larger than" in str(exc), f"the broker's reason is missing: {exc}"
        else:
            raise AssertionError(f"{send.__name__} of {len(big)} bytes was not refused")
    # a reply the broker refuses reaches the caller as an error at once, not as a timeout
    start = time.monotonic()
    try:
        client.call({}, "grow", size=2 * limit)
    except msgbus.MessageDeliveryFailure as exc:
        assert "could not send its reply" in str(exc), exc
    else:
        raise AssertionError(f"a reply of {2 * limit} bytes was not refused")
    took = time.monotonic() - start
    assert took < 5.0, f"the refused reply took {took:.1f}s to be reported"
    assert client.call({}, "echo", value="small") == "small"
    client.cast({}, "note", value="after")
    assert echo.wait_seen(lambda seen: "after" in seen)
    assert big not in echo.seen


class InteropError(Exception):
    """An application error that both sides of an interop test allow to be rebuilt."""


class InteropEndpoint:
    """The same RPC endpoint on every side of an interop test; casts recorded as (name, value)."""

    def __init__(self, name: str, recorder: Recorder | None = None) -> None:
        self.name = name
        self.recorder = recorder or Recorder()

    def echo(self, ctxt: Any, value: Any) -> Any:
        return value

    def whoami(self, ctxt: Any) -> str:
        return self.name

    def context(self, ctxt: Any) -> Any:
        return ctxt

    def note(self, ctxt: Any, value: Any) -> None:
        self.recorder.add((self.name, value))

    def fail_interop(self, ctxt: Any, message: str) -> None:
        raise InteropError(message)

    def fail(self, ctxt: Any, message: str) -> None:
        raise ValueError(message)


class LogCapture(logging.Handler):
    """Collects log records (for asserting that a problem was logged)."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []
        self._cond = threading.Condition()

    def emit(self, record: logging.LogRecord) -> None:
        with self._cond:
            self.records.append(record)
            self._cond.notify_all()

    def messages(self, level: int = logging.DEBUG) -> list[str]:
        """The messages of the records at ``level`` or above, oldest first."""
        with self._cond:
            return [r.getMessage() for r in self.records if r.levelno >= level]

    def wait_for(self, text: str, level: int = logging.DEBUG, timeout: float = 30.0) -> bool:
        """Wait for a record at ``level`` or above whose message contains ``text``."""
        with self._cond:
            return self._cond.wait_for(
                lambda: any(text in r.getMessage() for r in self.records if r.levelno >= level),
                timeout)


@contextlib.contextmanager
def capture_logs() -> Iterator[LogCapture]:
    """Every log record emitted inside the block, at any level (the root logger's level is
    lowered to DEBUG meanwhile and restored after)."""
    handler = LogCapture()
    root = logging.getLogger()
    old_level = root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    try:
        yield handler
    finally:
        root.removeHandler(handler)
        root.setLevel(old_level)
