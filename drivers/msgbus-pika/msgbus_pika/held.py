"""Casts the broker returned as unroutable, held and published again from the I/O thread.

Casts to a topic or server queue are published mandatory (see
:func:`msgbus.driver.amqp.holds_when_unroutable`). When the broker has no queue for one (after
a restart, until the servers declared their queues again; or a topic nobody serves), it returns
the cast before confirming it; the publisher then hands the job here and lets its sender go on
(pipelined or not: the caller of a held cast returns normally). The cast is kept in a shared
:class:`msgbus.driver.held_casts.HeldCasts` (bounded by ``cast_hold_timeout`` and
``cast_hold_max_bytes``, which log what they drop) and published again when due, by a timer of
the sending connection's I/O loop; a copy returned again goes back to the hold.

Closing the transport publishes every held cast once more, waits (bounded) for the outcome and
logs one error with the number still unrouted.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any, Callable

from msgbus.driver.held_casts import Held, HeldCasts
from msgbus_pika.in_flight import InFlight
from msgbus_pika.publish_job import PublishJob
from msgbus_pika.publisher import Publisher

LOG = logging.getLogger(__name__)


class CastResender:
    """The held casts of one :class:`Publisher` and the timer that publishes them again.

    Everything but :meth:`close` runs in the publisher's I/O thread."""

    def __init__(self, publisher: Publisher, hold_timeout: float, max_bytes: int) -> None:
        self._publisher = publisher
        self._conn = publisher.connection
        self.held = HeldCasts(hold_timeout, max_bytes)
        #: copies published again and not settled yet
        self._resending = InFlight()
        self._timer: Any = None
        self._closing = False
        #: returned again after close() began
        self._unrouted = 0
        publisher.on_returned = self._returned

    def _returned(self, job: PublishJob) -> None:
        """The broker returned ``job`` (a cast published mandatory by the driver)."""
        if self._closing:
            self._unrouted += 1
            return
        self.held.hold(job, job.describe(), len(job.body), previous=job.held)
        self._arm()

    def _arm(self) -> None:
        if self._timer is not None or self._closing:
            return
        due = self.held.next_due()
        if due is not None:
            self._timer = self._conn.call_later(due, self._fire)

    def _fire(self) -> None:
        self._timer = None
        for item in self.held.take_due():
            self._resend(item)
        self._arm()

    def _resend(self, item: Held) -> None:
        job = item.payload.again()
        job.held = item
        job.on_settled = self._resent
        self._resending.add()
        self._publisher.dispatch(job)

    def _resent(self, job: PublishJob) -> None:
        if job.error is not None:
            LOG.error("a held cast was not delivered: %s", job.error)
        self._resending.done()

    # -- closing (any thread but the I/O thread) -------------------------------------------------

    def close(self, timeout: float, hopeless: Callable[[], bool]) -> None:
        """Publish every held cast once more, wait up to ``timeout`` (or until ``hopeless()``)
        for the broker, and log an error with the count still unrouted."""
        handed = threading.Event()

        def last_round() -> None:
            self._closing = True
            self._conn.remove_timeout(self._timer)
            self._timer = None
            for item in self.held.take_all():
                self._resend(item)
            handed.set()

        end = time.monotonic() + timeout
        self._conn.call_soon(last_round)
        handed.wait(timeout)
        self._resending.flush(max(0.0, end - time.monotonic()), hopeless)
        unrouted = self._unrouted + self._resending.count + len(self.held)
        if unrouted:
            LOG.error("closing the transport with %d cast(s) that no queue took (their topic "
                      "or server had no queue bound): dropped", unrouted)
