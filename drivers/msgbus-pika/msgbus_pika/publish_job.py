"""One message on its way to the broker: made by the sending thread, driven by the I/O thread.

The sending thread waits on the job; the I/O thread settles it exactly once, when the broker
confirmed the message (success), returned it as unroutable (MessageUndeliverable, or success for
a cast the driver holds and sends again: see :mod:`msgbus_pika.held`) or when the retry budget
ran out (MessageDeliveryFailure).
"""

from __future__ import annotations

import threading
from typing import Any, Callable, Sequence

import pika

from msgbus_pika.declarations import Declaration


class PublishJob:
    """A publish with its retry budget and the outcome the sending thread waits for."""

    __slots__ = ("exchange", "routing_key", "body", "properties", "mandatory", "retry",
                 "declarations", "holds", "held", "attempts", "channel_errors", "returned",
                 "abandoned", "error", "on_settled", "_settled", "_done")

    def __init__(self, exchange: str, routing_key: str, body: bytes,
                 properties: pika.BasicProperties, mandatory: bool, retry: int | None,
                 declarations: Sequence[Declaration] = (), holds: bool = False) -> None:
        self.exchange = exchange
        self.routing_key = routing_key
        self.body = body
        self.properties = properties
        #: published mandatory (by the caller's wish, or because ``holds``)
        self.mandatory = mandatory or holds
        #: None: retry connection failures forever; 0: never; N: at most N times
        self.retry = retry
        self.declarations = declarations
        #: a cast the driver publishes mandatory itself: when the broker returns it, it is held
        #: and sent again (:mod:`msgbus_pika.held`) and the job succeeds
        self.holds = holds
        #: the held record when this job is such a cast sent again (a HeldCasts entry)
        self.held: Any = None
        #: failed attempts so far (connection attempts, losses before the confirm, nacks)
        self.attempts = 0
        #: channels closed by the broker while this job was pending (bounded separately)
        self.channel_errors = 0
        #: the broker returned the message (mandatory, unroutable); its confirm follows
        self.returned = False
        #: the sending thread stopped waiting (timeout): do not publish it any more
        self.abandoned = False
        self.error: BaseException | None = None
        #: called in the I/O thread once settled (for publishes nobody waits for)
        self.on_settled: Callable[[PublishJob], None] | None = None
        self._settled = False
        self._done = threading.Lock()
        self._done.acquire()

    @property
    def settled(self) -> bool:
        return self._settled

    def out_of_retries(self) -> bool:
        """True when the failed attempts exceed the retry budget."""
        return self.retry is not None and self.attempts > self.retry

    def succeed(self) -> None:
        """The broker has the message (I/O thread)."""
        self._settle(None)

    def fail(self, error: BaseException) -> None:
        """The message was not delivered; ``error`` is raised in the sending thread."""
        self._settle(error)

    def _settle(self, error: BaseException | None) -> None:
        if self._settled:
            return
        self._settled = True
        self.error = error
        self._done.release()
        if self.on_settled is not None:
            self.on_settled(self)

    def wait(self, timeout: float | None) -> bool:
        """Block until settled, at most ``timeout`` seconds (None: no limit); True if settled."""
        if timeout is None:
            return self._done.acquire()
        return self._done.acquire(timeout=max(timeout, 0.0))

    def again(self) -> "PublishJob":
        """A fresh job publishing the same message (a held cast sent again), retried forever:
        it is bounded by ``cast_hold_timeout`` instead."""
        return PublishJob(self.exchange, self.routing_key, self.body, self.properties, True,
                          None, self.declarations, holds=True)

    def describe(self) -> str:
        return f"exchange {self.exchange!r} with routing key {self.routing_key!r}"
