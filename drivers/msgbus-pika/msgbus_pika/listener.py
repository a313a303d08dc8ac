"""A running subscription: a :class:`QueueConsumer` on a connection of its own."""

from __future__ import annotations

import threading

from msgbus.driver.base import Listener
from msgbus.exceptions import MessageDeliveryFailure, MessagingException
from msgbus_pika.consumer import QueueConsumer
from msgbus_pika.io_connection import IoConnection


#: How long a listener that failed to start waits for its I/O thread to end (seconds).
_ABANDON_JOIN = 0.2


class PikaListener(Listener):
    """Owns one connection (and its I/O thread); stopping it deletes its private queues.

    After :meth:`stop` the connection lives on only while the application still holds messages
    it took (a notification endpoint finishing its work), so that their acks reach the broker;
    :meth:`close` (the transport closing) ends it at once.
    """

    def __init__(self, conn: IoConnection, consumer: QueueConsumer) -> None:
        self._conn = conn
        self._consumer = consumer
        self._lock = threading.Lock()
        self._stopped = False

    @property
    def queues(self) -> list[str]:
        """The queues consumed (for diagnostics and tests)."""
        return self._consumer.queues

    @property
    def finished(self) -> bool:
        """Stopped and its connection closed: nothing of it is left running."""
        return self._stopped and self._conn.closed

    def start(self, deadline: float | None,
              late: type[MessagingException] = MessageDeliveryFailure) -> None:
        """Connect and consume; raises (after closing the connection) if it cannot by
        ``deadline`` (see :meth:`QueueConsumer.start`)."""
        try:
            self._consumer.start(deadline, late)
        except BaseException:
            self._abandon()
            raise

    def stop(self) -> None:
        """Stop delivering, cancel consuming, delete the private queues (QueueSpec.private)."""
        with self._lock:
            if self._stopped:
                return
            self._stopped = True
        if not self._consumer.stop(self._conn.settings.shutdown_timeout):
            self._conn.close()

    def keep_queue(self, name: str) -> None:
        """Do not delete queue ``name`` when stopping (see :meth:`QueueConsumer.keep_queue`)."""
        self._consumer.keep_queue(name)

    def _abandon(self) -> None:
        """Give up a listener that could not start by its deadline, without waiting for the
        broker any longer (it may be frozen): the I/O thread closes the connection in the
        background, and its queues, if some were made, expire (``x-expires``) or stay shared."""
        with self._lock:
            self._stopped = True
        self._conn.close(join=_ABANDON_JOIN)

    def close(self) -> None:
        """Stop, then close the connection and end its I/O thread now."""
        self.stop()
        self._conn.close()

    def __repr__(self) -> str:
        return f"<PikaListener {', '.join(self.queues)}>"
