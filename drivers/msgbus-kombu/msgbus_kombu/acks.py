"""Acknowledgements of a consumer's deliveries, batched, from any thread.

A delivery acked on the consumer thread (the RPC server and the reply waiter do so inside the
callback) is queued in a list that the thread flushes before it blocks, so a burst of
deliveries is acknowledged with one frame (``multiple``); from any other thread the ack is
queued as a command and the consumer thread is woken through a pipe to send it, because a
py-amqp connection must not be written by two threads at once. A settle of a delivery from
before a reconnect is ignored (the broker requeued it).

:class:`Acknowledgements` is the part of :class:`~msgbus_kombu.consumer.ConsumerThread` that
does this (a base class, so the consumer's hot loop reads the same attributes as before).
"""

from __future__ import annotations

import collections
import errno
import logging
import os
import threading
import time
from typing import TYPE_CHECKING

from msgbus_kombu.link import CHANNEL_ERRORS, CONNECTION_ERRORS, Link, Poller

if TYPE_CHECKING:
    from msgbus_kombu.options import Settings

LOG = logging.getLogger(__name__)

_ACK = 80  # Basic.Ack
_REJECT = 90  # Basic.Reject


class Delivery:
    """One message handed to a listener callback (an IncomingMessage); ``ack``/``requeue``
    from any thread."""

    __slots__ = ("body", "_owner", "_tag", "_generation")

    def __init__(self, body: bytes, owner: Acknowledgements, tag: int, generation: int) -> None:
        self.body = body
        self._owner = owner
        self._tag = tag
        self._generation = generation

    def ack(self) -> None:
        self._owner.settle(self._tag, self._generation, False)

    def requeue(self) -> None:
        self._owner.settle(self._tag, self._generation, True)

    def __repr__(self) -> str:
        return f"<Delivery {self._tag} of {self._owner.purpose}>"


class Acknowledgements:
    """Settling deliveries for a consumer thread (see the module docstring)."""

    # set by the consumer thread
    purpose: str
    _settings: Settings
    _no_ack: bool
    _generation: int
    _ident: int | None
    _link: Link | None
    _channel_id: int

    def _init_acks(self, prefetch: int) -> None:
        self._unsettled: set[int] = set()
        self._commands: collections.deque[tuple[int, int, bool]] = collections.deque()
        self._acks: list[int] = []
        # never hold so many acks that a prefetch limit would stall the broker
        self._ack_batch = max(1, min(256, prefetch // 2)) if prefetch else 256
        self._wake_r, self._wake_w = os.pipe()
        os.set_blocking(self._wake_r, False)
        os.set_blocking(self._wake_w, False)
        self._wake_pending = False
        self._pipe_lock = threading.Lock()
        self._settle_lock = threading.Lock()

    def settle(self, tag: int, generation: int, requeue: bool) -> None:
        """Ack (or requeue) a delivery once; stale ones (from before a reconnect) are ignored."""
        if self._no_ack:
            return
        if generation != self._generation:
            LOG.debug("%s: ignoring settle of delivery %s from a lost connection (the broker "
                      "requeued it)", self.purpose, tag)
            return
        if threading.get_ident() == self._ident:
            try:
                self._unsettled.remove(tag)
            except KeyError:
                return  # settled already
            self._settle_now(tag, requeue)
            return
        with self._settle_lock:  # so that the thread never sees the tag in neither place
            try:
                self._unsettled.remove(tag)
            except KeyError:
                return
            self._commands.append((generation, tag, requeue))
        self._wake()

    def _settle_now(self, tag: int, requeue: bool) -> None:
        """Acks wait in a list until the thread is about to block (:meth:`_flush_acks`), so a
        burst of deliveries is acknowledged with one frame; a requeue is sent at once."""
        if not requeue:
            self._acks.append(tag)
            return
        self._flush_acks()
        self._write_settle(_REJECT, tag, 1)

    def _flush_acks(self) -> None:
        acks = self._acks
        if not acks:
            return
        self._acks = []
        top = max(acks)
        if len(acks) > 1:
            unsettled = self._unsettled
            with self._settle_lock:  # nothing older may still be open or queued for a requeue
                whole = not self._commands and len(unsettled) < 64 and \
                    not any(t < top for t in unsettled)
            if whole:
                self._write_settle(_ACK, top, 1)  # multiple: every delivery up to ``top``
                return
        for tag in acks:
            self._write_settle(_ACK, tag, 0)

    def _write_settle(self, method: int, tag: int, flag: int) -> None:
        link = self._link
        if link is None:
            return
        try:
            # Basic.Ack(tag, multiple) or Basic.Reject(tag, requeue): one small frame
            link.settle(tag, method == _ACK, bool(flag))
        except CONNECTION_ERRORS + CHANNEL_ERRORS as exc:
            LOG.info("%s: could not settle delivery %s (%s); the broker will redeliver it",
                     self.purpose, tag, exc)

    def _run_commands(self) -> None:
        commands = self._commands
        while commands:
            generation, tag, requeue = commands.popleft()
            if generation == self._generation:
                self._settle_now(tag, requeue)

    def _wake(self) -> None:
        if self._wake_pending:
            return
        self._wake_pending = True
        with self._pipe_lock:
            if self._wake_w < 0:
                return
            try:
                os.write(self._wake_w, b"!")
            except OSError as exc:
                if exc.errno != errno.EAGAIN:
                    raise

    def _clear_wake(self) -> None:
        # Empty the pipe first, then allow new wake-ups: commands queued in between are run
        # by the loop right after this, so none is left waiting without a wake-up. One read
        # (called when the pipe is readable; it holds a byte or two): a second one on an empty
        # pipe would block under eventlet, whose green os.read waits instead of failing.
        try:
            os.read(self._wake_r, 4096)
        except OSError:
            pass
        self._wake_pending = False

    def _all_settled(self) -> bool:
        with self._settle_lock:
            return not self._unsettled and not self._commands

    def _linger(self, link: Link) -> None:
        """Send the acks of deliveries settled by other threads, waiting for them a while."""
        self._run_commands()
        self._flush_acks()
        if self._no_ack or self._all_settled():
            return
        deadline = time.monotonic() + self._settings.kombu.listener_drain_timeout
        poller = Poller(link.sock.fileno(), self._wake_r)
        while True:
            self._run_commands()
            self._flush_acks()
            left = deadline - time.monotonic()
            if left <= 0 or self._all_settled():
                break
            for fd, _ in poller.poll(min(left, 1.0) * 1000.0):
                if fd == self._wake_r:
                    self._clear_wake()
                else:
                    link.read_frame()
        poller.close()
        if self._unsettled:
            LOG.warning("%s: %d deliveries were not settled within %.0fs of stopping; they go "
                        "back to their queue", self.purpose, len(self._unsettled),
                        self._settings.kombu.listener_drain_timeout)

    def _close_pipe(self) -> None:
        with self._pipe_lock:
            fds = (self._wake_r, self._wake_w)
            self._wake_r = self._wake_w = -1
            for fd in fds:
                try:
                    os.close(fd)
                except OSError:
                    pass
