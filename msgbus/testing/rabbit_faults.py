"""The conformance suite's fault fixture for AMQP drivers on RabbitMQ.

:class:`RabbitFaultInjector` implements :class:`msgbus.testing.fault_injector.FaultInjector` on a
private node (:func:`msgbus.testing.rabbitmq.private_rabbit_node`: never the shared broker on
5672) behind a :class:`~msgbus.testing.rabbitmq.TcpProxy`, through which every connection of the
scenarios goes. A driver's test module provides it like this (one node per test session)::

    import pytest
    from msgbus.testing.rabbit_faults import rabbit_fault_injector
    from msgbus.testing.suite import *  # noqa: F401,F403

    @pytest.fixture(scope="session")
    def fault_injector():
        with rabbit_fault_injector("myscheme") as injector:
            yield injector

What each fault is here:

* ``drop_connections``: the broker closes every client connection (``rabbitmqctl
  close_all_connections``, an AMQP ``connection.close`` with CONNECTION_FORCED) on odd calls, and
  the proxy resets every TCP connection (both sides see a reset, nothing is said) on even ones;
* ``freeze``/``thaw``: the proxy stalls every connection, current and new, then lets them flow
  again (the bytes wait, nothing is lost; the broker's heartbeat timeout, 60 s by default, is
  far longer than the scenarios' freezes, so the broker closes nothing meanwhile);
* ``stop``/``start``: ``rabbitmqctl stop_app``/``start_app`` (non-durable queues and their
  messages are gone after it, as after a broker restart); ``start`` returns the moment the node
  answers the AMQP protocol header again (tried every 10 ms), not when ``rabbitmqctl`` exits.
"""

from __future__ import annotations

import contextlib
import subprocess
import threading
import time
from collections.abc import Iterator

from msgbus.testing.rabbitmq import (CTL_TIMEOUT, BrokerToolError, RabbitNode, TcpProxy,
                                     private_rabbit_node, wait_for_broker)

__all__ = ["RabbitFaultInjector", "rabbit_fault_injector"]

#: How often ``start`` tries whether the node accepts connections again (seconds).
START_POLL = 0.01


class RabbitFaultInjector:
    """Faults on a private RabbitMQ node behind a proxy (see the module docstring).

    ``scheme`` is the driver's URL scheme (``rabbit``, ``pika``, ...). The injector does not own
    the node: :func:`rabbit_fault_injector` makes one, or pass a node a session already runs.
    Call :meth:`close` (or use it as a context manager) to stop the proxy.
    """

    def __init__(self, node: RabbitNode, scheme: str = "rabbit") -> None:
        self.node = node
        self.scheme = scheme
        self.proxy = TcpProxy(node.port, node.host)
        self._lock = threading.Lock()
        self._drops = 0
        self._stopped = False
        self._starting: subprocess.Popen[str] | None = None

    @property
    def url(self) -> str:
        """``<scheme>://guest:guest@127.0.0.1:<proxy port>/``: no options."""
        return self.proxy.url_for(self.scheme)

    def drop_connections(self) -> int:
        """Close every client connection: from the broker on odd calls, by a TCP reset on even
        ones. Returns how many connections were open through the proxy."""
        self._settle()
        with self._lock:
            self._drops += 1
            from_broker = self._drops % 2 == 1
        open_now = self.proxy.active
        if from_broker:
            self.node.close_all_connections("msgbus fault injector: connections dropped")
        else:
            self.proxy.drop_all()
        return open_now

    def freeze(self) -> None:
        """Stall every connection through the proxy, current and new (see TcpProxy.pause)."""
        self.proxy.pause()

    def thaw(self) -> None:
        self.proxy.resume()

    def stop(self) -> None:
        """``rabbitmqctl stop_app``: every connection drops, new ones are refused."""
        self._settle()
        self.node.stop_app()
        self._stopped = True
        # Connections the node's shutdown left half-open on the proxy's side go too.
        self.proxy.drop_all()

    def start(self, timeout: float = 60.0) -> float:
        """Start the node's application; returns the monotonic instant it answered AMQP again.

        ``rabbitmqctl start_app`` keeps running for a moment after the node's listener is up;
        it is waited for later (by the next fault or :meth:`heal`), so that the instant returned
        is when clients could connect, not when the tool exited.
        """
        self._settle()
        self._starting = subprocess.Popen(  # noqa: S603 - fixed argument list
            ["rabbitmqctl", "-n", self.node.name, "-q", "start_app"], stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            wait_for_broker(self.node.host, self.node.port, timeout, interval=START_POLL)
        except BrokerToolError as exc:
            self._settle()
            raise BrokerToolError(f"{exc}; node log tail:\n{self.node.log_tail()}") from None
        back = time.monotonic()
        self._stopped = False
        return back

    def heal(self) -> None:
        """Thaw, accept connections, start the node if it is not serving; returns once it is."""
        self.proxy.resume()
        self.proxy.accepting = True
        self._settle()
        if self._stopped or not self._answers():
            self.start()
            self._settle()
        wait_for_broker(self.node.host, self.node.port, CTL_TIMEOUT)

    def close(self) -> None:
        """Mend what is broken and stop the proxy (the node is left to whoever owns it)."""
        try:
            self.heal()
        finally:
            self.proxy.stop()

    def _answers(self) -> bool:
        try:
            wait_for_broker(self.node.host, self.node.port, timeout=2.0)
            return True
        except BrokerToolError:
            return False

    def _settle(self) -> None:
        """Wait for a ``start_app`` still running and fail if it failed."""
        starting, self._starting = self._starting, None
        if starting is None:
            return
        try:
            out, err = starting.communicate(timeout=CTL_TIMEOUT)
        except subprocess.TimeoutExpired:
            starting.kill()
            starting.communicate()
            raise BrokerToolError(f"rabbitmqctl start_app on {self.node.name} did not finish in "
                                  f"{CTL_TIMEOUT:g}s") from None
        if starting.returncode != 0:
            raise BrokerToolError(f"rabbitmqctl start_app on {self.node.name} exited "
                                  f"{starting.returncode}: {(err or out).strip()[:2000]}")

    def __enter__(self) -> RabbitFaultInjector:  # noqa: PYI034 (typing.Self needs 3.11)
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<RabbitFaultInjector {self.scheme}:// node {self.node.name} via {self.url}>"


@contextlib.contextmanager
def rabbit_fault_injector(scheme: str = "rabbit", node: RabbitNode | None = None,
                          **node_options: object) -> Iterator[RabbitFaultInjector]:
    """A :class:`RabbitFaultInjector` for ``scheme``, on ``node`` or on a private node started
    for it (``node_options`` go to :func:`~msgbus.testing.rabbitmq.private_rabbit_node`) and
    stopped afterwards."""
    with contextlib.ExitStack() as stack:
        if node is None:
            node = stack.enter_context(private_rabbit_node(**node_options))  # type: ignore[arg-type]
        injector = stack.enter_context(RabbitFaultInjector(node, scheme))
        yield injector
