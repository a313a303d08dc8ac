"""An in-process message broker with AMQP-like exchanges, bindings and queues.

It holds messages as bytes, delivers them from one thread per broker (as a real driver's I/O
thread would), round-robins a queue's consumers, keeps messages for queues without consumers and
drops messages routed nowhere. Like an AMQP broker, it remembers each consumer's deliveries until
they are acknowledged or requeued, and gives the unsettled ones back to their queue when the
consumer is released (its connection closed). It exists for ``fake://`` and users' unit tests.
"""

from __future__ import annotations

import collections
import dataclasses
import heapq
import itertools
import logging
import threading
import time
from typing import Callable

LOG = logging.getLogger(__name__)

#: Seconds between two log lines about the same quickly requeued message.
REQUEUE_LOG_EVERY = 10.0


@dataclasses.dataclass(frozen=True)
class RequeueThrottle:
    """After ``burst`` requeues of one message each within ``period`` seconds of the previous
    one, the message waits ``delay`` seconds before each redelivery (it is never dropped)."""

    burst: int = 20
    period: float = 1.0
    delay: float = 0.2


class FakeMessage:
    """A delivery from the fake broker; ack and requeue are thread-safe."""

    __slots__ = ("body", "_queue", "_broker", "_consumer", "_settled", "expires_at", "quick",
                 "requeued_at", "logged_at")

    def __init__(self, body: bytes, expires_at: float | None = None) -> None:
        self.body = body
        self.expires_at = expires_at
        #: requeues in a row, each within the throttle's period of the one before
        self.quick = 0
        self.requeued_at = 0.0
        self.logged_at: float | None = None
        self._queue: "FakeQueue | None" = None
        self._broker: "FakeBroker | None" = None
        self._consumer: "Consumer | None" = None
        self._settled = False

    def ack(self) -> None:
        if self._broker is not None:
            self._broker._settle(self, requeue=False)
        else:
            self._settled = True

    def requeue(self) -> None:
        if self._broker is not None:
            self._broker._settle(self, requeue=True)


class Consumer:
    """One subscription to a queue."""

    __slots__ = ("callback", "active", "busy", "unsettled")

    def __init__(self, callback: Callable[[FakeMessage], None]) -> None:
        self.callback = callback
        self.active = True
        self.busy = 0
        #: deliveries handed to this consumer and not yet acknowledged or requeued, in order
        self.unsettled: dict[FakeMessage, None] = {}


class FakeQueue:
    __slots__ = ("name", "messages", "consumers", "rr", "exclusive_owner")

    def __init__(self, name: str) -> None:
        self.name = name
        self.messages: collections.deque[FakeMessage] = collections.deque()
        self.consumers: list[Consumer] = []
        self.rr = itertools.count()


class FakeBroker:
    """Exchanges (topic: exact key match; fanout: every bound queue) and queues."""

    def __init__(self, name: str) -> None:
        self.name = name
        self._cond = threading.Condition()
        self._queues: dict[str, FakeQueue] = {}
        # exchange name -> routing key -> queue names ("" key for fanout exchanges)
        self._bindings: dict[str, dict[str, set[str]]] = {}
        self._fanout: set[str] = set()
        self._ready: collections.deque[FakeQueue] = collections.deque()
        self._thread: threading.Thread | None = None
        self._closed = False
        self.throttle = RequeueThrottle()
        # quickly requeued messages waiting for redelivery: (due, tie-breaker, message, queue)
        self._delayed: list[tuple[float, int, FakeMessage, FakeQueue]] = []
        self._tie = itertools.count()

    # topology
    def declare_queue(self, name: str) -> None:
        with self._cond:
            if name not in self._queues:
                self._queues[name] = FakeQueue(name)

    def bind(self, exchange: str, key: str, queue: str, *, fanout: bool = False) -> None:
        with self._cond:
            if fanout:
                self._fanout.add(exchange)
                key = ""
            self._bindings.setdefault(exchange, {}).setdefault(key, set()).add(queue)

    def delete_queue(self, name: str) -> None:
        with self._cond:
            self._queues.pop(name, None)
            for keys in self._bindings.values():
                for queues in keys.values():
                    queues.discard(name)

    def has_queue(self, name: str) -> bool:
        with self._cond:
            return name in self._queues

    def queue_depth(self, name: str) -> int:
        with self._cond:
            queue = self._queues.get(name)
            held = sum(1 for item in self._delayed if item[3] is queue)
            return len(queue.messages) + held if queue else 0

    # publishing
    def publish(self, exchange: str, key: str, body: bytes, ttl: float | None = None) -> int:
        """Route ``body``; returns how many queues received it."""
        expires_at = None if ttl is None else time.monotonic() + ttl
        with self._cond:
            if exchange == "":
                names = {key} if key in self._queues else set()
            else:
                keys = self._bindings.get(exchange, {})
                names = keys.get("" if exchange in self._fanout else key, set())
            routed = 0
            for name in names:
                queue = self._queues.get(name)
                if queue is None:
                    continue
                queue.messages.append(FakeMessage(body, expires_at))
                routed += 1
                self._mark_ready(queue)
            return routed

    def _settle(self, message: FakeMessage, requeue: bool) -> None:
        """Acknowledge (or give back) a delivery; the first settlement wins."""
        with self._cond:
            if message._settled:
                return
            message._settled = True
            if message._consumer is not None:
                message._consumer.unsettled.pop(message, None)
            if requeue:
                self._requeue(message)

    def _requeue(self, message: FakeMessage) -> None:
        # caller holds the lock: back to the head of its queue, later if it spins
        queue = message._queue
        if queue is None or self._queues.get(queue.name) is not queue:
            return
        now, throttle = time.monotonic(), self.throttle
        copy = FakeMessage(message.body, message.expires_at)
        # once slowed, the wait before its redelivery does not count against the message
        slack = throttle.delay if message.quick >= throttle.burst else 0.0
        quick = message.requeued_at and now - message.requeued_at < throttle.period + slack
        copy.quick = message.quick + 1 if quick else 1
        copy.requeued_at, copy.logged_at = now, message.logged_at
        if copy.quick < throttle.burst or throttle.delay <= 0:
            queue.messages.appendleft(copy)
            self._mark_ready(queue)
            return
        if copy.logged_at is None or now - copy.logged_at >= REQUEUE_LOG_EVERY:
            copy.logged_at = now
            LOG.warning("fake broker %r: message %s on queue %r was requeued %d times in a row "
                        "(each within %.3gs); it is delivered again every %.3gs while this "
                        "goes on (is a listener requeueing everything?)", self.name,
                        _message_id(copy.body), queue.name, copy.quick, throttle.period,
                        throttle.delay)
        heapq.heappush(self._delayed, (now + throttle.delay, next(self._tie), copy, queue))
        self._cond.notify_all()

    def _release_due(self) -> float | None:
        # caller holds the lock: due held messages go back to their queues' heads; returns the
        # seconds until the next one is due (None: none held)
        now = time.monotonic()
        while self._delayed and self._delayed[0][0] <= now:
            _, _, message, queue = heapq.heappop(self._delayed)
            if self._queues.get(queue.name) is queue:
                queue.messages.appendleft(message)
                self._mark_ready(queue)
        return self._delayed[0][0] - now if self._delayed else None

    def _give_back(self, message: FakeMessage) -> None:
        # caller holds the lock: the delivery goes back to the head of its queue
        queue = message._queue
        if queue is not None and self._queues.get(queue.name) is queue:
            copy = FakeMessage(message.body, message.expires_at)
            copy.quick, copy.requeued_at = message.quick, message.requeued_at
            copy.logged_at = message.logged_at
            queue.messages.appendleft(copy)
            self._mark_ready(queue)

    def release(self, consumers: list[Consumer]) -> None:
        """The consumers' connection is gone: their unsettled deliveries go back to their
        queues (as a broker does when a channel closes); a later ack of one does nothing."""
        with self._cond:
            for consumer in consumers:
                for message in reversed(consumer.unsettled):  # head of queue, in order
                    message._settled = True
                    self._give_back(message)
                consumer.unsettled.clear()

    # consuming
    def consume(self, queue_name: str, callback: Callable[[FakeMessage], None]) -> Consumer:
        consumer = Consumer(callback)
        with self._cond:
            queue = self._queues.get(queue_name)
            if queue is None:
                raise LookupError(f"no queue {queue_name!r} on fake broker {self.name!r}")
            queue.consumers.append(consumer)
            self._mark_ready(queue)
        return consumer

    def cancel(self, consumers: list[Consumer]) -> None:
        """Stop consumers; returns once none of their callbacks is running."""
        in_delivery_thread = threading.current_thread() is self._thread
        with self._cond:
            for consumer in consumers:
                consumer.active = False
                for queue in self._queues.values():
                    if consumer in queue.consumers:
                        queue.consumers.remove(consumer)
            if not in_delivery_thread:
                self._cond.wait_for(lambda: all(c.busy == 0 for c in consumers), timeout=30)

    def _mark_ready(self, queue: FakeQueue) -> None:
        # caller holds the lock
        if queue.messages and queue.consumers:
            self._ready.append(queue)
            if self._thread is None:
                self._thread = threading.Thread(target=self._deliver_forever,
                                                name=f"msgbus-fake-{self.name}", daemon=True)
                self._thread.start()
            self._cond.notify_all()

    def _next_delivery(self) -> tuple[Consumer, FakeMessage, FakeQueue] | None:
        # caller holds the lock; returns None when there is nothing to deliver now
        while self._ready:
            queue = self._ready[0]
            if not queue.consumers or not queue.messages or \
                    self._queues.get(queue.name) is not queue:
                self._ready.popleft()
                continue
            message = queue.messages.popleft()
            if not queue.messages:
                self._ready.popleft()
            if message.expires_at is not None and message.expires_at < time.monotonic():
                continue
            consumer = queue.consumers[next(queue.rr) % len(queue.consumers)]
            consumer.busy += 1
            message._queue, message._broker, message._consumer = queue, self, consumer
            consumer.unsettled[message] = None
            return consumer, message, queue
        return None

    def _deliver_forever(self) -> None:
        while True:
            with self._cond:
                wait = self._release_due()
                item = self._next_delivery()
                while item is None:
                    if self._closed:
                        return
                    self._cond.wait(wait)
                    wait = self._release_due()
                    item = self._next_delivery()
            consumer, message, queue = item
            try:
                consumer.callback(message)
            except Exception:
                LOG.exception("fake broker: consumer of %s raised", queue.name)
            finally:
                with self._cond:
                    consumer.busy -= 1
                    self._cond.notify_all()

    def reset(self) -> None:
        """Drop every queue, binding and consumer; the delivery thread ends."""
        with self._cond:
            for queue in self._queues.values():
                for consumer in queue.consumers:
                    consumer.active = False
            self._queues.clear()
            self._bindings.clear()
            self._fanout.clear()
            self._ready.clear()
            self._delayed.clear()
            self._closed = True
            self._cond.notify_all()


def _message_id(body: bytes) -> str:
    """The message's id for a log line: its oslo msg/unique/notification id when readable."""
    from msgbus import envelope
    try:
        inner = envelope.decode(body)
    except Exception:  # noqa: BLE001 - a body the broker cannot read still gets a log line
        return f"of {len(body)} bytes"
    for key in ("_msg_id", "_unique_id", "message_id"):
        if isinstance(inner.get(key), str):
            return inner[key]
    return f"of {len(body)} bytes"


class BrokerRegistry:
    """The fake brokers of a process, one per URL: transports naming the same URL meet there."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._brokers: dict[str, FakeBroker] = {}

    def get(self, name: str) -> FakeBroker:
        with self._lock:
            broker = self._brokers.get(name)
            if broker is None:
                broker = self._brokers[name] = FakeBroker(name)
            return broker

    def reset(self) -> None:
        with self._lock:
            brokers, self._brokers = list(self._brokers.values()), {}
        for broker in brokers:
            broker.reset()


#: The process's fake brokers. Deliberately process-wide: it is what lets a client transport and a
#: server transport made separately find each other. :func:`msgbus.fake.reset` empties it.
REGISTRY = BrokerRegistry()
