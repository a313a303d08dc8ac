"""Checking, after a reconnect, that a consumer's queues still exist.

When a RabbitMQ cluster node dies, the survivors delete the records of its non-durable queues
in batches, by name. A consumer that reconnected to another node within milliseconds may have
declared such a queue again (its reply queue, say) before the clean-up reached it: the clean-up
then deletes the new queue's record while the consumer still consumes it, no basic.cancel
comes, and replies to it are returned as unroutable from then on. So a consumer that
reconnected asks the broker again, a few times over the next seconds, on a short connection of
its own (a passive declare that fails closes its channel); a missing queue makes it reconnect,
which declares the queue anew.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence

import amqp.exceptions

from msgbus_kombu.connection import LINK_ERRORS, Connector

LOG = logging.getLogger(__name__)

#: Longest a check may take (connecting included); a check that cannot finish is skipped.
CHECK_TIMEOUT = 2.0


class QueueVanished(amqp.exceptions.ConsumerCancelled):
    """A queue being consumed no longer exists on the broker: consume again from scratch."""


def missing_queue(connector: Connector, purpose: str, names: Sequence[str]) -> str | None:
    """The first of ``names`` the broker does not know, or None (also when it cannot be
    asked right now: the consumer's own connection notices a broker that went away)."""
    deadline = time.monotonic() + CHECK_TIMEOUT
    try:
        probe = connector.open(f"{purpose} (queue check)", deadline)
    except LINK_ERRORS as exc:
        LOG.debug("%s: could not check its queues: %s", purpose, exc)
        return None
    try:
        for name in names:
            try:
                with probe.bounded(deadline):
                    probe.channel.queue_declare(name, passive=True)
            except amqp.exceptions.NotFound:
                return name
    except LINK_ERRORS as exc:
        LOG.debug("%s: could not check its queues: %s", purpose, exc)
    finally:
        probe.close(timeout=0.5)
    return None
