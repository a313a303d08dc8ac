"""The fault schedule on the private node: N times close_all_connections, then one restart.

Every step is stamped with ``time.time()`` (wall clock) so the orchestrator can relate it to the
call stamps written by the load process. The moment the broker is back after the restart is
measured, not assumed: a probe thread connects to the node's port every few milliseconds from
just before ``start_app`` and stamps the first accepted TCP connection and the first AMQP answer.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable
from typing import Any

from msgbus.testing.rabbitmq import BrokerToolError, RabbitNode, wait_for_broker

#: Interval between two connection attempts of the port probe (seconds).
PROBE_INTERVAL = 0.005
#: How long the probe waits for the broker to come back after start_app returned (seconds).
PROBE_TIMEOUT = 30.0
_AMQP_HEADER = b"AMQP\x00\x00\x09\x01"


class PortProbe(threading.Thread):
    """Stamps the first moment ``host:port`` accepts TCP, and the first AMQP answer."""

    def __init__(self, host: str, port: int) -> None:
        super().__init__(name="port-probe", daemon=True)
        self.address = (host, port)
        self.tcp_open: float | None = None
        self.amqp_open: float | None = None
        self._halt = threading.Event()

    def run(self) -> None:
        while not self._halt.is_set():
            try:
                with socket.create_connection(self.address, timeout=1.0) as sock:
                    accepted = time.time()
                    if self.tcp_open is None:
                        self.tcp_open = accepted
                    sock.settimeout(2.0)
                    sock.sendall(_AMQP_HEADER)
                    if sock.recv(1) == b"\x01":
                        self.amqp_open = time.time()
                        return
            except OSError:
                pass
            self._halt.wait(PROBE_INTERVAL)

    def result(self, timeout: float) -> tuple[float | None, float | None]:
        """Wait up to ``timeout`` s for the AMQP answer; (TCP accept, AMQP answer) stamps."""
        self.join(timeout)
        self._halt.set()
        return self.tcp_open, self.amqp_open


def run_schedule(node: RabbitNode, drops: int, gap: float, down: float,
                 pause: Callable[[float], None]) -> list[dict[str, Any]]:
    """Apply the faults to ``node`` and return them as stamped events, in order.

    ``pause(seconds)`` is how the caller waits between steps (it may check its children and
    raise). A drop is ``{"kind": "drop", "down": t, "back": t}`` (the command's start and end);
    the restart is ``{"kind": "restart", "down": stop_app invoked, "stopped": stop_app returned,
    "start_app": start_app invoked, "back": port accepts TCP, "amqp": port answers AMQP,
    "started": start_app returned}``.
    """
    events: list[dict[str, Any]] = []
    for _ in range(drops):
        before = time.time()
        node.close_all_connections("msgbus chaos tool")
        events.append({"kind": "drop", "down": before, "back": time.time()})
        pause(gap)
    if down <= 0:
        return events
    event: dict[str, Any] = {"kind": "restart", "down": time.time()}
    events.append(event)
    node.stop_app()
    event["stopped"] = time.time()
    pause(max(0.0, event["stopped"] + down - time.time()))
    probe = PortProbe(node.host, node.port)
    probe.start()
    event["start_app"] = time.time()
    node.start_app()
    event["started"] = time.time()
    event["back"], event["amqp"] = probe.result(PROBE_TIMEOUT)
    if event["back"] is None:
        raise BrokerToolError(f"node port {node.port} did not accept TCP after start_app")
    return events


def ensure_running(node: RabbitNode) -> None:
    """Start the node's application again if it does not answer (e.g. after an interruption)."""
    try:
        wait_for_broker(node.host, node.port, timeout=3.0)
    except BrokerToolError:
        node.start_app()
