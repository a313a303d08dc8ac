"""Deliberately broken drivers (and one correct one to compare with), made from fake://, for
checking that the conformance suite catches what it claims to.

They are registered under test-only URL schemes by :func:`register`, which replaces the driver
loader for the duration of a test (no entry point is installed).
"""

from __future__ import annotations

import threading
from typing import Any, Sequence

import pytest

from msgbus.driver import loader
from msgbus.driver.base import Capability, Listener, OnMessage
from msgbus.fake.broker import FakeMessage
from msgbus.fake.driver import FakeDriver
from msgbus.target import Target


class Delivery:
    """A fake broker delivery handed on as is: what a correct driver does."""

    def __init__(self, message: FakeMessage) -> None:
        self.body = message.body
        self.message = message

    def ack(self) -> None:
        self.message.ack()

    def requeue(self) -> None:
        self.message.requeue()


class WrappingFakeDriver(FakeDriver):
    """fake:// whose deliveries reach the callback through :attr:`delivery_class`. The fake
    broker gives a delivery that was neither acknowledged nor requeued back to its queue when
    the driver that received it closes (as AMQP does when a channel closes), so with the plain
    :class:`Delivery` this is a correct driver: it passes the driver-level scenarios."""

    delivery_class: type[Delivery] = Delivery

    def _wrapping(self, on_message: OnMessage) -> Any:
        def deliver(message: FakeMessage) -> None:
            on_message(self.delivery_class(message))
        return deliver

    def listen(self, target: Target, on_message: OnMessage, *,
               deadline: float | None = None) -> Listener:
        return super().listen(target, self._wrapping(on_message), deadline=deadline)

    def listen_for_notifications(self, targets: Sequence[Target], pool: str | None,
                                 on_message: OnMessage, *,
                                 deadline: float | None = None) -> Listener:
        return super().listen_for_notifications(targets, pool, self._wrapping(on_message),
                                                deadline=deadline)


class NoopAckDelivery(Delivery):
    def ack(self) -> None:
        """Broken on purpose: the broker never hears of it."""


class NoopAckDriver(WrappingFakeDriver):
    """``ack()`` does nothing: the delivery comes back when the driver closes."""

    delivery_class = NoopAckDelivery


class NoopRequeueDelivery(Delivery):
    def requeue(self) -> None:
        """Broken on purpose: the message is not given back."""


class NoopRequeueDriver(WrappingFakeDriver):
    """``requeue()`` does nothing, although the driver declares REQUEUE."""

    delivery_class = NoopRequeueDelivery


class DeferredListener(Listener):
    """A listener that binds and consumes a moment after it was returned."""

    def __init__(self, start: Any, delay: float) -> None:
        self._inner: Listener | None = None
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(start, delay), daemon=True)
        self._thread.start()

    def _run(self, start: Any, delay: float) -> None:
        if not self._stopped.wait(delay):
            self._inner = start()

    def stop(self) -> None:
        self._stopped.set()
        self._thread.join()
        if self._inner is not None:
            self._inner.stop()


class EarlyListenDriver(FakeDriver):
    """``listen`` returns before its queues exist: it declares and consumes in a thread."""

    delay = 0.2

    def listen(self, target: Target, on_message: OnMessage, *,
               deadline: float | None = None) -> Listener:
        return DeferredListener(
            lambda: FakeDriver.listen(self, target, on_message, deadline=deadline), self.delay)


class ReconnectingFakeDriver(FakeDriver):
    """Declares RECONNECT (its test module then owes the suite a ``fault_injector``)."""

    capabilities = FakeDriver.capabilities | {Capability.RECONNECT}


class OldStoreAndForwardDriver(FakeDriver):
    """Declares store-and-forward the old way (one flag for both kinds)."""

    capabilities = frozenset({Capability.REQUEUE, Capability.STORE_AND_FORWARD,
                              Capability.MANDATORY})


class NotifyOnlyStoreAndForwardDriver(FakeDriver):
    """Durable notifications, RPC without store-and-forward (the NATS core + JetStream case)."""

    capabilities = frozenset({Capability.REQUEUE, Capability.NOTIFY_STORE_AND_FORWARD,
                              Capability.MANDATORY})


#: The test-only URL schemes.
DRIVERS: dict[str, type[FakeDriver]] = {
    "settling": WrappingFakeDriver,
    "noopack": NoopAckDriver,
    "nooprequeue": NoopRequeueDriver,
    "earlylisten": EarlyListenDriver,
    "reconnecting": ReconnectingFakeDriver,
    "oldsaf": OldStoreAndForwardDriver,
    "notifysaf": NotifyOnlyStoreAndForwardDriver,
}


def register(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make the schemes of :data:`DRIVERS` load their classes (until the test ends)."""
    original = loader.load_driver_class

    def load_driver_class(name: str) -> Any:
        cls = DRIVERS.get(name)
        if cls is None:
            return original(name)
        loader.check_driver_class(cls, name)
        return cls

    monkeypatch.setattr(loader, "load_driver_class", load_driver_class)
    import msgbus.transport
    monkeypatch.setattr(msgbus.transport, "load_driver_class", load_driver_class, raising=False)
