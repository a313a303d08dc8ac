"""Consuming a listener's queues on its own :class:`IoConnection`, restored after every reconnect.

The consumer declares its exchanges and queues from the shared specs, binds them, starts one
basic.consume per queue and calls the listener's ``on_message`` from the I/O thread for each
delivery. After a lost connection (or a queue deleted under it) it declares and consumes again;
reply and fanout queues keep their names, so callers and fanout senders never notice.
"""

from __future__ import annotations

import concurrent.futures
import functools
import logging
import time
from typing import Any, Sequence

from pika.channel import Channel
from pika.exceptions import ChannelClosedByBroker

from msgbus.driver.amqp import QUEUE_RECHECK_AFTER_RECONNECT, QueueSpec
from msgbus.driver.base import OnMessage
from msgbus.exceptions import MessageDeliveryFailure, MessagingException
from msgbus_pika.acks import AckBatcher
from msgbus_pika.declarations import bind_queue, declare_exchange, declare_queue
from msgbus_pika.errors import describe_error
from msgbus_pika.io_connection import IoConnection, State
from msgbus_pika.message import PikaMessage

LOG = logging.getLogger(__name__)

#: AMQP's NOT_FOUND reply code (a passive declare of a missing queue).
_NOT_FOUND = 404


def _ignore(*_args: Any) -> None:
    """Reply to a method whose answer needs no handling."""


class QueueConsumer:
    """The queues of one listener, consumed on one channel of ``conn`` (an observer of it)."""

    def __init__(self, conn: IoConnection, specs: Sequence[QueueSpec], on_message: OnMessage,
                 private: Sequence[str] = (), prefetch: int | None = None,
                 ack_delay: float = 0.0) -> None:
        self._conn = conn
        self._specs = list(specs)
        self._queues = list(dict.fromkeys(spec.name for spec in specs))
        self._on_message = on_message
        self._private = list(private)
        #: basic.consume arguments per queue (x-stream-offset, x-cancel-on-ha-failover)
        self._consume_args: dict[str, dict[str, Any] | None] = {}
        for spec in reversed(self._specs):
            self._consume_args[spec.name] = dict(spec.consumer_arguments) or None
        #: stream queues: the offset to consume from after a reconnect (the one after the last
        #: delivery seen), so a reconnect neither loses nor repeats what the stream holds
        self._stream_next: dict[str, int] = {}
        #: consumer tag -> stream queue it consumes (for the offsets of deliveries)
        self._stream_tags: dict[str, str] = {}
        #: basic.qos prefetch count (0: unlimited); None: rabbit_qos_prefetch_count
        self._prefetch = conn.settings.amqp.prefetch if prefetch is None else prefetch
        #: how long acks may wait to be sent together (see acks.py)
        self._ack_delay = ack_delay
        self._channel: Channel | None = None
        self._acks: AckBatcher | None = None
        self._stopped = False
        self._reopen_on_close = False
        #: the channel whose queues are being checked after a reconnect (see _recheck)
        self._rechecking: Channel | None = None
        self._started: concurrent.futures.Future = concurrent.futures.Future()
        self._stop_future: concurrent.futures.Future | None = None
        conn.add_observer(self)

    @property
    def queues(self) -> list[str]:
        return list(self._queues)

    # -- any thread ---------------------------------------------------------------------------

    def start(self, deadline: float | None,
              late: type[MessagingException] = MessageDeliveryFailure) -> None:
        """Connect, declare, bind and consume; return once consuming. Raise ``late`` when that
        is not done by ``deadline`` (a :func:`time.monotonic` instant; None: no bound), or
        MessageDeliveryFailure at once when the broker refuses a declaration."""
        started = time.monotonic()
        self._conn.start()
        timeout = None if deadline is None else max(0.0, deadline - started)
        try:
            self._started.result(timeout)
        except concurrent.futures.TimeoutError:
            conn = self._conn
            why = (conn.last_error if conn.state is not State.OPEN and conn.last_error
                   else f"{conn.address}: connected, but the queues were not set up in time"
                   if conn.state is State.OPEN else f"{conn.address}: no answer")
            raise late(f"could not consume queue(s) {', '.join(self._queues)} within "
                       f"{time.monotonic() - started:.3g}s (the deadline): {why}") from None

    def stop(self, timeout: float) -> bool:
        """Stop delivering, cancel the consumers and delete the private queues; no callback runs
        once this returns.

        Deliveries the application still holds can be acked (or requeued) after this: the
        connection stays open until they all are, then closes by itself (or when the transport
        closes). From the I/O thread itself (a callback stopping its own listener) it only stops
        delivering and leaves the rest to the I/O thread. False when the broker did not answer
        in time (the caller should close the connection).
        """
        if self._conn.in_loop_thread():
            self._stop_now(None)
            return True
        future = self._conn.submit(self._stop_now)
        try:
            future.result(timeout)
            return True
        except concurrent.futures.TimeoutError:
            LOG.warning("%s: the broker did not confirm cancelling and deleting %s within %.1fs",
                        self._conn.name, ", ".join(self._private) or "nothing", timeout)
        except Exception as exc:
            LOG.warning("%s: stopping failed: %s", self._conn.name, describe_error(exc))
        return False

    def keep_queue(self, name: str) -> None:
        """Leave queue ``name`` to the broker when stopping (its x-expires drops it) instead of
        deleting it: a reply queue a late reply may still be routed to. Call before stop()."""
        self._private = [n for n in self._private if n != name]

    def settle(self, message: PikaMessage, requeue: bool) -> None:
        """Ack or requeue ``message`` in the I/O thread (inline when already there)."""
        self._conn.run_in_loop(functools.partial(self._settle_now, message, requeue))

    # -- I/O thread: connection events ----------------------------------------------------------

    def on_open(self, connection: Any) -> None:
        if self._stopped:
            self._conn.close()  # reconnected after stop: nothing left to do here
        else:
            connection.channel(on_open_callback=self._setup)

    def on_lost(self, reason: BaseException) -> None:
        self._channel = None
        if self._stopped:
            self._conn.close()  # the broker requeued what was unsettled: no reason to reconnect

    def on_attempt_failed(self, error: str) -> None:
        """Nothing to do: the connection tries again (start() gives up at its deadline)."""

    def on_closing(self) -> None:
        self._stopped = True
        self._flush_acks()
        if not self._started.done():
            self._started.set_exception(MessageDeliveryFailure(
                f"listener on {', '.join(self._queues)} closed before it was set up"))

    # -- I/O thread: channel ------------------------------------------------------------------

    def _setup(self, channel: Channel) -> None:
        if self._stopped or channel.connection is not self._conn.connection:
            if channel.is_open:
                channel.close()
            return
        self._channel = channel
        self._acks = AckBatcher(channel, self._conn.call_later, self._ack_delay)
        channel.add_on_close_callback(self._on_channel_closed)
        channel.add_on_cancel_callback(self._on_broker_cancel)
        if self._prefetch:
            channel.basic_qos(prefetch_count=self._prefetch, callback=_ignore)
        exchanges: set[str] = set()
        queues: set[str] = set()
        for spec in self._specs:
            if spec.exchange is not None and spec.exchange.name not in exchanges:
                exchanges.add(spec.exchange.name)
                declare_exchange(channel, spec.exchange, _ignore)
            if spec.name not in queues:
                queues.add(spec.name)
                declare_queue(channel, spec, _ignore)
            if spec.exchange is not None:
                bind_queue(channel, spec, _ignore)
        last = len(self._queues) - 1
        self._stream_tags = {}
        for i, name in enumerate(self._queues):
            done = functools.partial(self._on_consuming, channel) if i == last else _ignore
            args = self._consume_args[name]
            stream = args is not None and "x-stream-offset" in args
            if stream and name in self._stream_next:
                # read on after the last delivery seen (as oslo.messaging does)
                args = {**(args or {}), "x-stream-offset": self._stream_next[name]}
            tag = channel.basic_consume(name, self._on_delivery, callback=done, arguments=args)
            if stream:
                self._stream_tags[tag] = name

    def _on_consuming(self, channel: Channel, _frame: Any) -> None:
        if channel is not self._channel:
            return
        if not self._started.done():
            self._started.set_result(None)
        else:
            LOG.info("%s: consuming %s again", self._conn.name, ", ".join(self._queues))
            for delay in QUEUE_RECHECK_AFTER_RECONNECT:
                self._conn.call_later(delay, functools.partial(self._recheck, channel))

    def _recheck(self, channel: Channel) -> None:
        """After a reconnect, ask the broker whether our queues still exist (passive
        declare). When a cluster node dies, RabbitMQ deletes the records of its non-durable
        queues in batches, by name: a queue we declared again on another node in the
        meantime can lose its record while we still consume it, and nothing would tell us
        (replies to it are then returned as unroutable). A missing queue closes the channel
        with 404; the channel is then set up again at once, declaring the queue anew."""
        current = self._channel
        if current is None or current is not channel or self._stopped or not current.is_open:
            return
        self._rechecking = current
        for name in self._queues:
            current.queue_declare(name, passive=True, callback=_ignore)

    def _on_delivery(self, channel: Channel, method: Any, properties: Any, body: bytes) -> None:
        acks = self._acks
        if channel is not self._channel or acks is None:
            return  # an old channel: the broker requeues it when the channel closes
        if self._stopped:
            acks.give_back(method.delivery_tag)  # sent before our cancel reached the broker
            return
        if self._stream_tags:
            queue = self._stream_tags.get(method.consumer_tag)
            offset = (properties.headers or {}).get("x-stream-offset")
            if queue is not None and isinstance(offset, int):
                self._stream_next[queue] = offset + 1
        message = PikaMessage(body, channel, method.delivery_tag, self)
        acks.delivered(method.delivery_tag)
        try:
            self._on_message(message)
        except Exception:
            LOG.exception("%s: listener callback failed", self._conn.name)

    def _settle_now(self, message: PikaMessage, requeue: bool) -> None:
        if message.settled:
            return
        message.settled = True
        channel = message.channel
        acks = self._acks
        if channel is None or not channel.is_open or channel is not self._channel or acks is None:
            # The channel it came on is gone: the broker has already requeued it.
            LOG.debug("%s: not settling %r: its channel is closed", self._conn.name, message)
            return
        if requeue:
            acks.requeue(message.delivery_tag)
        else:
            acks.ack(message.delivery_tag)

    def _on_broker_cancel(self, frame: Any) -> None:
        channel = self._channel
        if self._stopped or channel is None:
            return
        LOG.warning("%s: the broker cancelled consuming (a queue of %s was deleted?); "
                    "declaring and consuming again", self._conn.name, ", ".join(self._queues))
        self._reopen_on_close = True
        self._stream_next.clear()  # a stream made anew has offsets of its own (as oslo does)
        if channel.is_open:
            channel.close()

    def _on_channel_closed(self, channel: Channel, reason: BaseException) -> None:
        if channel is not self._channel:
            return
        self._channel = None
        stop_future = self._stop_future
        if stop_future is not None and not stop_future.done():
            stop_future.set_result(None)
        if self._stopped:
            self._conn.close()  # what was in hand goes back to the queue with the channel
            return
        if self._rechecking is channel and isinstance(reason, ChannelClosedByBroker) \
                and reason.reply_code == _NOT_FOUND:
            self._rechecking = None
            LOG.warning("%s: a queue of %s vanished after the reconnect (a cluster node's "
                        "clean-up after it died?); declaring and consuming again",
                        self._conn.name, ", ".join(self._queues))
            self._reopen()
            return
        if isinstance(reason, ChannelClosedByBroker):
            if not self._started.done():
                self._started.set_exception(MessageDeliveryFailure(
                    f"the broker at {self._conn.address} refused to set up queue(s) "
                    f"{', '.join(self._queues)}: {describe_error(reason)}"))
                return
            delay = self._conn.settings.amqp.retry_interval
            LOG.error("%s: channel closed by the broker at %s (%s); setting up again in %.1fs",
                      self._conn.name, self._conn.address, describe_error(reason), delay)
            self._conn.call_later(delay, self._reopen)
        elif self._reopen_on_close:
            self._reopen_on_close = False
            self._reopen()
        # otherwise the connection is gone: on_open sets everything up again

    def _reopen(self) -> None:
        connection = self._conn.connection
        if not self._stopped and self._channel is None and connection is not None \
                and connection.is_open:
            connection.channel(on_open_callback=self._setup)

    def _flush_acks(self) -> None:
        acks = self._acks
        if acks is not None and self._channel is not None:
            acks.flush()

    def _stop_now(self, future: concurrent.futures.Future | None) -> None:
        if self._stopped:
            if future is not None and not future.done():
                future.set_result(None)
            return
        self._stopped = True  # from here on no delivery reaches on_message
        self._flush_acks()
        channel = self._channel
        if channel is None or not channel.is_open or self._conn.state is not State.OPEN:
            if future is not None:
                future.set_result(None)
            self._conn.close()
            return
        self._stop_future = future

        def finished(_frame: Any = None) -> None:
            if future is not None and not future.done():
                future.set_result(None)
            self._close_when_settled()

        # pika sends these one after the other: the last answer means all were done.
        steps: list[Any] = [functools.partial(channel.basic_cancel, tag)
                            for tag in channel.consumer_tags]
        steps += [functools.partial(channel.queue_delete, name) for name in self._private]
        if not steps:
            finished()
            return
        for step in steps[:-1]:
            step(callback=_ignore)
        steps[-1](callback=finished)

    def _close_when_settled(self) -> None:
        """Close the connection now, or once the application settled what it still holds."""
        acks = self._acks
        channel = self._channel
        if acks is None or channel is None or not channel.is_open or not acks.outstanding():
            self._conn.close()
            return
        LOG.debug("%s: stopped; closing once %d message(s) in hand are settled",
                  self._conn.name, acks.outstanding())
        acks.on_idle = self._conn.close
