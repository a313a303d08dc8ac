"""Publishing with publisher confirms on one channel of an :class:`IoConnection`.

Everything here except :meth:`Publisher.submit` runs in the connection's I/O thread. Many sending
threads share the one channel: their messages are published as they come and confirmed by delivery
tag, so 32 threads publishing at once cost one wake-up of the I/O thread per batch, not a channel
each. A message is settled only by the broker's answer:

* ``basic.ack``: done, unless the broker returned it first: MessageUndeliverable, or, for a cast
  the driver published mandatory itself (``job.holds``), handed to :attr:`Publisher.on_returned`
  (which holds it and sends it again: :mod:`msgbus_pika.held`) and done;
* ``basic.nack``, or the connection lost before the confirm: published again on the next channel
  while the job's ``retry`` budget lasts, then MessageDeliveryFailure naming the broker;
* the channel closed by the broker (for example an auto-delete exchange gone between its
  declaration and the publish): the declarations are repeated and the job published again, a few
  times at most.
"""

from __future__ import annotations

import collections
import functools
import logging
from typing import Any, Callable, Hashable

from pika.channel import Channel
from pika.exceptions import ChannelClosedByBroker, ChannelWrongStateError, ConnectionWrongStateError
from pika.spec import Basic

from msgbus.driver.amqp import pop_confirmed
from msgbus.exceptions import MessageDeliveryFailure, MessageUndeliverable, TransportClosedError
from msgbus_pika.errors import describe_error
from msgbus_pika.io_connection import IoConnection, State
from msgbus_pika.publish_job import PublishJob

LOG = logging.getLogger(__name__)

#: How often a job may be caught in a channel closed by the broker before it fails.
MAX_CHANNEL_ERRORS = 3
#: AMQP reply code NOT_FOUND (an exchange that vanished): not the fault of a declaration.
_NOT_FOUND = 404


class Publisher:
    """Confirmed publishing on an :class:`IoConnection` (an observer of it)."""

    def __init__(self, conn: IoConnection) -> None:
        self._conn = conn
        self._channel: Channel | None = None
        self._ready = False  # the channel is in confirm mode
        self._seq = 0        # the last delivery tag used on the channel
        self._inflight: collections.OrderedDict[int, PublishJob] = collections.OrderedDict()
        self._waiting: collections.deque[PublishJob] = collections.deque()
        self._declared: set[Hashable] = set()
        self._declaring: dict[Hashable, list[PublishJob]] = {}
        self._closed = False
        #: I/O thread: receives each ``holds`` job the broker returned (before it succeeds)
        self.on_returned: Callable[[PublishJob], None] | None = None
        conn.add_observer(self)

    @property
    def connection(self) -> IoConnection:
        return self._conn

    @property
    def closed(self) -> bool:
        return self._closed

    @property
    def ready(self) -> bool:
        """The channel is open in confirm mode (a hint when read from another thread)."""
        return self._ready and not self._closed and self._conn.state is State.OPEN

    # -- any thread ---------------------------------------------------------------------------

    def submit(self, job: PublishJob) -> None:
        """Publish ``job`` from this thread when the connection is idle, else hand it to the I/O
        thread; the caller then waits on it (the confirm comes through the I/O thread)."""
        dispatch = functools.partial(self._dispatch, job)
        if not self._conn.try_run_now(dispatch):
            self._conn.call_soon(dispatch)

    # -- I/O thread: connection events ----------------------------------------------------------

    def on_open(self, connection: Any) -> None:
        self._declared.clear()
        connection.channel(on_open_callback=self._on_channel_open)

    def on_lost(self, reason: BaseException) -> None:
        # The channel's close callback (called first by pika) has already moved the jobs.
        self._channel = None
        self._ready = False

    def on_attempt_failed(self, error: str) -> None:
        waiting, self._waiting = self._waiting, collections.deque()
        for job in waiting:
            if job.settled or job.abandoned:
                continue
            job.attempts += 1
            if job.out_of_retries():
                job.fail(self._failure(job, error))
            else:
                self._waiting.append(job)

    def _pending(self) -> list[PublishJob]:
        return [*self._inflight.values(), *self._waiting,
                *(job for jobs in self._declaring.values() for job in jobs)]

    def _closed_error(self, job: PublishJob) -> TransportClosedError:
        return TransportClosedError(f"transport closed before the broker at "
                                    f"{self._conn.address} confirmed the message to "
                                    f"{job.describe()}")

    def release_waiters(self) -> None:
        """The transport is closing: fail at once every send whose thread waits for it (the
        broker may be slow or gone); publishes nobody waits for (pipelined casts, held casts
        sent again) keep their chance until the connection closes."""
        for job in self._pending():
            if job.on_settled is None:
                job.fail(self._closed_error(job))  # settled jobs are skipped from now on

    def on_closing(self) -> None:
        self._closed = True
        jobs = self._pending()
        self._inflight.clear()
        self._waiting.clear()
        self._declaring.clear()
        for job in jobs:
            job.fail(self._closed_error(job))

    # -- I/O thread: channel ------------------------------------------------------------------

    def _on_channel_open(self, channel: Channel) -> None:
        if self._closed or channel.connection is not self._conn.connection:
            if channel.is_open:
                channel.close()
            return
        self._channel = channel
        self._seq = 0
        channel.add_on_close_callback(self._on_channel_closed)
        channel.add_on_return_callback(self._on_return)
        channel.confirm_delivery(self._on_confirm,
                                 callback=lambda _frame: self._on_confirm_mode(channel))

    def _on_confirm_mode(self, channel: Channel) -> None:
        if channel is not self._channel:
            return
        self._ready = True
        waiting, self._waiting = self._waiting, collections.deque()
        for job in waiting:
            self._dispatch(job)

    def _on_channel_closed(self, channel: Channel, reason: BaseException) -> None:
        if channel is not self._channel:
            return
        self._channel = None
        self._ready = False
        inflight = list(self._inflight.values())
        self._inflight.clear()
        declaring, self._declaring = self._declaring, {}
        self._declared.clear()
        if self._closed:
            return
        by_broker = isinstance(reason, ChannelClosedByBroker)
        if by_broker and getattr(reason, "reply_code", None) != _NOT_FOUND and declaring:
            # pika sends one declaration at a time: the oldest one unanswered was refused.
            key = next(iter(declaring))
            name = key[1] if isinstance(key, tuple) and len(key) > 1 else key
            for job in declaring.pop(key):
                job.fail(MessageDeliveryFailure(
                    f"the broker at {self._conn.address} refused to declare {name!r} for the "
                    f"message to {job.describe()}: {describe_error(reason)}"))
        retry = [*inflight, *(job for jobs in declaring.values() for job in jobs)]
        again = []
        for job in retry:
            if by_broker:
                job.channel_errors += 1
                give_up = job.channel_errors > MAX_CHANNEL_ERRORS
            else:
                job.attempts += 1
                give_up = job.out_of_retries()
            if give_up:
                job.fail(self._failure(job, f"{self._conn.address}: {describe_error(reason)}"))
            else:
                again.append(job)
        self._waiting.extendleft(reversed(again))
        if by_broker:
            LOG.warning("%s: publishing channel closed by the broker at %s (%s); reopening it",
                        self._conn.name, self._conn.address, describe_error(reason))
            connection = self._conn.connection
            if connection is not None and connection.is_open:
                connection.channel(on_open_callback=self._on_channel_open)

    # -- I/O thread: publishing ---------------------------------------------------------------

    def _failure(self, job: PublishJob, error: str) -> MessageDeliveryFailure:
        return MessageDeliveryFailure(
            f"cannot deliver the message to {job.describe()} via {error}; gave up after "
            f"{job.attempts} failed attempt(s) (retry={job.retry})")

    def dispatch(self, job: PublishJob) -> None:
        """Publish ``job`` now (I/O thread only; other threads use :meth:`submit`)."""
        self._dispatch(job)

    def _dispatch(self, job: PublishJob) -> None:
        if job.settled or job.abandoned:
            return
        if self._closed or self._conn.state is State.CLOSED:
            job.fail(MessageDeliveryFailure(f"transport to {self._conn.address} is closed: "
                                            f"message to {job.describe()} not sent"))
            return
        channel = self._channel
        if channel is None or not self._ready or not channel.is_open:
            if job.retry == 0 and self._conn.state is State.BACKOFF:
                job.attempts += 1
                job.fail(self._failure(job, self._conn.last_error or self._conn.address))
                return
            self._waiting.append(job)
            return
        for declaration in job.declarations:
            key = declaration.key
            if key in self._declared:
                continue
            pending = self._declaring.get(key)
            if pending is not None:
                pending.append(job)
                return
            self._declaring[key] = [job]
            declaration.issue(channel, functools.partial(self._on_declared, channel, key))
            return
        self._seq += 1
        self._inflight[self._seq] = job
        job.returned = False
        try:
            channel.basic_publish(job.exchange, job.routing_key, job.body, job.properties,
                                  job.mandatory)
        except (ChannelWrongStateError, ConnectionWrongStateError):
            # Closing under us: nothing was written; the close callbacks that follow publish it
            # again on the next channel (retry rule as for any lost connection).
            self._inflight.pop(self._seq, None)
            self._seq -= 1
            self._waiting.append(job)
        except Exception as exc:  # nothing was written: the tag is free again
            self._inflight.pop(self._seq, None)
            self._seq -= 1
            job.fail(MessageDeliveryFailure(f"cannot publish the message to {job.describe()}: "
                                            f"{describe_error(exc)}"))

    def _on_declared(self, channel: Channel, key: Hashable) -> None:
        if channel is not self._channel:
            return
        self._declared.add(key)
        for job in self._declaring.pop(key, ()):
            self._dispatch(job)

    def _on_return(self, channel: Channel, method: Any, properties: Any, body: bytes) -> None:
        # The return comes before the confirm of the same message; mark the oldest match.
        for job in self._inflight.values():
            if (job.mandatory and not job.returned and job.routing_key == method.routing_key
                    and job.exchange == method.exchange and job.body == body):
                job.returned = True
                return
        LOG.debug("%s: returned message to %r/%r matches no pending publish", self._conn.name,
                  method.exchange, method.routing_key)

    def _on_confirm(self, frame: Any) -> None:
        method = frame.method
        nack = isinstance(method, Basic.Nack)
        for _tag, job in pop_confirmed(self._inflight, method.delivery_tag, method.multiple):
            self._settle(job, nack)

    def _settle(self, job: PublishJob, nack: bool) -> None:
        if nack:
            job.attempts += 1
            if job.out_of_retries():
                job.fail(self._failure(job, f"{self._conn.address}: the broker refused it "
                                            f"(basic.nack)"))
            else:
                self._dispatch(job)
        elif not job.returned:
            job.succeed()
        elif job.holds and self.on_returned is not None:
            self.on_returned(job)
            job.succeed()
        else:
            job.fail(MessageUndeliverable(None, job.exchange, job.routing_key, job.body))
