"""The delivery handed to a listener callback (:class:`msgbus.driver.IncomingMessage`)."""

from __future__ import annotations

from typing import Protocol

from pika.channel import Channel


class Settler(Protocol):
    """Who acknowledges deliveries: the consumer owning the channel, in its I/O thread."""

    def settle(self, message: "PikaMessage", requeue: bool) -> None:
        """Ack (or requeue) ``message`` on its channel; thread-safe; once per message."""


class PikaMessage:
    """One delivery: its body and what it takes to settle it on the channel it came from."""

    __slots__ = ("body", "channel", "delivery_tag", "settled", "_settler")

    def __init__(self, body: bytes, channel: Channel, delivery_tag: int,
                 settler: Settler) -> None:
        self.body = body
        self.channel = channel
        self.delivery_tag = delivery_tag
        #: set by the I/O thread once the delivery was acked or requeued (or dropped)
        self.settled = False
        self._settler = settler

    def ack(self) -> None:
        """Acknowledge the delivery; thread-safe and idempotent."""
        if not self.settled:
            self._settler.settle(self, requeue=False)

    def requeue(self) -> None:
        """Give the delivery back to the broker for redelivery; thread-safe and idempotent."""
        if not self.settled:
            self._settler.settle(self, requeue=True)

    def __repr__(self) -> str:
        return f"<PikaMessage tag={self.delivery_tag} {len(self.body)} bytes>"
