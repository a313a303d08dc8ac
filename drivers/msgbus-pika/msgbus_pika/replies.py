"""Sending RPC replies without making the server's worker wait for the broker.

A reply is handed to the I/O thread of the sending connection and the worker thread moves on; the
I/O thread publishes it (default exchange, the caller's reply queue as routing key, mandatory)
and settles it when the broker confirms. A reply the broker returns because the reply queue does
not exist (the caller is reconnecting, or gone) is published again after a short pause, for at
most ``reply_missing_queue_timeout`` seconds, then dropped with an error in the log (oslo's rule).
Closing the transport first waits (bounded) for the replies still on their way. A large reply
(see :data:`msgbus.driver.amqp.PIPELINED_CAST_MAX_BYTES`) makes the worker wait for its outcome
instead, so that a reply the broker refuses (over its ``max_message_size``) raises to the core,
which then tells the caller with a small failure reply rather than letting the call time out.
"""

from __future__ import annotations

import concurrent.futures
import logging
import time
from typing import Callable

from msgbus.exceptions import MessageDeliveryFailure, MessageUndeliverable
from msgbus_pika.in_flight import InFlight
from msgbus_pika.publish_job import PublishJob
from msgbus_pika.publisher import Publisher

LOG = logging.getLogger(__name__)

#: First and longest pause between attempts to deliver a reply whose queue is missing.
RETRY_FIRST = 0.05
RETRY_MAX = 1.0
#: How much longer than ``reply_missing_queue_timeout`` a worker waits for a large reply.
_WAIT_EXTRA = 30.0


class ReplySender:
    """Asynchronous reply publishing on a :class:`Publisher`; counts the replies in flight."""

    def __init__(self, get_publisher: Callable[[], Publisher], missing_queue_timeout: float,
                 properties: object) -> None:
        self._get_publisher = get_publisher
        self._missing_queue_timeout = missing_queue_timeout
        self._properties = properties
        self._in_flight = InFlight()

    def send(self, reply_queue: str, body: bytes, retry: int | None,
             wait: bool = False) -> None:
        """Hand the reply over and return at once (any thread); with ``wait``, return once it
        is settled and raise why it could not be delivered."""
        publisher = self._get_publisher()
        self._in_flight.add()
        give_up = time.monotonic() + self._missing_queue_timeout
        outcome: concurrent.futures.Future | None = concurrent.futures.Future() if wait else None
        publisher.submit(self._job(publisher, reply_queue, body, retry, give_up, RETRY_FIRST,
                                   outcome))
        if outcome is not None:
            bound = self._missing_queue_timeout + _WAIT_EXTRA
            try:
                outcome.result(timeout=bound)
            except concurrent.futures.TimeoutError:
                raise MessageDeliveryFailure(
                    f"the broker did not confirm a reply to {reply_queue} within "
                    f"{bound:.0f}s") from None

    def _job(self, publisher: Publisher, reply_queue: str, body: bytes, retry: int | None,
             give_up: float, pause: float,
             outcome: concurrent.futures.Future | None) -> PublishJob:
        job = PublishJob("", reply_queue, body, self._properties,  # type: ignore[arg-type]
                         True, retry)
        job.on_settled = lambda done: self._settled(publisher, done, give_up, pause, outcome)
        return job

    def _settled(self, publisher: Publisher, job: PublishJob, give_up: float,
                 pause: float, outcome: concurrent.futures.Future | None) -> None:
        """In the I/O thread: done, retry later (queue missing), or log and drop."""
        error = job.error
        if isinstance(error, MessageUndeliverable) and not publisher.closed:
            left = give_up - time.monotonic()
            if left > 0:
                again = self._job(publisher, job.routing_key, job.body, job.retry, give_up,
                                  min(pause * 2, RETRY_MAX), outcome)
                publisher.connection.call_later(min(pause, left),
                                                lambda: publisher.dispatch(again))
                return
            LOG.error("reply queue %s does not exist (its caller is gone?): dropping the reply "
                      "after %.0fs of retries", job.routing_key, self._missing_queue_timeout)
        elif error is not None and outcome is None:
            LOG.error("could not send a reply to %s: %s", job.routing_key, error)
        self._in_flight.done()
        if outcome is not None:
            if error is None:
                outcome.set_result(None)
            else:
                outcome.set_exception(error)

    def flush(self, timeout: float) -> bool:
        """Wait until every reply handed over is settled; False if some were still pending."""
        return self._in_flight.flush(timeout)
