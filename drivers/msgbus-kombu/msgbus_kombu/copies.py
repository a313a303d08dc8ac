"""Copies a send connection keeps of its messages, to publish them again.

* :class:`InFlight`: a cast published ahead of its confirm (pipelined), kept until the broker
  confirms it; published again after a cut (at most :data:`MAX_CAST_ATTEMPTS` times), or held
  when the broker returns or nacks it (see :mod:`msgbus_kombu.keeper`): a quorum queue whose
  leader died nacks every publish until a new leader is elected, which a count of attempts
  would not outlast.
* :class:`Recent`: the replies the broker confirmed lately. A broker that stops drops its
  non-durable queues with whatever they hold, replies on their way to a caller among them. It
  closes its connections with reason ``shutdown``, or just resets them. So each send connection
  remembers the replies the broker confirmed in the last :data:`RECENT_SECONDS` (bodies up to
  16 KiB), and when the connection ends that way (:func:`broker_may_have_lost`) publishes them
  again, mandatory, once the broker is back: a copy that finds no reply queue yet is held until
  the caller declares it again. This is safe because a reply queue has exactly one consumer,
  the caller's transport, which drops a reply it already had by its ``_unique_id``.

  Casts and call requests are not sent again this way (``everything`` stays off in the
  driver): most of what the broker confirmed in the last second was already taken by a server,
  and a copy sent again could reach another server of the same topic (or an oslo.messaging
  server, which remembers only 16 ids) and run twice. A message that sat in a non-durable queue
  when the broker stopped dies with it: durable or quorum queues are the answer.
"""

from __future__ import annotations

import collections
import logging
import time
from typing import Any, NamedTuple

from msgbus.driver.amqp import ExchangeSpec
from msgbus.driver.held_casts import Held

LOG = logging.getLogger(__name__)

#: A pipelined cast whose confirm did not come after this many publishes is dropped with an
#: error log (the broker keeps refusing it, e.g. permissions), rather than retried forever.
MAX_CAST_ATTEMPTS = 4
#: How long (seconds) a connection remembers the messages the broker confirmed, how many at
#: most and up to which body size (so at most 2 MiB a connection).
RECENT_SECONDS = 1.0
RECENT_MAX = 128
RECENT_BODY_MAX = 16 * 1024
#: AMQP's CONNECTION_FORCED: the broker closed the connection (its text says why).
_CONNECTION_FORCED = 320


class InFlight(NamedTuple):
    """A message: what it takes to publish it again (after a cut, a nack, or a return)."""

    exchange: ExchangeSpec | None
    routing_key: str
    body: bytes
    #: as :data:`msgbus_kombu.link.Properties` (bytes on the fast path, else a dict)
    properties: Any
    #: how many times it was published without a confirm (see :data:`MAX_CAST_ATTEMPTS`)
    attempts: int = 1
    #: published mandatory, to be held when the broker returns it
    hold: bool = False
    #: its record while held, when this is a held cast sent again
    held: Held | None = None

    def where(self) -> str:
        """Where it goes, for log lines."""
        name = self.exchange.name if self.exchange is not None else ""
        return f"exchange {name!r} with routing key {self.routing_key!r}"


def spent(copy: InFlight) -> bool:
    """Whether ``copy`` was published its last time; logs that it is dropped."""
    if copy.attempts < MAX_CAST_ATTEMPTS:
        return False
    LOG.error("dropping a cast to %s: published %d times, never confirmed by the broker",
              copy.where(), copy.attempts)
    return True


def broker_may_have_lost(exc: BaseException | None) -> bool:
    """Whether a connection that ended with ``exc`` may have ended with the broker stopping:
    closed with reason ``shutdown``, reset, or cut without a close."""
    if getattr(exc, "reply_code", None) == _CONNECTION_FORCED:
        return "shutdown" in str(exc).lower()
    if isinstance(exc, (ConnectionResetError, BrokenPipeError, EOFError)):
        return True
    return isinstance(exc, OSError) and "unexpectedly closed" in str(exc)


class Recent:
    """The messages one send connection had confirmed lately (see the module docstring); used
    by that connection's thread only."""

    __slots__ = ("_items", "everything")

    def __init__(self, everything: bool) -> None:
        self._items: collections.deque[tuple[float, InFlight]] = collections.deque(
            maxlen=RECENT_MAX)
        #: every message (non-durable queues), else replies only
        self.everything = everything

    def __bool__(self) -> bool:
        return bool(self._items)

    def __len__(self) -> int:
        return len(self._items)

    def confirmed(self, settled: list[tuple[int, InFlight | None]]) -> None:
        """Pipelined casts the broker confirmed (``settled``: tags and copies)."""
        if not self.everything:
            return
        now = time.monotonic()
        append = self._items.append
        for _, copy in settled:
            if copy is not None and len(copy.body) <= RECENT_BODY_MAX:
                append((now, copy))

    def confirmed_one(self, now: float, exchange: ExchangeSpec | None, routing_key: str,
                      body: bytes, properties: Any) -> None:
        """A message whose sender waited for its confirm (a call, a reply, ...)."""
        if (self.everything or exchange is None) and len(body) <= RECENT_BODY_MAX:
            self._items.append((now, InFlight(exchange, routing_key, body, properties)))

    def forget_old(self) -> None:
        """Drop what was confirmed more than :data:`RECENT_SECONDS` ago."""
        items = self._items
        since = time.monotonic() - RECENT_SECONDS
        while items and items[0][0] < since:
            items.popleft()

    def take_if_lost(self, cause: BaseException | None) -> list[InFlight]:
        """The connection is gone: forget everything, and when ``cause`` says the broker may
        have stopped, return what it confirmed in the last :data:`RECENT_SECONDS`, to be
        published again mandatory (held if no queue takes it)."""
        items, self._items = self._items, collections.deque(maxlen=RECENT_MAX)
        if not broker_may_have_lost(cause):
            return []
        since = time.monotonic() - RECENT_SECONDS
        return [copy._replace(hold=True) for at, copy in items if at >= since]
