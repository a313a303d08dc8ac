"""Notification listeners: servers that consume notifications and run endpoints on them.

A listener consumes, for each target, the queues ``<topic>.<priority>`` of every priority some
endpoint has a method for (or, with a ``pool``, the pool's queue bound to them: listeners of one
pool share the messages, each pool gets its own copy). A notification is acknowledged after its
endpoints ran (at least once); with ``allow_requeue`` one whose endpoint returned ``REQUEUE`` or
raised is given back to the broker instead. Redelivered duplicates (same ``_unique_id``) and
malformed messages are logged, acknowledged and dropped.
"""

from __future__ import annotations

import logging
import threading
from typing import Any, Sequence

from msgbus import envelope
from msgbus.driver.base import Capability, IncomingMessage, Listener
from msgbus.exceptions import InvalidTarget, MessagingServerError
from msgbus.executors.base import Executor
from msgbus.notify.batch import Batcher, check_batch_limits
from msgbus.notify.dedup import Deduplicator
from msgbus.notify.dispatcher import (BatchNotificationDispatcher, Notification,
                                      NotificationDispatcher, NotificationResult,
                                      parse_notification)
from msgbus.serializer import Serializer
from msgbus.server import MessageHandlingServer
from msgbus.target import Target
from msgbus.transport import NotificationTransport, Transport

LOG = logging.getLogger(__name__)

__all__ = ["NotificationServer", "BatchNotificationServer", "get_notification_listener",
           "get_batch_notification_listener"]


class NotificationServerBase(MessageHandlingServer):
    """What both listeners share: queues to consume, decoding, dedup, ack or requeue."""

    def __init__(self, transport: Transport, targets: Sequence[Target],
                 dispatcher: NotificationDispatcher,
                 executor: str | type[Executor] = "threading", allow_requeue: bool = False,
                 pool: str | None = None) -> None:
        targets = list(targets)
        if not dispatcher.supported_priorities:
            raise MessagingServerError(
                "no notification endpoint has a method named after a priority (audit, debug, "
                "info, warn, error, critical, sample): the listener would consume nothing")
        if not isinstance(transport, NotificationTransport):
            LOG.warning("notification listener uses an RPC transport: get one with "
                        "get_notification_transport")
        super().__init__(transport, executor)
        self.targets = targets
        self.target = targets  # named in ServerListenError
        self.dispatcher = dispatcher
        self.pool = pool
        self._allow_requeue = allow_requeue
        self._can_requeue = Capability.REQUEUE in transport.capabilities
        if allow_requeue and not self._can_requeue:
            LOG.warning("allow_requeue is set but the %s driver cannot requeue: notifications "
                        "to requeue will be acknowledged (and lost) instead",
                        transport.url.transport)
        self._dedup = Deduplicator(self.conf.rpc_duplicate_window)
        if not self.runs_coroutines and dispatcher.has_async_methods():
            LOG.warning("notification listener on %s has 'async def' endpoint methods but the "
                        "%r executor cannot run them: build it with executor='asyncio'",
                        self._describe(), self.executor_type)

    def start(self, override_pool_size: int | None = None) -> None:
        """Begin consuming. The targets are checked here (a topic each), not when the listener
        is built: as with oslo.messaging, ``start()`` raises InvalidTarget."""
        if not self.targets:
            raise InvalidTarget("At least one target is required for a notification listener",
                                self.targets)
        for target in self.targets:
            target.require("topic", why="for a notification listener's target")
        super().start(override_pool_size)

    def listen_targets(self) -> list[Target]:
        """The ``<topic>.<priority>`` targets consumed: every target by every priority handled."""
        result: list[Target] = []
        for target in self.targets:
            for priority in self.dispatcher.supported_priorities:
                queue_target = Target(exchange=target.exchange,
                                      topic=f"{target.topic}.{priority}")
                if queue_target not in result:
                    result.append(queue_target)
        return result

    def _create_listener(self) -> Listener:
        return self.transport.listen_for_notifications(self.listen_targets(), self.pool,
                                                       self._on_incoming)

    def _accept(self, incoming: IncomingMessage) -> Notification | None:
        """Decode a delivery; None (after acking it) when it is malformed or a duplicate."""
        try:
            note = parse_notification(envelope.decode(incoming.body))
        except envelope.MalformedMessage as exc:
            LOG.error("notification listener on %s dropped a malformed message: %s "
                      "(first bytes: %r)", self._describe(), exc, bytes(incoming.body[:120]))
            self._ack(incoming)
            return None
        if self._dedup.is_duplicate(note.unique_id):
            LOG.warning("notification listener on %s dropped duplicate notification %s "
                        "(unique id %s)", self._describe(), note.metadata.get("message_id"),
                        note.unique_id)
            self._ack(incoming)
            return None
        return note

    def _describe(self) -> str:
        topics = ",".join(str(t.topic) for t in self.targets)
        return f"{topics} (pool {self.pool})" if self.pool else topics

    @staticmethod
    def _ack(incoming: IncomingMessage) -> None:
        try:
            incoming.ack()
        except Exception:
            LOG.exception("could not acknowledge a notification")

    def _settle(self, incoming: IncomingMessage, note: Notification, requeue: bool) -> None:
        """Acknowledge ``incoming``, or requeue it when asked, allowed and possible."""
        if requeue:
            if not self._allow_requeue:
                LOG.debug("notification %s not requeued (allow_requeue is off): acknowledged",
                          note.metadata.get("message_id"))
            elif not self._can_requeue:
                LOG.error("notification %s should be requeued but the driver cannot: "
                          "acknowledged and lost", note.metadata.get("message_id"))
            else:
                self._dedup.expect(note.unique_id)
                try:
                    incoming.requeue()
                    return
                except Exception:
                    LOG.exception("could not requeue notification %s",
                                  note.metadata.get("message_id"))
                    return
        self._ack(incoming)

    def _give_back(self, incoming: IncomingMessage, note: Notification) -> None:
        """A delivery that arrived while the server stops: back to the broker when possible."""
        if self._can_requeue:
            self._dedup.expect(note.unique_id)
            incoming.requeue()
        else:
            LOG.error("notification %s arrived after the listener stopped and cannot be "
                      "requeued: acknowledged", note.metadata.get("message_id"))
            self._ack(incoming)


class NotificationServer(NotificationServerBase):
    """Runs the endpoints on each notification, one executor task per notification."""

    def _on_incoming(self, incoming: IncomingMessage) -> None:
        note = self._accept(incoming)
        if note is None:
            return
        try:
            if self.runs_coroutines and self.dispatcher.is_async(note.priority):
                self._submit_async(self._process_async, incoming, note)
            else:
                self._submit(self._process, incoming, note)
        except MessagingServerError:
            self._give_back(incoming, note)

    def _process(self, incoming: IncomingMessage, note: Notification) -> None:
        try:
            result = self.dispatcher.dispatch(note)
        except Exception:
            LOG.exception("dispatching notification %s failed", note.metadata.get("message_id"))
            result = NotificationResult.REQUEUE
        self._settle(incoming, note, result == NotificationResult.REQUEUE)

    async def _process_async(self, executor: Any, incoming: IncomingMessage,
                             note: Notification) -> None:
        """:meth:`_process` on the event loop; the ack (a driver call) is made on a thread."""
        try:
            result = await self.dispatcher.dispatch_async(note, executor.run_in_thread)
        except Exception:
            LOG.exception("dispatching notification %s failed", note.metadata.get("message_id"))
            result = NotificationResult.REQUEUE
        executor.call_driver(self._settle, incoming, note, result == NotificationResult.REQUEUE)


class BatchNotificationServer(NotificationServerBase):
    """Runs the endpoints on lists of notifications: ``batch_size`` of them, or what arrived
    within ``batch_timeout`` seconds of the first one, whichever comes first."""

    dispatcher: BatchNotificationDispatcher

    def __init__(self, transport: Transport, targets: Sequence[Target],
                 dispatcher: BatchNotificationDispatcher,
                 executor: str | type[Executor] = "threading", allow_requeue: bool = False,
                 pool: str | None = None, batch_size: int | None = None,
                 batch_timeout: float | None = None) -> None:
        super().__init__(transport, targets, dispatcher, executor, allow_requeue, pool)
        if batch_size is None and batch_timeout is None:
            batch_size = 1
        self.batch_size = batch_size
        self.batch_timeout = batch_timeout
        check_batch_limits(batch_size, batch_timeout)
        self._batch_lock = threading.Lock()
        self._batcher: Batcher | None = None

    def start(self, override_pool_size: int | None = None) -> None:
        with self._batch_lock:
            if self._batcher is None:
                self._batcher = Batcher(self._flush, self.batch_size, self.batch_timeout,
                                        name=f"msgbus-batch-{self._describe()}")
        try:
            super().start(override_pool_size)
        except Exception:
            self._close_batcher()
            raise

    def stop(self) -> None:
        super().stop()  # no delivery runs or begins after this
        self._close_batcher()  # what is buffered goes to the executor; wait() sees it handled

    def _close_batcher(self) -> None:
        with self._batch_lock:
            batcher, self._batcher = self._batcher, None
        if batcher is not None:
            batcher.close()

    def _on_incoming(self, incoming: IncomingMessage) -> None:
        note = self._accept(incoming)
        if note is None:
            return
        batcher = self._batcher
        try:
            if batcher is None:
                raise RuntimeError("batcher is closed")
            batcher.add((incoming, note))
        except RuntimeError:
            self._give_back(incoming, note)

    def _flush(self, batch: list[tuple[IncomingMessage, Notification]]) -> None:
        try:
            if self.runs_coroutines and self.dispatcher.has_async_methods():
                self._submit_async(self._process_batch_async, batch)
            else:
                self._submit(self._process_batch, batch)
        except MessagingServerError:
            for incoming, note in batch:
                self._give_back(incoming, note)

    def _process_batch(self, batch: list[tuple[IncomingMessage, Notification]]) -> None:
        try:
            requeue = self.dispatcher.dispatch_batch(list(enumerate(note for _, note in batch)))
        except Exception:
            LOG.exception("dispatching a batch of %d notifications failed", len(batch))
            requeue = set(range(len(batch)))
        self._settle_batch(batch, requeue)

    def _settle_batch(self, batch: list[tuple[IncomingMessage, Notification]],
                      requeue: set) -> None:
        for index, (incoming, note) in enumerate(batch):
            self._settle(incoming, note, index in requeue)

    async def _process_batch_async(self, executor: Any,
                                   batch: list[tuple[IncomingMessage, Notification]]) -> None:
        """:meth:`_process_batch` on the event loop; acks are made on a thread."""
        try:
            requeue = await self.dispatcher.dispatch_batch_async(
                list(enumerate(note for _, note in batch)), executor.run_in_thread)
        except Exception:
            LOG.exception("dispatching a batch of %d notifications failed", len(batch))
            requeue = set(range(len(batch)))
        executor.call_driver(self._settle_batch, batch, requeue)


def get_notification_listener(transport: Transport, targets: Sequence[Target],
                              endpoints: Sequence[Any],
                              executor: str | type[Executor] = "threading",
                              serializer: Serializer | None = None, allow_requeue: bool = False,
                              pool: str | None = None) -> NotificationServer:
    """A listener running ``endpoints`` on notifications sent to ``targets`` (call ``start()``).

    Listeners sharing a ``pool`` name share its messages; each pool (and the listeners without
    one) receives every notification once.
    """
    return NotificationServer(transport, targets, NotificationDispatcher(endpoints, serializer),
                              executor, allow_requeue, pool)


def get_batch_notification_listener(transport: Transport, targets: Sequence[Target],
                                    endpoints: Sequence[Any],
                                    executor: str | type[Executor] = "threading",
                                    serializer: Serializer | None = None,
                                    allow_requeue: bool = False, pool: str | None = None,
                                    batch_size: int | None = None,
                                    batch_timeout: float | None = None
                                    ) -> BatchNotificationServer:
    """A listener calling endpoint methods with lists of notifications (see
    :class:`BatchNotificationServer`); with neither ``batch_size`` nor ``batch_timeout``,
    batches hold one notification."""
    return BatchNotificationServer(transport, targets,
                                   BatchNotificationDispatcher(endpoints, serializer), executor,
                                   allow_requeue, pool, batch_size, batch_timeout)
