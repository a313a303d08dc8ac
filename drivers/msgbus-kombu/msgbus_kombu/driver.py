"""The ``rabbit://`` (and ``kombu://``) driver: msgbus on RabbitMQ, wire-compatible with
oslo.messaging's rabbit driver.

Names, flags and arguments of every exchange and queue come from :mod:`msgbus.driver.amqp`
(the same rules the pika driver uses); this module maps the driver interface onto a pool of
send connections (:mod:`msgbus_kombu.publisher`) and one consuming connection per listener
(:mod:`msgbus_kombu.consumer`).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Sequence
from typing import Any

from oslo_config import cfg

from msgbus.driver.amqp import Topology, expiration_ms, holds_when_unroutable, pipelines
from msgbus.driver.base import API_VERSION, Capability, Driver, Listener, OnMessage
from msgbus.exceptions import MessageDeliveryFailure, MessagingException, MessagingTimeout
from msgbus.target import Target
from msgbus.transport_url import TransportURL
from msgbus_kombu.connection import Connector
from msgbus_kombu.consumer import ConsumerThread, KombuListener
from msgbus_kombu.options import read_settings
from msgbus_kombu.publisher import PublisherPool

LOG = logging.getLogger(__name__)

class KombuDriver(Driver):
    """RabbitMQ through kombu/py-amqp: confirms on, reconnects and fails over by itself."""

    api_version = API_VERSION
    capabilities = frozenset({Capability.REQUEUE, Capability.STORE_AND_FORWARD,
                              Capability.MANDATORY, Capability.RECONNECT})

    def __init__(self, conf: cfg.ConfigOpts, url: TransportURL, default_exchange: str) -> None:
        super().__init__(conf, url, default_exchange)
        self.settings = read_settings(conf, url.query)
        self.topology = Topology(self.settings.amqp, default_exchange)
        self.connector = Connector(url, self.settings)
        self._closing = threading.Event()
        self.publisher = PublisherPool(self.connector, self.settings, self._closing)
        self._lock = threading.Lock()
        self._listeners: list[KombuListener] = []
        self._stopped: list[ConsumerThread] = []
        self._reply_address: str | None = None
        self._reply_consumer: ConsumerThread | None = None

    # sending
    def send(self, target: Target, body: bytes, *, ttl: float | None = None,
             retry: int | None = None, mandatory: bool = False,
             deadline: float | None = None) -> None:
        """Publish to the target's route. A cast to a topic or server queue goes out mandatory
        and is held and sent again if no queue takes it yet (see :mod:`msgbus_kombu.keeper`)."""
        fanout = bool(target.fanout)
        route = self.topology.route(target.exchange, str(target.topic), target.server, fanout)
        if deadline is None and ttl:  # (a core that passes no deadline: the call's TTL bounds it)
            deadline = time.monotonic() + ttl
        self.publisher.send(route.exchange, route.routing_key, body,
                            expiration=expiration_ms(ttl) if ttl else None,
                            mandatory=mandatory, retry=retry, deadline=deadline,
                            pipelined=pipelines(ttl, mandatory, body,
                                                self.settings.amqp.cast_window, retry),
                            hold=holds_when_unroutable(fanout, ttl, mandatory))

    def send_reply(self, reply_address: str, body: bytes, *, retry: int | None = None,
                   deadline: float | None = None) -> None:
        """Publish to the default exchange, mandatory, once: MessageUndeliverable at once when
        the reply queue is missing (the core sends it again in the background)."""
        route = self.topology.reply_route(reply_address)
        self.publisher.send(route.exchange, route.routing_key, body, mandatory=True,
                            retry=retry, deadline=deadline)

    def send_notification(self, target: Target, body: bytes, *,
                          retry: int | None = None, deadline: float | None = None) -> None:
        """Publish to ``<topic>.<priority>``, declaring its queue so nothing is lost."""
        queue = self.topology.notification_queue(target.exchange, str(target.topic))
        self.publisher.send(queue.exchange, queue.routing_key, body, retry=retry,
                            declare=queue, deadline=deadline)

    # consuming
    def _start(self, consumer: ConsumerThread, deadline: float | None,
               late: type[MessagingException] = MessageDeliveryFailure) -> KombuListener:
        listener = KombuListener(consumer, self._forget)
        with self._lock:
            if self._closing.is_set():
                raise MessageDeliveryFailure("the transport is closed")
            self._listeners.append(listener)
        try:
            consumer.start(deadline, late)
        except BaseException:
            self._forget(listener)
            raise
        return listener

    def _forget(self, listener: KombuListener) -> None:
        with self._lock:
            if listener in self._listeners:
                self._listeners.remove(listener)
                self._stopped.append(listener.consumer)

    def listen(self, target: Target, on_message: OnMessage, *,
               deadline: float | None = None) -> Listener:
        topic, server = str(target.topic), str(target.server)
        queues = self.topology.server_queues(target.exchange, topic, server)
        consumer = ConsumerThread(self.connector, self.settings, queues, on_message,
                                  purpose=f"server:{topic}.{server}",
                                  private=[q.name for q in queues if q.private],
                                  driver_stop=self._closing)
        self.publisher.start_warm_up()  # the server's replies need a send connection
        return self._start(consumer, deadline)

    def listen_for_notifications(self, targets: Sequence[Target], pool: str | None,
                                 on_message: OnMessage, *,
                                 deadline: float | None = None) -> Listener:
        queues = [self.topology.notification_queue(t.exchange, str(t.topic), pool)
                  for t in targets]
        name = pool or ",".join(dict.fromkeys(q.name for q in queues))
        consumer = ConsumerThread(self.connector, self.settings, queues, on_message,
                                  purpose=f"notifications:{name}", driver_stop=self._closing)
        return self._start(consumer, deadline)

    def listen_for_replies(self, on_message: OnMessage, *,
                           deadline: float | None = None) -> str:
        """Declare and consume this transport's reply queue (with acknowledgements: a reply
        on its way when a connection drops is delivered again).

        Returns once the queue is consumed; raises MessagingTimeout (the wait is the first
        call's) when ``deadline`` passes first, having stopped that consumer, so the next call
        starts afresh. After a reconnect the consumer declares the same queue again.
        """
        queue = self.topology.reply_queue()
        self.publisher.start_warm_up(self.topology.topic_exchange(None))
        consumer = ConsumerThread(self.connector, self.settings, [queue], on_message,
                                  purpose=f"replies:{queue.name}",
                                  private=[queue.name] if queue.private else [],
                                  driver_stop=self._closing)
        self._start(consumer, deadline, MessagingTimeout)
        self._reply_address = queue.name
        self._reply_consumer = consumer
        return queue.name

    def keep_reply_queue(self) -> None:
        """Leave the reply queue to the broker at close (it goes after its x-expires) rather
        than deleting it: calls gave up whose replies may still come, and a server replying
        into a missing queue retries for a minute (the core calls this just before close)."""
        consumer, address = self._reply_consumer, self._reply_address
        if consumer is not None and address is not None:
            consumer.keep_queue(address)

    def close(self) -> None:
        """Stop listeners (deleting their private queues, but a reply queue kept by
        :meth:`keep_reply_queue`), then close every connection."""
        with self._lock:
            listeners = list(self._listeners)
        for listener in listeners:
            listener.stop()
        self._closing.set()
        self.publisher.close()
        with self._lock:
            consumers, self._stopped = self._stopped, []
        bound = time.monotonic() + self.settings.kombu.listener_drain_timeout + 10.0
        for consumer in consumers:
            consumer.join(max(0.1, bound - time.monotonic()))

    def describe(self) -> dict[str, Any]:
        return {"driver": type(self).__name__, "url": self.url.masked,
                "brokers": self.connector.describe(),
                "reply_queue": self._reply_address}
