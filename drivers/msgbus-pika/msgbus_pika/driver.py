"""The ``pika://`` transport driver: RabbitMQ through pika, wire-compatible with oslo.messaging.

One transport uses one connection for sending (publisher confirms on one channel shared by all
sending threads) and one connection per listener (an RPC server, a notification listener, the
reply queue), each run by its own I/O thread. Names, flags and message properties come from
:mod:`msgbus.driver.amqp`, so the queues are the ones the kombu driver and oslo.messaging use.

Driver interface version 2: every send and listen takes the ``deadline`` the core gives it and
ends every wait by it (:mod:`msgbus_pika.outcome`, :meth:`QueueConsumer.start`); ``retry`` comes
normalised (None: forever, 0: never, N: at most N).
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any, Sequence

import pika
from oslo_config import cfg

from msgbus.driver import amqp
from msgbus.driver.base import API_VERSION, Capability, Driver, Listener, OnMessage
from msgbus.exceptions import (MessageDeliveryFailure, MessagingException, MessagingTimeout,
                               TransportClosedError)
from msgbus.target import Target
from msgbus.transport_url import TransportURL
from msgbus_pika.casts import CastSender
from msgbus_pika.consumer import QueueConsumer
from msgbus_pika.declarations import exchange_declaration, queue_declaration
from msgbus_pika.held import CastResender
from msgbus_pika.io_connection import IoConnection, State
from msgbus_pika.listener import PikaListener
from msgbus_pika.options import PikaSettings
from msgbus_pika.outcome import await_job, deadline_passed
from msgbus_pika.parameters import broker_hosts, tls_context, virtual_host
from msgbus_pika.publish_job import PublishJob
from msgbus_pika.publisher import Publisher

LOG = logging.getLogger(__name__)

#: How long the acks of replies may wait to go out together (seconds): a caller making calls
#: one after the other sends one ack frame per this, not one per reply.
_REPLY_ACK_DELAY = 0.05


def _hopeless(conn: IoConnection) -> bool:
    """Whether waiting for the broker at close is pointless: it refused a connection attempt
    since the connection was lost (a mere cut reconnects at once and is waited for)."""
    return conn.state is not State.OPEN and conn.failed_attempts > 0


def _retry(retry: int | None) -> int | None:
    """``retry`` as the core normalises it (a negative value from an older core: forever)."""
    return None if retry is not None and retry < 0 else retry


def _check_body(body: Any) -> bytes:
    if not isinstance(body, (bytes, bytearray, memoryview)):
        raise TypeError(f"a message body must be bytes, not {type(body).__name__}")
    return bytes(body)


class PikaDriver(Driver):
    """RabbitMQ over pika, with an I/O thread per connection (pika is not thread-safe)."""

    api_version = API_VERSION
    capabilities = frozenset({Capability.REQUEUE, Capability.RPC_STORE_AND_FORWARD,
                              Capability.NOTIFY_STORE_AND_FORWARD, Capability.MANDATORY,
                              Capability.RECONNECT})

    def __init__(self, conf: cfg.ConfigOpts, url: TransportURL, default_exchange: str) -> None:
        super().__init__(conf, url, default_exchange)
        self.settings = PikaSettings.from_conf(conf, url.query)
        self.topology = amqp.Topology(self.settings.amqp, default_exchange)
        self._hosts = broker_hosts(url)
        self._vhost = virtual_host(url)
        self._tls = tls_context(self.settings)
        self._lock = threading.Lock()
        self._publisher: Publisher | None = None
        self._resender: CastResender | None = None
        self._listeners: set[PikaListener] = set()
        self._reply_listener: PikaListener | None = None
        self._reply_address: str | None = None
        self._closed = False
        self._properties = pika.BasicProperties(
            content_type=amqp.CONTENT_TYPE, content_encoding=amqp.CONTENT_ENCODING,
            delivery_mode=amqp.DELIVERY_MODE_PERSISTENT)
        self._casts = CastSender(self.settings.amqp.cast_window)

    # -- plumbing ------------------------------------------------------------------------------

    def _new_connection(self, role: str) -> IoConnection:
        return IoConnection(self.settings, self._hosts, self._vhost, self._tls,
                            f"{role} [{self.url.masked}]")

    def _check_open(self) -> None:
        if self._closed:
            raise TransportClosedError(f"transport {self.url.masked} is closed")

    def _get_publisher(self) -> Publisher:
        publisher = self._publisher
        if publisher is not None:
            return publisher
        with self._lock:
            self._check_open()
            if self._publisher is None:
                conn = self._new_connection("send")
                publisher = Publisher(conn)
                amqp_settings = self.settings.amqp
                self._resender = CastResender(publisher, amqp_settings.cast_hold_timeout,
                                              amqp_settings.cast_hold_max_bytes)
                self._publisher = publisher
                conn.start()
            return self._publisher

    def _message_properties(self, ttl: float | None) -> pika.BasicProperties:
        expiration = amqp.expiration_ms(ttl)
        if expiration is None:
            return self._properties
        return pika.BasicProperties(
            content_type=amqp.CONTENT_TYPE, content_encoding=amqp.CONTENT_ENCODING,
            delivery_mode=amqp.DELIVERY_MODE_PERSISTENT, expiration=expiration)

    def _publish(self, job: PublishJob, deadline: float | None) -> None:
        """Hand ``job`` to the sending connection and wait for the broker's verdict, at most
        until ``deadline``."""
        publisher = self._get_publisher()
        if deadline is not None and time.monotonic() >= deadline:
            raise deadline_passed(job, publisher.connection, deadline)
        publisher.submit(job)
        await_job(job, publisher.connection, deadline, self.settings.shutdown_timeout)

    # -- sending ------------------------------------------------------------------------------

    def send(self, target: Target, body: bytes, *, ttl: float | None = None,
             retry: int | None = None, mandatory: bool = False,
             deadline: float | None = None) -> None:
        body = _check_body(body)
        self._check_open()
        retry = _retry(retry)
        fanout = bool(target.fanout)
        route = self.topology.route(target.exchange, str(target.topic), target.server, fanout)
        declarations = (exchange_declaration(route.exchange),) if route.exchange else ()
        job = PublishJob(route.exchange_name, route.routing_key, body,
                         self._message_properties(ttl), mandatory, retry, declarations,
                         holds=amqp.holds_when_unroutable(fanout, ttl, mandatory))
        if deadline is None and ttl:
            deadline = time.monotonic() + ttl  # (from a core that passes no deadline)
        if amqp.pipelines(ttl, mandatory, body, self._casts.window, retry):
            publisher = self._get_publisher()
            if self._casts.accepts(publisher):
                self._casts.send(publisher, job, deadline)
                return
        self._publish(job, deadline)

    def send_reply(self, reply_address: str, body: bytes, *, retry: int | None = None,
                   deadline: float | None = None) -> None:
        """Publish the reply (mandatory) and wait for the broker: MessageUndeliverable as soon
        as the broker returns it (no such reply queue), for the core to try again later."""
        body = _check_body(body)
        self._check_open()
        route = self.topology.reply_route(reply_address)
        self._publish(PublishJob(route.exchange_name, route.routing_key, body, self._properties,
                                 True, _retry(retry)), deadline)

    def send_notification(self, target: Target, body: bytes, *, retry: int | None = None,
                          deadline: float | None = None) -> None:
        body = _check_body(body)
        self._check_open()
        spec = self.topology.notification_queue(target.exchange, str(target.topic))
        job = PublishJob(spec.exchange.name if spec.exchange else "", spec.routing_key, body,
                         self._properties, False, _retry(retry), (queue_declaration(spec),))
        self._publish(job, deadline)

    # -- listening ----------------------------------------------------------------------------

    def _listen(self, role: str, specs: Sequence[amqp.QueueSpec], on_message: OnMessage,
                deadline: float | None, private: Sequence[str] = (), prefetch: int | None = None,
                late: type[MessagingException] = MessageDeliveryFailure,
                ack_delay: float = 0.0) -> PikaListener:
        with self._lock:
            self._check_open()
            conn = self._new_connection(role)
            consumer = QueueConsumer(conn, specs, on_message, private, prefetch, ack_delay)
            listener = PikaListener(conn, consumer)
            # (stopped listeners stay until their connection closed: see PikaListener)
            self._listeners = {lst for lst in self._listeners if not lst.finished}
            self._listeners.add(listener)
        listener.start(deadline, late)
        return listener

    def listen(self, target: Target, on_message: OnMessage, *,
               deadline: float | None = None) -> Listener:
        specs = self.topology.server_queues(target.exchange, str(target.topic),
                                            str(target.server))
        return self._listen(f"server {target.topic}.{target.server}", specs, on_message,
                            deadline, private=[spec.name for spec in specs if spec.private])

    def listen_for_notifications(self, targets: Sequence[Target], pool: str | None,
                                 on_message: OnMessage, *,
                                 deadline: float | None = None) -> Listener:
        specs = [self.topology.notification_queue(t.exchange, str(t.topic), pool)
                 for t in targets]
        role = f"notifications {pool or ','.join(str(t.topic) for t in targets)}"
        return self._listen(role, specs, on_message, deadline)

    def listen_for_replies(self, on_message: OnMessage, *,
                           deadline: float | None = None) -> str:
        # Made on a first call, within its deadline (MessagingTimeout when the broker cannot be
        # reached by then, as for the call's send). Replies are acknowledged (the core acks each
        # on receipt): one on its way to us when the connection is cut is delivered again, not
        # lost (auto-ack lost it with the connection); the core drops a copy it already had.
        # No prefetch limit: replies must never wait behind each other; their acks are sent
        # together, every _REPLY_ACK_DELAY.
        spec = self.topology.reply_queue()
        self._get_publisher()  # the call that follows needs it: connect both at once
        listener = self._listen(f"replies {spec.name}", [spec], on_message, deadline,
                                private=[spec.name] if spec.private else [], prefetch=0,
                                late=MessagingTimeout, ack_delay=_REPLY_ACK_DELAY)
        with self._lock:
            self._reply_listener, self._reply_address = listener, spec.name
        return spec.name

    def keep_reply_queue(self) -> None:
        """Leave the reply queue to the broker at close (it goes after its x-expires) rather
        than deleting it: calls gave up whose replies may still come, and a server replying
        into a missing queue retries for a minute (the core calls this just before close)."""
        with self._lock:
            listener, address = self._reply_listener, self._reply_address
        if listener is not None and address is not None:
            listener.keep_queue(address)

    # -- lifecycle ----------------------------------------------------------------------------

    def close(self) -> None:
        """Fail the sends that threads wait for at once (TransportClosedError); stop listeners;
        give casts on their way and held casts a last chance (bounded by ``shutdown_timeout``,
        and not at all while the broker refuses connections); then close the sending
        connection."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            listeners = list(self._listeners)
            publisher, self._publisher = self._publisher, None
            resender, self._resender = self._resender, None
        if publisher is not None:
            publisher.connection.call_soon(publisher.release_waiters)
        for listener in listeners:
            try:
                listener.close()
            except Exception:
                LOG.exception("closing %r failed", listener)
        if publisher is None:
            return
        conn = publisher.connection
        timeout = self.settings.shutdown_timeout
        if not self._casts.flush(timeout, lambda: _hopeless(conn)):
            LOG.error("closing %s with %d cast(s) the broker has not confirmed: they may be "
                      "lost", self.url.masked, self._casts.in_flight)
        if resender is not None:
            resender.close(timeout, lambda: _hopeless(conn))
        conn.close()

    def describe(self) -> dict[str, Any]:
        with self._lock:
            listeners = [listener.queues for listener in self._listeners
                         if not listener.finished]
            held = len(self._resender.held) if self._resender is not None else 0
        return {"driver": type(self).__name__, "url": self.url.masked, "vhost": self._vhost,
                "hosts": [h.netloc() for h in self._hosts], "tls": self._tls is not None,
                "listeners": listeners, "held_casts": held, "closed": self._closed}
