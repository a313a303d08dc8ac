"""Turning the shared AMQP specs (:mod:`msgbus.driver.amqp`) into pika declarations.

Names, flags and arguments come only from the specs, so this driver declares exactly what the kombu
driver and oslo.messaging declare. Every declaration is sent as a synchronous AMQP method (with a
callback): pika queues such methods on a channel and sends each after the previous one's reply,
so a broker error (406 PRECONDITION_FAILED) belongs to the oldest declaration still unanswered.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable, Hashable

from pika.channel import Channel

from msgbus.driver.amqp import ExchangeSpec, QueueSpec


def declare_exchange(channel: Channel, spec: ExchangeSpec,
                     callback: Callable[[Any], None]) -> None:
    """Declare ``spec`` on ``channel``; ``callback(frame)`` runs on Exchange.DeclareOk."""
    channel.exchange_declare(spec.name, exchange_type=spec.type, durable=spec.durable,
                             auto_delete=spec.auto_delete, callback=callback)


def declare_queue(channel: Channel, spec: QueueSpec, callback: Callable[[Any], None]) -> None:
    """Declare the queue of ``spec`` (never exclusive: oslo's queues are not)."""
    channel.queue_declare(spec.name, durable=spec.durable, auto_delete=spec.auto_delete,
                          exclusive=False, arguments=dict(spec.arguments), callback=callback)


def bind_queue(channel: Channel, spec: QueueSpec, callback: Callable[[Any], None]) -> None:
    """Bind the queue of ``spec`` to its exchange with its routing key."""
    assert spec.exchange is not None
    channel.queue_bind(spec.name, spec.exchange.name, routing_key=spec.routing_key,
                       callback=callback)


def _ignore(_frame: Any) -> None:
    """The reply of a declaration that is not the last of its group."""


@dataclasses.dataclass(frozen=True)
class Declaration:
    """Something a publisher must have declared before it publishes: an exchange, or (for
    notifications) an exchange plus a queue bound to it. ``key`` identifies it in caches."""

    key: Hashable
    exchange: ExchangeSpec | None
    queue: QueueSpec | None = dataclasses.field(default=None, compare=False)

    def issue(self, channel: Channel, done: Callable[[], None]) -> None:
        """Send the declaration's methods; ``done()`` runs when the broker answered them all."""
        steps: list[Callable[[Callable[[Any], None]], None]] = []
        if self.exchange is not None:
            exchange = self.exchange
            steps.append(lambda cb: declare_exchange(channel, exchange, cb))
        if self.queue is not None:
            queue = self.queue
            steps.append(lambda cb: declare_queue(channel, queue, cb))
            if queue.exchange is not None:
                steps.append(lambda cb: bind_queue(channel, queue, cb))
        for step in steps[:-1]:
            step(_ignore)
        steps[-1](lambda _frame: done())


def exchange_declaration(spec: ExchangeSpec) -> Declaration:
    """The declaration of an exchange a message is published to."""
    return Declaration(("exchange", spec.name), spec)


def queue_declaration(spec: QueueSpec) -> Declaration:
    """The declaration of a queue (and its exchange and binding) a publisher keeps messages in."""
    exchange = spec.exchange.name if spec.exchange else ""
    return Declaration(("queue", spec.name, exchange, spec.routing_key), spec.exchange, spec)
