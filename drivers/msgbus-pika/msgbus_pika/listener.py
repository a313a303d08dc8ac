"""A running subscription: a :class:`QueueConsumer` on a connection of its own."""

from __future__ import annotations

import threading
from typing import Callable

from msgbus.driver.base import Listener
from msgbus_pika.consumer import QueueConsumer
from msgbus_pika.io_connection import IoConnection


class PikaListener(Listener):
    """Owns one connection (and its I/O thread); stopping it deletes its private queues."""

    def __init__(self, conn: IoConnection, consumer: QueueConsumer,
                 on_stopped: Callable[["PikaListener"], None]) -> None:
        self._conn = conn
        self._consumer = consumer
        self._on_stopped = on_stopped
        self._lock = threading.Lock()
        self._stopped = False

    @property
    def queues(self) -> list[str]:
        """The queues consumed (for diagnostics and tests)."""
        return self._consumer.queues

    def start(self, timeout: float) -> None:
        """Connect and consume; raises (after closing the connection) if it cannot."""
        try:
            self._consumer.start(timeout)
        except BaseException:
            self.stop()
            raise

    def stop(self) -> None:
        """Stop delivering, delete the private (fanout, reply) queues, close the connection."""
        with self._lock:
            if self._stopped:
                return
            self._stopped = True
        try:
            self._consumer.stop(self._conn.settings.shutdown_timeout)
            self._conn.close()
        finally:
            self._on_stopped(self)

    def __repr__(self) -> str:
        return f"<PikaListener {', '.join(self.queues)}>"
