"""The ``fake://`` driver: RPC and notifications inside one process, for tests and demos.

``fake://`` and ``fake://name/vhost`` pick separate in-process brokers; every transport naming the
same URL shares one. Bodies travel as the same JSON bytes a real broker would carry.
"""

from __future__ import annotations

import logging
import threading
import uuid
from typing import Sequence

from oslo_config import cfg

from msgbus.driver.base import API_VERSION, Capability, Driver, Listener, OnMessage
from msgbus.exceptions import MessageDeliveryFailure, MessageUndeliverable
from msgbus.fake.broker import REGISTRY, Consumer, FakeBroker, RequeueThrottle
from msgbus.fake.options import FakeSettings
from msgbus.target import Target
from msgbus.transport_url import TransportURL

LOG = logging.getLogger(__name__)


class FakeListener(Listener):
    """Consumers on the fake broker; private queues are deleted on stop."""

    def __init__(self, broker: FakeBroker, consumers: list[Consumer],
                 private_queues: list[str]) -> None:
        self._broker = broker
        self._consumers = consumers
        self._private = private_queues
        self._stopped = False

    def stop(self) -> None:
        if self._stopped:
            return
        self._stopped = True
        self._broker.cancel(self._consumers)
        for name in self._private:
            self._broker.delete_queue(name)

    def release(self) -> None:
        """The driver is closing: deliveries not yet settled go back to their queues."""
        self.stop()
        self._broker.release(self._consumers)


class FakeDriver(Driver):
    """An in-memory driver with the same topic, server and fanout semantics as RabbitMQ's."""

    api_version = API_VERSION
    capabilities = frozenset({Capability.REQUEUE, Capability.RPC_STORE_AND_FORWARD,
                              Capability.NOTIFY_STORE_AND_FORWARD, Capability.MANDATORY})

    def __init__(self, conf: cfg.ConfigOpts, url: TransportURL, default_exchange: str) -> None:
        super().__init__(conf, url, default_exchange)
        hosts = ",".join(h.netloc(with_password=True) for h in url.hosts)
        self.settings = FakeSettings.from_conf(conf, url.query, url.masked)
        self.broker = REGISTRY.get(f"{hosts}/{url.virtual_host or ''}")
        self.broker.throttle = RequeueThrottle(self.settings.requeue_burst,
                                               self.settings.requeue_period,
                                               self.settings.requeue_delay)
        self._lock = threading.Lock()
        self._listeners: list[FakeListener] = []
        self._reply_queue: str | None = None

    def _deliver(self, exchange: str, key: str, body: bytes, ttl: float | None,
                 mandatory: bool) -> None:
        if not isinstance(body, (bytes, bytearray)):
            raise TypeError(f"a message body must be bytes, not {type(body).__name__}")
        limit = self.settings.max_message_size
        if limit and len(body) > limit:
            raise MessageDeliveryFailure(
                f"fake broker refused a message to {exchange!r}/{key!r}: its body of "
                f"{len(body)} bytes is larger than the max_message_size of {limit} bytes (as "
                f"RabbitMQ refuses it; set [fake] max_message_size or ?max_message_size= in the "
                f"URL, 0 for no limit)")
        routed = self.broker.publish(exchange, key, bytes(body), ttl)
        if not routed:
            if mandatory:
                raise MessageUndeliverable(None, exchange, key, body)
            LOG.debug("fake broker: message to %r/%r reached no queue", exchange, key)

    def send(self, target: Target, body: bytes, *, ttl: float | None = None,
             retry: int | None = None, mandatory: bool = False,
             deadline: float | None = None) -> None:
        if target.fanout:
            self._deliver(f"{target.topic}_fanout", "", body, ttl, mandatory)
        else:
            key = f"{target.topic}.{target.server}" if target.server else str(target.topic)
            self._deliver(target.exchange or self.default_exchange, key, body, ttl, mandatory)

    def send_reply(self, reply_address: str, body: bytes, *, retry: int | None = None,
                   deadline: float | None = None) -> None:
        self._deliver("", reply_address, body, None, True)

    def send_notification(self, target: Target, body: bytes, *, retry: int | None = None,
                          deadline: float | None = None) -> None:
        exchange = target.exchange or self.default_exchange
        topic = str(target.topic)
        self.broker.declare_queue(topic)
        self.broker.bind(exchange, topic, topic)
        self._deliver(exchange, topic, body, None, False)

    def _track(self, listener: FakeListener) -> FakeListener:
        with self._lock:
            self._listeners.append(listener)
        return listener

    def listen(self, target: Target, on_message: OnMessage, *,
               deadline: float | None = None) -> Listener:
        exchange = target.exchange or self.default_exchange
        topic, server = str(target.topic), str(target.server)
        fanout_queue = f"{topic}_fanout_{uuid.uuid4().hex}"
        for name, key in ((topic, topic), (f"{topic}.{server}", f"{topic}.{server}")):
            self.broker.declare_queue(name)
            self.broker.bind(exchange, key, name)
        self.broker.declare_queue(fanout_queue)
        self.broker.bind(f"{topic}_fanout", "", fanout_queue, fanout=True)
        consumers = [self.broker.consume(name, on_message)
                     for name in (topic, f"{topic}.{server}", fanout_queue)]
        return self._track(FakeListener(self.broker, consumers, [fanout_queue]))

    def listen_for_notifications(self, targets: Sequence[Target], pool: str | None,
                                 on_message: OnMessage, *,
                                 deadline: float | None = None) -> Listener:
        names = []
        for target in targets:
            exchange = target.exchange or self.default_exchange
            topic = str(target.topic)
            name = pool or topic
            self.broker.declare_queue(name)
            self.broker.bind(exchange, topic, name)
            if name not in names:
                names.append(name)
        consumers = [self.broker.consume(name, on_message) for name in names]
        return self._track(FakeListener(self.broker, consumers, []))

    def listen_for_replies(self, on_message: OnMessage, *,
                           deadline: float | None = None) -> str:
        name = f"reply_{uuid.uuid4().hex}"
        self.broker.declare_queue(name)
        consumer = self.broker.consume(name, on_message)
        self._track(FakeListener(self.broker, [consumer], [name]))
        self._reply_queue = name
        return name

    def close(self) -> None:
        with self._lock:
            listeners, self._listeners = self._listeners, []
        for listener in listeners:
            listener.release()
