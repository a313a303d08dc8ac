"""Acknowledgements of one consuming channel, sent once per turn of the I/O loop.

Acking every delivery on its own costs a write (a system call, and in a busy process a wait to
get the GIL back) per message. Acks are instead collected while the I/O loop handles what it
read and sent at the end of that turn: one ``basic.ack`` with ``multiple`` for the longest run of
settled deliveries starting from the oldest unsettled one, and single acks for settled deliveries
after a gap (a message still being handled, as notification listeners may do). Requeues go out at
once. A delivery is never acked twice and never covered by a ``multiple`` ack unless settled.
A consumer may also delay its acks a little longer (``delay``): replies do, so that a caller
making calls one after the other does not pay a frame per reply (one on its way at a cut is
delivered again, and the core drops the copy).
"""

from __future__ import annotations

import collections
from typing import Any, Callable

from pika.channel import Channel


class AckBatcher:
    """The deliveries of ``channel`` not yet acknowledged to the broker (I/O thread only)."""

    def __init__(self, channel: Channel, call_later: Callable[[float, Callable[[], None]], Any],
                 delay: float = 0.0) -> None:
        self._channel = channel
        self._call_later = call_later
        #: seconds acks wait to be sent (0: at the end of this loop turn)
        self._delay = delay
        #: delivery tag -> settled (acked by the application, not yet sent)
        self._unsettled: collections.OrderedDict[int, bool] = collections.OrderedDict()
        self._pending = 0
        self._scheduled = False
        #: called (I/O thread) once every delivery is settled and sent, when set
        self.on_idle: Callable[[], None] | None = None

    def outstanding(self) -> int:
        """Deliveries the application has not settled yet (or whose ack is not sent yet)."""
        return len(self._unsettled)

    def _check_idle(self) -> None:
        if self.on_idle is not None and not self._unsettled:
            on_idle, self.on_idle = self.on_idle, None
            on_idle()

    def delivered(self, tag: int) -> None:
        """A delivery reached the application."""
        self._unsettled[tag] = False

    def ack(self, tag: int) -> None:
        """The application acked ``tag``: send it with the others at the end of this turn."""
        if self._unsettled.get(tag) is not False:
            return  # unknown here, or already acked
        self._unsettled[tag] = True
        self._pending += 1
        if not self._scheduled:
            self._scheduled = True
            self._call_later(self._delay, self.flush)

    def requeue(self, tag: int) -> None:
        """Give ``tag`` back to the broker now."""
        if self._unsettled.pop(tag, None) is False and self._channel.is_open:
            self._channel.basic_nack(tag, requeue=True)
        self._check_idle()

    def give_back(self, tag: int) -> None:
        """Requeue a delivery that never reached the application (the listener stopped)."""
        if self._channel.is_open:
            self._channel.basic_nack(tag, requeue=True)

    def flush(self) -> None:
        """Send the collected acks (an I/O loop timer calls this)."""
        self._scheduled = False
        if not self._pending or not self._channel.is_open:
            return
        self._pending = 0
        unsettled = self._unsettled
        last = 0
        while unsettled:
            tag, settled = next(iter(unsettled.items()))
            if not settled:
                break
            unsettled.popitem(last=False)
            last = tag
        if last:
            self._channel.basic_ack(last, multiple=True)
        stragglers = [tag for tag, settled in unsettled.items() if settled]
        for tag in stragglers:
            del unsettled[tag]
            self._channel.basic_ack(tag)
        self._check_idle()
