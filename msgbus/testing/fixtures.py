"""Pytest fixtures: the ``msgbus_*`` ones for any project's tests, and the suite's own.

Every pytest run with msgbus installed gets the ``msgbus_``-prefixed fixtures (registered by
:mod:`msgbus.testing.plugin`): ``msgbus_url`` (``fake://`` unless ``--msgbus-url`` names a real
broker), ``msgbus_transport``, ``msgbus_notification_transport``, ``msgbus_bus`` and
``msgbus_recorder``. The conformance suite's scenarios use ``bus`` and ``recorder`` on the URL
of the importing module's ``transport_url``; those two reach only modules that import the suite.
See doc/testing.md.
"""

from __future__ import annotations

import contextlib
import threading
import uuid
from typing import Any, Callable, Iterator, Sequence

import pytest

import msgbus
import msgbus.fake
from msgbus.driver.base import Capability, expand_capabilities
from msgbus.rpc.client import RPCClient
from msgbus.rpc.server import RPCServer
from msgbus.transport import Transport

#: Upper bound for any wait in the suite (seconds): generous for a loaded CI machine.
WAIT = 30.0
#: Every topic the suite makes starts with this: a driver's test session may delete the queues
#: left on its broker afterwards (shared topic queues outlive their servers by design).
SUITE_TOPIC_PREFIX = "msgbus-test-"


class Bus:
    """Makes transports, servers and clients for one test, and tears them all down after it."""

    def __init__(self, url: str) -> None:
        self.url = url
        self._servers: list[Any] = []
        self._transports: list[Transport] = []
        self._capabilities: frozenset[Capability] | None = None
        self.test_id = uuid.uuid4().hex[:10]

    def transport(self, **kwargs: Any) -> Transport:
        """A new RPC transport on the suite's URL (closed after the test)."""
        transport = msgbus.get_rpc_transport(url=kwargs.pop("url", self.url), **kwargs)
        self._transports.append(transport)
        return transport

    def notification_transport(self, **kwargs: Any) -> Transport:
        """A new notification transport on the suite's URL (closed after the test)."""
        from msgbus.notify import get_notification_transport
        transport = get_notification_transport(url=kwargs.pop("url", self.url), **kwargs)
        self._transports.append(transport)
        return transport

    @property
    def scheme(self) -> str:
        """The URL scheme: which driver the suite runs on."""
        return self.url.split(":", 1)[0]

    @property
    def capabilities(self) -> frozenset[Capability]:
        """What the driver declares, with the old STORE_AND_FORWARD read as both kinds of
        store-and-forward (:func:`msgbus.driver.base.expand_capabilities`)."""
        if self._capabilities is None:
            self._capabilities = expand_capabilities(frozenset(self.transport().capabilities))
        return self._capabilities

    def topic(self, name: str = "topic") -> str:
        """A topic name unique to this test, so tests never see each other's messages."""
        return f"{SUITE_TOPIC_PREFIX}{name}-{self.test_id}"

    def server(self, topic: str, endpoints: Sequence[Any], server: str = "server1",
               transport: Transport | None = None, start: bool = True,
               **kwargs: Any) -> RPCServer:
        """An RPC server for ``endpoints`` on ``topic``, started unless ``start=False``."""
        srv = msgbus.get_rpc_server(transport or self.transport(),
                                    msgbus.Target(topic=topic, server=server), endpoints, **kwargs)
        self._servers.append(srv)
        if start:
            srv.start()
        return srv

    def client(self, topic: str, transport: Transport | None = None,
               **kwargs: Any) -> RPCClient:
        """An RPC client for ``topic`` with a default timeout of :data:`WAIT` seconds."""
        kwargs.setdefault("timeout", WAIT)
        target = msgbus.Target(topic=topic, **{k: kwargs.pop(k) for k in
                                               ("exchange", "namespace", "version", "server",
                                                "fanout") if k in kwargs})
        return msgbus.get_rpc_client(transport or self.transport(), target, **kwargs)

    def track(self, server: Any) -> Any:
        """Stop and wait ``server`` (any MessageHandlingServer) after the test."""
        self._servers.append(server)
        return server

    def close(self) -> None:
        for srv in reversed(self._servers):
            srv.stop()
        for srv in reversed(self._servers):
            srv.wait()
        for transport in reversed(self._transports):
            transport.cleanup()


class Recorder:
    """Collects events from endpoints and lets a test wait for a condition on them."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self.events: list[Any] = []

    def add(self, event: Any) -> None:
        with self._cond:
            self.events.append(event)
            self._cond.notify_all()

    def wait_for(self, predicate: Callable[[list[Any]], bool], timeout: float = WAIT) -> bool:
        """Wait until ``predicate(events)`` holds; False if it did not within ``timeout``."""
        with self._cond:
            return self._cond.wait_for(lambda: predicate(self.events), timeout)

    def wait_count(self, n: int, timeout: float = WAIT) -> list[Any]:
        """Wait for at least ``n`` events and return a copy; fails the test on timeout."""
        if not self.wait_for(lambda events: len(events) >= n, timeout):
            pytest.fail(f"expected {n} events within {timeout}s, got {len(self.events)}: "
                        f"{self.events[:10]!r}")
        with self._cond:
            return list(self.events)


def check_driver_installed(url: str) -> None:
    """End the pytest session with one message when ``url``'s driver cannot be loaded (not
    installed, or broken): every test on it would fail the same way."""
    from msgbus.driver import loader
    from msgbus.exceptions import DriverLoadFailure
    scheme = url.split(":", 1)[0]
    try:
        loader.load_driver_class(scheme)
    except DriverLoadFailure as exc:
        pytest.exit(f"msgbus: cannot run tests on {scheme}://: {exc}",
                    returncode=pytest.ExitCode.USAGE_ERROR)


@contextlib.contextmanager
def _bus_on(url: str) -> Iterator[Bus]:
    check_driver_installed(url)
    b = Bus(url)
    try:
        yield b
    finally:
        b.close()
        if url.startswith("fake:"):
            msgbus.fake.reset()


# The suite's own fixtures: not registered for every test run; the plugin makes them visible in
# modules that import the suite's scenarios (see msgbus.testing.plugin).
@pytest.fixture
def bus(transport_url: str) -> Iterator[Bus]:
    """Transports, servers and clients on ``transport_url`` for one test, cleaned up after it."""
    with _bus_on(transport_url) as b:
        yield b


@pytest.fixture
def recorder() -> Recorder:
    """A fresh :class:`Recorder` for one test."""
    return Recorder()


# The fixtures of every pytest run (registered by msgbus.testing.plugin).
@pytest.fixture(scope="session")
def msgbus_url(pytestconfig: pytest.Config) -> str:
    """The transport URL of the msgbus fixtures: ``fake://`` unless ``--msgbus-url URL`` (or the
    ``msgbus_url`` ini option) names another, to run the same tests on a real broker."""
    return str(pytestconfig.getoption("msgbus_url", None) or
               pytestconfig.getini("msgbus_url") or "fake://")


@pytest.fixture
def msgbus_bus(msgbus_url: str) -> Iterator[Bus]:
    """A :class:`Bus` on :func:`msgbus_url`: transports, servers and clients on topics unique to
    the test, all stopped and closed after it (and fake:// brokers emptied)."""
    with _bus_on(msgbus_url) as b:
        yield b


@pytest.fixture
def msgbus_transport(msgbus_bus: Bus) -> Transport:
    """An RPC transport on :func:`msgbus_url`, closed after the test."""
    return msgbus_bus.transport()


@pytest.fixture
def msgbus_notification_transport(msgbus_bus: Bus) -> Transport:
    """A notification transport on :func:`msgbus_url`, closed after the test."""
    return msgbus_bus.notification_transport()


@pytest.fixture
def msgbus_recorder() -> Recorder:
    """A fresh :class:`Recorder`: endpoints ``add()`` events, the test waits for them."""
    return Recorder()


def require(bus: Bus, capability: Capability) -> None:
    """Mark the running test as not applicable (a visible xfail) without ``capability``.

    A driver declaring the old ``STORE_AND_FORWARD`` has both ``RPC_STORE_AND_FORWARD`` and
    ``NOTIFY_STORE_AND_FORWARD`` here.
    """
    if capability not in bus.capabilities:
        pytest.xfail(f"driver for {bus.scheme}:// does not declare capability "
                     f"{capability.value!r}")
