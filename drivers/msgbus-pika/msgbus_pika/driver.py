"""The ``pika://`` transport driver: RabbitMQ through pika, wire-compatible with oslo.messaging.

One transport uses one connection for sending (publisher confirms on one channel shared by all
sending threads) and one connection per listener (an RPC server, a notification listener, the
reply queue), each run by its own I/O thread. Names, flags and message properties come from
:mod:`msgbus.driver.amqp`, so the queues are the ones the kombu driver and oslo.messaging use.
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
from msgbus.exceptions import MessageDeliveryFailure, MessagingTimeout
from msgbus.target import Target
from msgbus.transport_url import TransportURL
from msgbus_pika.casts import CastSender
from msgbus_pika.consumer import QueueConsumer
from msgbus_pika.declarations import exchange_declaration, queue_declaration
from msgbus_pika.io_connection import IoConnection
from msgbus_pika.listener import PikaListener
from msgbus_pika.options import PikaSettings
from msgbus_pika.parameters import broker_hosts, tls_context, virtual_host
from msgbus_pika.publish_job import PublishJob
from msgbus_pika.publisher import Publisher
from msgbus_pika.replies import ReplySender

LOG = logging.getLogger(__name__)

#: How often a waiting sender checks that the I/O thread is still alive (seconds).
_LIVENESS_CHECK = 5.0


def _check_body(body: Any) -> bytes:
    if not isinstance(body, (bytes, bytearray, memoryview)):
        raise TypeError(f"a message body must be bytes, not {type(body).__name__}")
    return bytes(body)


class PikaDriver(Driver):
    """RabbitMQ over pika, with an I/O thread per connection (pika is not thread-safe)."""

    api_version = API_VERSION
    capabilities = frozenset({Capability.REQUEUE, Capability.STORE_AND_FORWARD,
                              Capability.MANDATORY, Capability.RECONNECT})

    def __init__(self, conf: cfg.ConfigOpts, url: TransportURL, default_exchange: str) -> None:
        super().__init__(conf, url, default_exchange)
        self.settings = PikaSettings.from_conf(conf, url.query)
        self.topology = amqp.Topology(self.settings.amqp, default_exchange)
        self._hosts = broker_hosts(url)
        self._vhost = virtual_host(url)
        self._tls = tls_context(self.settings)
        self._lock = threading.Lock()
        self._publisher: Publisher | None = None
        self._listeners: set[PikaListener] = set()
        self._closed = False
        self._properties = pika.BasicProperties(
            content_type=amqp.CONTENT_TYPE, content_encoding=amqp.CONTENT_ENCODING,
            delivery_mode=amqp.DELIVERY_MODE_PERSISTENT)
        self._replies = ReplySender(self._get_publisher,
                                    self.settings.reply_missing_queue_timeout, self._properties)
        self._casts = CastSender(self.settings.amqp.cast_window)

    # -- plumbing ------------------------------------------------------------------------------

    def _new_connection(self, role: str) -> IoConnection:
        return IoConnection(self.settings, self._hosts, self._vhost, self._tls,
                            f"{role} [{self.url}]")

    def _check_open(self) -> None:
        if self._closed:
            raise MessageDeliveryFailure(f"transport {self.url} is closed")

    def _get_publisher(self) -> Publisher:
        publisher = self._publisher
        if publisher is not None:
            return publisher
        with self._lock:
            self._check_open()
            if self._publisher is None:
                conn = self._new_connection("send")
                self._publisher = Publisher(conn)
                conn.start()
            return self._publisher

    def _message_properties(self, ttl: float | None) -> pika.BasicProperties:
        expiration = amqp.expiration_ms(ttl)
        if expiration is None:
            return self._properties
        return pika.BasicProperties(
            content_type=amqp.CONTENT_TYPE, content_encoding=amqp.CONTENT_ENCODING,
            delivery_mode=amqp.DELIVERY_MODE_PERSISTENT, expiration=expiration)

    def _publish(self, job: PublishJob, timeout: float | None) -> None:
        """Hand ``job`` to the sending connection and wait for the broker's verdict."""
        publisher = self._get_publisher()
        conn = publisher.connection
        publisher.submit(job)
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            wait = _LIVENESS_CHECK
            if deadline is not None:
                wait = min(wait, deadline - time.monotonic())
            if job.wait(wait):
                break
            if deadline is not None and time.monotonic() >= deadline:
                job.abandoned = True
                raise MessagingTimeout(
                    f"the broker at {conn.address} did not confirm the message to "
                    f"{job.describe()} within {timeout:.3g}s"
                    + (f" (last error: {conn.last_error})" if conn.last_error else ""))
            if conn.closed and not conn.in_loop_thread():
                # Closed while we waited: give the I/O thread a moment to settle the job.
                if not job.wait(self.settings.shutdown_timeout):
                    job.abandoned = True
                    raise MessageDeliveryFailure(f"transport {self.url} closed while sending "
                                                 f"to {job.describe()}")
        if job.error is not None:
            raise job.error

    # -- sending ------------------------------------------------------------------------------

    def send(self, target: Target, body: bytes, *, ttl: float | None = None,
             retry: int | None = None, mandatory: bool = False) -> None:
        body = _check_body(body)
        self._check_open()
        route = self.topology.route(target.exchange, str(target.topic), target.server,
                                    bool(target.fanout))
        declarations = (exchange_declaration(route.exchange),) if route.exchange else ()
        job = PublishJob(route.exchange_name, route.routing_key, body,
                         self._message_properties(ttl), mandatory, retry, declarations)
        if amqp.pipelines(ttl, mandatory, body, self._casts.window, retry):
            publisher = self._get_publisher()
            if self._casts.accepts(publisher):
                self._casts.send(publisher, job)
                return
        self._publish(job, ttl)

    def send_reply(self, reply_address: str, body: bytes, *, retry: int | None = None) -> None:
        """Hand the reply to the sending connection and return (the worker does not wait for the
        broker, unless the reply is large); a missing reply queue is retried for a while, then
        logged (see replies.py)."""
        body = _check_body(body)
        self._check_open()
        self._replies.send(self.topology.reply_route(reply_address).routing_key, body, retry,
                           wait=len(body) > amqp.PIPELINED_CAST_MAX_BYTES)

    def send_notification(self, target: Target, body: bytes, *,
                          retry: int | None = None) -> None:
        body = _check_body(body)
        self._check_open()
        spec = self.topology.notification_queue(target.exchange, str(target.topic))
        job = PublishJob(spec.exchange.name if spec.exchange else "", spec.routing_key, body,
                         self._properties, False, retry, (queue_declaration(spec),))
        self._publish(job, None)

    # -- listening ----------------------------------------------------------------------------

    def _listen(self, role: str, specs: Sequence[amqp.QueueSpec], on_message: OnMessage,
                private: Sequence[str] = (), max_failed_attempts: int | None = None,
                no_ack: bool = False) -> PikaListener:
        with self._lock:
            self._check_open()
            conn = self._new_connection(role)
            consumer = QueueConsumer(conn, specs, on_message, private, max_failed_attempts,
                                     no_ack)
            listener = PikaListener(conn, consumer)
            # (stopped listeners stay until their connection closed: see PikaListener)
            self._listeners = {lst for lst in self._listeners if not lst.finished}
            self._listeners.add(listener)
        listener.start(self.settings.listen_timeout)
        return listener

    def listen(self, target: Target, on_message: OnMessage) -> Listener:
        specs = self.topology.server_queues(target.exchange, str(target.topic),
                                            str(target.server))
        return self._listen(f"server {target.topic}.{target.server}", specs, on_message,
                            private=[specs[-1].name])

    def listen_for_notifications(self, targets: Sequence[Target], pool: str | None,
                                 on_message: OnMessage) -> Listener:
        specs = [self.topology.notification_queue(t.exchange, str(t.topic), pool)
                 for t in targets]
        role = f"notifications {pool or ','.join(str(t.topic) for t in targets)}"
        return self._listen(role, specs, on_message)

    def listen_for_replies(self, on_message: OnMessage) -> str:
        # Made on a first call: when no host of the URL answers, the call fails at once
        # (after one round of the hosts) instead of waiting out listen_timeout. Replies are
        # consumed without acks: the core settles them on receipt anyway (at most once).
        spec = self.topology.reply_queue()
        self._get_publisher()  # the call that follows needs it: connect both at once
        self._listen(f"replies {spec.name}", [spec], on_message, private=[spec.name],
                     max_failed_attempts=len(self._hosts), no_ack=True)
        return spec.name

    # -- lifecycle ----------------------------------------------------------------------------

    def close(self) -> None:
        with self._lock:
            if self._closed:
                return
            self._closed = True
            listeners = list(self._listeners)
            publisher, self._publisher = self._publisher, None
        for listener in listeners:
            try:
                listener.close()
            except Exception:
                LOG.exception("closing %r failed", listener)
        if publisher is not None:
            if not self._replies.flush(self.settings.shutdown_timeout):
                LOG.warning("closing %s with replies the broker has not confirmed yet", self.url)
            if not self._casts.flush(self.settings.shutdown_timeout):
                LOG.error("closing %s with %d cast(s) the broker has not confirmed: they may be "
                          "lost", self.url, self._casts.in_flight)
            publisher.connection.close()

    def describe(self) -> dict[str, Any]:
        with self._lock:
            listeners = [listener.queues for listener in self._listeners
                         if not listener.finished]
        return {"driver": type(self).__name__, "url": str(self.url), "vhost": self._vhost,
                "hosts": [h.netloc() for h in self._hosts], "tls": self._tls is not None,
                "listeners": listeners, "closed": self._closed}
