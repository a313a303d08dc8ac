"""The fault fixture: what a driver's test module provides, as ``fault_injector``, so that the
fault scenarios of the conformance suite (:mod:`msgbus.testing.suite.faults`) run on its broker.

A driver that declares :attr:`~msgbus.driver.base.Capability.RECONNECT` must provide one (the
recovery scenarios then fail, never skip, without it); any driver may provide one to run the
deadline scenarios (a call or a server start against a broker that is down). The scenarios use
the injector from one thread at a time and call :meth:`FaultInjector.heal` after each scenario,
so a session-scoped injector (one broker per test session) is the fast choice.

:class:`msgbus.testing.rabbit_faults.RabbitFaultInjector` is the implementation for AMQP drivers
on RabbitMQ. Another broker's needs four things: a way to close every client connection, to
stall the network path, to stop the broker (so it refuses connections) and to start it again.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

__all__ = ["FaultInjector"]


@runtime_checkable
class FaultInjector(Protocol):
    """Breaks the broker (or the path to it) under a running driver, and mends it."""

    @property
    def url(self) -> str:
        """The transport URL the fault scenarios use: every connection made with it must be
        subject to the faults below. It carries no options: the scenarios hold the driver to
        its contract with its DEFAULT settings (they set core options such as
        ``listen_timeout`` themselves where a scenario is about them)."""
        ...

    def drop_connections(self) -> int:
        """Close every client connection at once (the broker stays up and accepts new ones).

        Returns how many connections were open; the scenarios fail when it is 0 (an injector
        that drops nothing would make them pass for nothing).
        """
        ...

    def freeze(self) -> None:
        """Stall the network path: from now on nothing travels either way on current or new
        connections, and nobody is told (no close, no reset), until :meth:`thaw`."""
        ...

    def thaw(self) -> None:
        """End :meth:`freeze`: what was stalled flows again."""
        ...

    def stop(self) -> None:
        """Stop the broker: every connection drops and new ones are refused until
        :meth:`start`. What is in its non-durable queues is lost, as in a real restart."""
        ...

    def start(self) -> float:
        """Start the broker again and return as soon as it accepts connections.

        Returns the :func:`time.monotonic` instant at which it did (the scenarios measure
        recovery from there), as exactly as the injector can tell.
        """
        ...

    def heal(self) -> None:
        """Undo whatever fault is still in effect (thaw, start the broker if it is stopped) and
        return once the broker serves: called after every scenario, passed or failed."""
        ...

