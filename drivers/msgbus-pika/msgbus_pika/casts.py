"""Casts published ahead of their confirms, within a window (``cast_confirm_window``).

While the sending connection is open, a cast is handed to the I/O thread and the caster returns
at once, as long as fewer than the window of casts are still unconfirmed; otherwise it waits for
one to settle (never past the send's deadline). Only casts retried forever (``retry`` None) go
this way: the publisher keeps every job until the broker confirms it and publishes it again after
a lost connection or a nack, so a cut costs no message; the server drops a copy it already had by
``_unique_id``. A cast the broker returns (no queue bound yet) is held and sent again
(:mod:`msgbus_pika.held`) and leaves the window, so casts to a topic nobody serves never block
their sender. A cast that fails all the same (the transport closed first) is logged as an error,
since nobody waits for it any more. Closing the transport first waits (bounded) for the casts
still on their way.
"""

from __future__ import annotations

import logging
import time
from typing import Callable

from msgbus.exceptions import MessageDeliveryFailure
from msgbus_pika.in_flight import InFlight
from msgbus_pika.outcome import LIVENESS_CHECK, deadline_passed
from msgbus_pika.publish_job import PublishJob
from msgbus_pika.publisher import Publisher

LOG = logging.getLogger(__name__)


class CastSender:
    """Counts the casts in flight on a :class:`Publisher` and bounds them by ``window``."""

    def __init__(self, window: int) -> None:
        self.window = window
        self._in_flight = InFlight()

    def accepts(self, publisher: Publisher) -> bool:
        """Whether a cast :func:`msgbus.driver.amqp.pipelines` allows may go without waiting
        now: the channel is ready (while the connection is down, casts wait for their confirm
        and raise by their retry rule) and this is not the I/O thread itself."""
        return publisher.ready and not publisher.connection.in_loop_thread()

    def send(self, publisher: Publisher, job: PublishJob, deadline: float | None) -> None:
        """Hand ``job`` over once there is room in the window (any thread but the I/O one);
        MessagingTimeout if there is none by ``deadline``."""
        while True:
            wait = LIVENESS_CHECK
            if deadline is not None:
                wait = min(wait, deadline - time.monotonic())
            if self._in_flight.add_below(self.window, max(wait, 0.0)):
                break
            if publisher.closed:
                raise MessageDeliveryFailure(
                    f"transport to {publisher.connection.address} closed while a cast to "
                    f"{job.describe()} waited for earlier casts to be confirmed")
            if deadline is not None and time.monotonic() >= deadline:
                raise deadline_passed(job, publisher.connection, deadline)
        job.on_settled = self._settled
        try:
            publisher.submit(job)
        except BaseException:
            if not job.settled:  # never reached the I/O thread: nothing will settle it
                self._in_flight.done()
            raise

    def _settled(self, job: PublishJob) -> None:
        """In the I/O thread: the broker confirmed the cast, or its retries are spent."""
        if job.error is not None:
            LOG.error("a cast was not delivered: %s", job.error)
        self._in_flight.done()

    @property
    def in_flight(self) -> int:
        """Casts handed over and not settled yet."""
        return self._in_flight.count

    def flush(self, timeout: float, hopeless: Callable[[], bool] | None = None) -> bool:
        """Wait until every cast handed over is settled; False if some were still pending
        (after ``timeout``, or once ``hopeless()``)."""
        return self._in_flight.flush(timeout, hopeless)
