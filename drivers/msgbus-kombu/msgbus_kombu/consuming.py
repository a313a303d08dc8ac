"""Consuming: the read loop of a consumer's connection and the hand-off of each delivery.

:class:`Consuming` is the part of :class:`~msgbus_kombu.consumer.ConsumerThread` that, once the
connection is set up, reads until asked to stop: it waits on the socket and on the wake pipe of
:mod:`msgbus_kombu.acks`, hands each delivery to the listener callback (read by the fast path's
:class:`~msgbus_kombu.frames.DeliveryReader`, or by py-amqp's ``basic_consume`` callback), holds
the acks of a burst a moment so that one frame settles them together, and sends and checks
heartbeats. Connecting, reconnecting and stopping are :mod:`msgbus_kombu.consumer`.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

import amqp

from msgbus.driver.base import IncomingMessage
from msgbus_kombu.acks import Acknowledgements, Delivery
from msgbus_kombu.frames import DeliveryReader
from msgbus_kombu.link import Link, Poller

LOG = logging.getLogger(__name__)

#: How long acks of a burst wait for more deliveries to join them (milliseconds).
_ACK_DELAY_MS = 0.5


class Consuming(Acknowledgements):
    """Reading and dispatching deliveries for a consumer thread (see the module docstring)."""

    # set by the consumer thread
    _on_message: Callable[[IncomingMessage], None]
    _stop: threading.Event
    _driver_stop: threading.Event | None

    def _recheck_queues(self) -> None:
        """Start checking that the queues still exist (after a reconnect)."""
        raise NotImplementedError

    def _raise_if_vanished(self) -> None:
        """Raise when a check found a queue gone."""
        raise NotImplementedError

    def _init_consuming(self) -> None:
        self._reader: DeliveryReader | None = None
        self._burst = False
        self._last_arrival = 0.0
        #: stream queues: the offset to consume from after a reconnect (the one after the last
        #: delivery seen), so a reconnect neither loses nor repeats what the stream holds
        self._stream_next: dict[str, int] = {}
        #: consumer tag -> stream queue it consumes (for the offsets of deliveries)
        self._stream_tags: dict[str, str] = {}
        #: monotonic instants at which to check that the queues still exist (after a
        #: reconnect; see msgbus_kombu.recheck)
        self._rechecks: list[float] = []
        #: a queue a check found gone (set by the checking thread, then the loop is woken)
        self._vanished: str | None = None

    def _stopping(self) -> bool:
        return self._stop.is_set() or (self._driver_stop is not None
                                       and self._driver_stop.is_set())

    def _use_link(self, link: Link) -> None:
        """Read deliveries on ``link`` from now on (through the fast path when it has one)."""
        self._reader = None
        # (stream deliveries carry their offset in a header, which only py-amqp's path reads)
        if link.fast and not self._stream_tags_wanted():
            self._reader = DeliveryReader(link.channel.channel_id, self._dispatch)
            link.hook = self._reader.hook

    def _stream_tags_wanted(self) -> bool:
        """Whether a queue consumed is a stream (its consumer arguments name an offset)."""
        return False

    def _note_stream_offset(self, message: amqp.Message) -> None:
        queue = self._stream_tags.get(message.delivery_info.get("consumer_tag", ""))
        offset = (message.headers or {}).get("x-stream-offset")
        if queue is not None and isinstance(offset, int):
            self._stream_next[queue] = offset + 1

    # deliveries
    def _on_deliver(self, message: amqp.Message) -> None:
        """py-amqp's path (deliveries read inside one of its own waits)."""
        if self._stream_tags:
            self._note_stream_offset(message)
        tag = message.delivery_info["delivery_tag"]
        body = message.body
        if type(body) is not bytes:  # py-amqp gives '' (a str) for an empty body
            body = body.encode() if isinstance(body, str) else bytes(body)
        self._dispatch(tag, body)

    def _dispatch(self, tag: int, body: bytes) -> None:
        if self._stopping():
            if not self._no_ack:
                self._settle_now(tag, True)
            return
        if not self._no_ack:
            self._unsettled.add(tag)
        now = time.monotonic()
        self._burst = now - self._last_arrival < _ACK_DELAY_MS / 1000.0
        self._last_arrival = now
        try:
            self._on_message(Delivery(body, self, tag, self._generation))
        except Exception:  # a callback must never kill the consumer
            LOG.exception("%s: listener callback failed", self.purpose)

    # the read loop
    def _serve(self, link: Link) -> None:
        """Read and dispatch until asked to stop; connection errors propagate."""
        wake_fd = self._wake_r
        poller = Poller(link.sock.fileno(), wake_fd)
        try:
            self._loop(link, poller, wake_fd)
        finally:
            poller.close()

    def _loop(self, link: Link, poller: Poller, wake_fd: int) -> None:
        interval = self._settings.heartbeat_interval
        next_beat = time.monotonic() + interval if interval else None
        commands = self._commands
        stop = self._stop
        driver_stop = self._driver_stop
        next_frame = link.read_frame
        buffered = link.buffered
        # Public path: deliveries waiting in the socket (the fast path's reader holds them in
        # its buffer already, seen by ``buffered``) are read before the acks go out, so that one
        # frame acknowledges them all, as on the fast path.
        more_ready = None if link.fast else link.pending
        # Public path: py-amqp's Basic.Ack holds the GIL for some 20 us; sent right after a
        # delivery was handed over, it would hold up the thread that took it (a worker, a
        # waiting caller). So acks always wait as in a burst (the poll lets that thread run).
        hold_acks = not link.fast
        reader = self._reader
        # (a delivery half read by the fast path, its content frames still to come, is always
        # finished first: py-amqp, which reads for us after this loop, could not take them)
        while (reader is not None and reader.tag is not None) or not (
                stop.is_set() or (driver_stop is not None and driver_stop.is_set())):
            if commands:
                self._run_commands()
            if buffered():
                next_frame()
                continue
            if self._acks:
                if more_ready is not None and len(self._acks) < self._ack_batch and \
                        more_ready():
                    next_frame()
                    continue
                # In a burst (deliveries closer together than the delay), hold the acks a
                # moment: deliveries arriving meanwhile are then acknowledged together, with
                # one frame. Waiting costs no latency: the poll returns as soon as a frame
                # comes. Outside bursts (one call at a time) the fast path's ack goes out at
                # once.
                if (self._burst or hold_acks) and len(self._acks) < self._ack_batch:
                    events = poller.poll(_ACK_DELAY_MS)
                    if events:
                        for fd, _ in events:
                            if fd == wake_fd:
                                self._clear_wake()
                            else:
                                next_frame()
                        continue
                self._flush_acks()
            if self._vanished is not None:
                self._raise_if_vanished()
            wake_at = next_beat
            rechecks = self._rechecks
            if rechecks:
                if time.monotonic() >= rechecks[0]:
                    rechecks.pop(0)
                    self._recheck_queues()
                    continue
                wake_at = rechecks[0] if wake_at is None else min(wake_at, rechecks[0])
            if wake_at is None:
                events = poller.poll()
            else:
                events = poller.poll(max(0.0, (wake_at - time.monotonic()) * 1000.0))
            for fd, _ in events:
                if fd == wake_fd:
                    self._clear_wake()
                else:
                    next_frame()
            if next_beat is not None and time.monotonic() >= next_beat:
                link.heartbeat_check()
                next_beat = time.monotonic() + interval  # type: ignore[operator]
