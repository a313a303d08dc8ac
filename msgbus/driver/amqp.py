"""RabbitMQ naming and declaration rules shared by msgbus's AMQP 0-9-1 drivers.

Both the kombu and the pika driver build their topology from these specs, so the two (and
oslo.messaging's rabbit driver) declare identical exchanges and queues: RabbitMQ refuses a
re-declaration whose flags or arguments differ (406 PRECONDITION_FAILED). No broker library is
imported here; a driver turns the specs into calls of its own client.
"""

from __future__ import annotations

import dataclasses
import random
import time
import uuid
from typing import Any, Iterator, Mapping, TypeVar

from oslo_config import cfg

from msgbus.exceptions import ConfigurationError

#: Options every AMQP driver registers in its own group (see :func:`register_amqp_opts`).
amqp_opts = [
    cfg.BoolOpt("amqp_durable_queues", default=False,
                help="Declare exchanges and shared queues durable, so they survive a broker "
                     "restart. Must match every other client of the same queues."),
    cfg.BoolOpt("amqp_auto_delete", default=False,
                help="Declare exchanges and shared queues auto-delete: the broker removes them "
                     "when their last consumer leaves."),
    cfg.BoolOpt("rabbit_quorum_queue", default=False,
                help="Declare topic, server and notification queues as quorum queues "
                     "(replicated; forces durable)."),
    cfg.IntOpt("rabbit_transient_queues_ttl", default=1800, min=1,
               help="Seconds an unused reply or fanout queue lives before the broker deletes it "
                    "(x-expires), so that dead clients leave no queues behind."),
    cfg.IntOpt("rabbit_qos_prefetch_count", default=0, min=0,
               help="Unacknowledged messages a consumer may hold (basic.qos); 0 is unlimited."),
    cfg.IntOpt("heartbeat_timeout_threshold", default=60, min=0,
               help="Seconds without traffic after which the connection is taken as dead; "
                    "AMQP heartbeats are sent well within it. 0 disables heartbeats."),
    cfg.FloatOpt("reconnect_fast_interval", default=0.1, min=0.01,
                 help="Seconds between reconnection attempts (with +-50% jitter) during the "
                      "first reconnect_fast_period seconds of an outage, so that a broker that "
                      "is back is used again at once."),
    cfg.FloatOpt("reconnect_fast_period", default=30.0, min=0,
                 help="Seconds of an outage during which reconnection is tried every "
                      "reconnect_fast_interval; after that the delay starts at "
                      "rabbit_retry_interval and grows by rabbit_retry_backoff up to "
                      "rabbit_interval_max."),
    cfg.FloatOpt("rabbit_retry_interval", default=1.0, min=0,
                 help="Seconds between reconnection attempts once an outage has lasted longer "
                      "than reconnect_fast_period."),
    cfg.FloatOpt("rabbit_retry_backoff", default=2.0, min=0,
                 help="Seconds added to the reconnection delay after each failed attempt (after "
                      "the fast period)."),
    cfg.FloatOpt("rabbit_interval_max", default=30.0, min=0,
                 help="Longest delay between reconnection attempts, in seconds."),
    cfg.IntOpt("rpc_conn_pool_size", default=30, min=1,
               help="Connections (or channels) kept for sending."),
    cfg.IntOpt("cast_confirm_window", default=64, min=0,
               help="How many casts one send connection may have published that the broker "
                    "has not confirmed yet: a cast returns once written while fewer are "
                    "outstanding, so a burst of casts is not one round trip each. Each "
                    "unconfirmed cast is kept and published again if its connection fails or "
                    "the broker refuses it; closing the transport waits for the last "
                    "confirms and logs an error for any it could not get. Casts with a retry "
                    "budget (retry 0 or more; -1 and None mean forever) or a body over 64 KiB "
                    "always wait for their confirm. "
                    "0 makes every cast wait for its own confirm."),
    cfg.FloatOpt("cast_hold_timeout", default=60.0, min=0,
                 help="Seconds a cast that the broker returned as unroutable (no queue bound "
                      "for it, e.g. while its servers declare their queues again after a "
                      "broker restart) is kept and sent again before it is dropped with an "
                      "error log. Fanout casts are not kept: they reach the servers listening "
                      "when they are sent."),
    cfg.IntOpt("cast_hold_max_bytes", default=64 * 1024 * 1024, min=0,
               help="Most bytes of unroutable casts kept for sending again (see "
                    "cast_hold_timeout); past it the oldest are dropped with an error log."),
    cfg.FloatOpt("connect_timeout", default=5.0, min=0.1,
                 help="Seconds to wait for a TCP connection and the AMQP handshake."),
    cfg.BoolOpt("ssl", default=False, help="Connect over TLS."),
    cfg.StrOpt("ssl_ca_file", default="",
               help="CA bundle that verifies the broker's certificate (TLS)."),
    cfg.StrOpt("ssl_cert_file", default="", help="Client certificate file (TLS)."),
    cfg.StrOpt("ssl_key_file", default="", help="Client private key file (TLS)."),
    cfg.BoolOpt("ssl_verify", default=True,
                help="Verify the broker's certificate and host name (TLS)."),
]

_BOOL_TRUE = {"1", "true", "yes", "on"}
_BOOL_FALSE = {"0", "false", "no", "off"}


def register_amqp_opts(conf: cfg.ConfigOpts, group: str) -> None:
    """Register the shared AMQP options in ``group`` of ``conf`` (idempotent)."""
    conf.register_opts(amqp_opts, group=group)


@dataclasses.dataclass(frozen=True)
class AmqpSettings:
    """The AMQP options in effect for one transport: config, overridden by URL query options."""

    durable: bool
    auto_delete: bool
    quorum: bool
    transient_ttl_ms: int
    prefetch: int
    heartbeat: int
    retry_interval: float
    retry_backoff: float
    interval_max: float
    pool_size: int
    cast_window: int
    connect_timeout: float
    fast_interval: float
    fast_period: float
    cast_hold_timeout: float
    cast_hold_max_bytes: int
    ssl: bool
    ssl_ca_file: str
    ssl_cert_file: str
    ssl_key_file: str
    ssl_verify: bool

    @classmethod
    def from_conf(cls, conf: cfg.ConfigOpts, group: str,
                  query: Mapping[str, str] | None = None) -> "AmqpSettings":
        """Read ``group`` and apply the URL's query options (same names) over it."""
        register_amqp_opts(conf, group)
        values: dict[str, Any] = {opt.dest: getattr(conf[group], opt.dest) for opt in amqp_opts}
        for key, text in (query or {}).items():
            opt = next((o for o in amqp_opts if o.dest == key), None)
            if opt is None:
                continue
            values[key] = _coerce(opt, key, text)
        quorum = values["rabbit_quorum_queue"]
        return cls(
            durable=values["amqp_durable_queues"] or quorum,
            auto_delete=values["amqp_auto_delete"],
            quorum=quorum,
            transient_ttl_ms=int(values["rabbit_transient_queues_ttl"]) * 1000,
            prefetch=values["rabbit_qos_prefetch_count"],
            heartbeat=values["heartbeat_timeout_threshold"],
            retry_interval=values["rabbit_retry_interval"],
            retry_backoff=values["rabbit_retry_backoff"],
            interval_max=values["rabbit_interval_max"],
            pool_size=values["rpc_conn_pool_size"],
            cast_window=values["cast_confirm_window"],
            connect_timeout=values["connect_timeout"],
            fast_interval=values["reconnect_fast_interval"],
            fast_period=values["reconnect_fast_period"],
            cast_hold_timeout=values["cast_hold_timeout"],
            cast_hold_max_bytes=values["cast_hold_max_bytes"],
            ssl=values["ssl"],
            ssl_ca_file=values["ssl_ca_file"],
            ssl_cert_file=values["ssl_cert_file"],
            ssl_key_file=values["ssl_key_file"],
            ssl_verify=values["ssl_verify"],
        )


def _coerce(opt: cfg.Opt, key: str, text: str) -> Any:
    try:
        if isinstance(opt, cfg.BoolOpt):
            low = text.lower()
            if low in _BOOL_TRUE:
                return True
            if low in _BOOL_FALSE:
                return False
            raise ValueError("expected true or false")
        if isinstance(opt, cfg.IntOpt):
            return int(text)
        if isinstance(opt, cfg.FloatOpt):
            return float(text)
        return text
    except ValueError as exc:
        raise ConfigurationError(f"invalid value {text!r} for URL option {key!r}: {exc}") from None


@dataclasses.dataclass(frozen=True)
class ExchangeSpec:
    """An exchange to declare: name, type and flags."""

    name: str
    type: str
    durable: bool
    auto_delete: bool


@dataclasses.dataclass(frozen=True)
class QueueSpec:
    """A queue to declare, the exchange it binds to and the binding key."""

    name: str
    durable: bool
    auto_delete: bool
    arguments: Mapping[str, Any]
    exchange: ExchangeSpec | None
    routing_key: str


@dataclasses.dataclass(frozen=True)
class Route:
    """Where to publish: an exchange (``""`` is the default exchange) and a routing key."""

    exchange: ExchangeSpec | None
    routing_key: str

    @property
    def exchange_name(self) -> str:
        return self.exchange.name if self.exchange else ""


class Topology:
    """oslo.messaging's RabbitMQ names and flags for targets, computed from AmqpSettings."""

    def __init__(self, settings: AmqpSettings, default_exchange: str) -> None:
        self.settings = settings
        self.default_exchange = default_exchange

    # exchanges
    def topic_exchange(self, exchange: str | None) -> ExchangeSpec:
        """The topic exchange of a target (its own, or the control exchange)."""
        return ExchangeSpec(exchange or self.default_exchange, "topic",
                            self.settings.durable, self.settings.auto_delete)

    @staticmethod
    def fanout_exchange(topic: str) -> ExchangeSpec:
        """``<topic>_fanout``: the target's exchange is ignored for fanout."""
        return ExchangeSpec(f"{topic}_fanout", "fanout", False, True)

    # queue arguments
    def _shared_arguments(self) -> dict[str, Any]:
        return {"x-queue-type": "quorum"} if self.settings.quorum else {}

    def _transient_arguments(self) -> dict[str, Any]:
        return {"x-expires": self.settings.transient_ttl_ms}

    def _shared_queue(self, name: str, exchange: str | None, key: str) -> QueueSpec:
        return QueueSpec(name, self.settings.durable, self.settings.auto_delete,
                         self._shared_arguments(), self.topic_exchange(exchange), key)

    # queues
    def topic_queue(self, exchange: str | None, topic: str) -> QueueSpec:
        """The load-balanced queue ``<topic>`` shared by a topic's servers."""
        return self._shared_queue(topic, exchange, topic)

    def server_queue(self, exchange: str | None, topic: str, server: str) -> QueueSpec:
        """A server's own queue ``<topic>.<server>``."""
        name = f"{topic}.{server}"
        return self._shared_queue(name, exchange, name)

    def fanout_queue(self, topic: str) -> QueueSpec:
        """A listener's private copy of the topic's fanout: ``<topic>_fanout_<uuid>``."""
        return QueueSpec(f"{topic}_fanout_{uuid.uuid4().hex}", False, False,
                         self._transient_arguments(), self.fanout_exchange(topic), "")

    def reply_queue(self) -> QueueSpec:
        """A transport's reply queue ``reply_<uuid>``, reached through the default exchange."""
        name = f"reply_{uuid.uuid4().hex}"
        return QueueSpec(name, False, False, self._transient_arguments(), None, name)

    def notification_queue(self, exchange: str | None, topic: str,
                           pool: str | None = None) -> QueueSpec:
        """The queue of notifications ``<topic>.<priority>``; a pool's queue is named after it."""
        return self._shared_queue(pool or topic, exchange, topic)

    def server_queues(self, exchange: str | None, topic: str, server: str) -> list[QueueSpec]:
        """The three queues an RPC server consumes."""
        return [self.topic_queue(exchange, topic), self.server_queue(exchange, topic, server),
                self.fanout_queue(topic)]

    # routes
    def route(self, exchange: str | None, topic: str, server: str | None,
              fanout: bool) -> Route:
        """Where a call or cast to the target is published."""
        if fanout:
            return Route(self.fanout_exchange(topic), "")
        key = f"{topic}.{server}" if server else topic
        return Route(self.topic_exchange(exchange), key)

    @staticmethod
    def reply_route(reply_address: str) -> Route:
        """Replies go to the default exchange with the reply queue's name as key."""
        return Route(None, reply_address)


#: Message properties every AMQP driver sets (oslo.messaging's).
CONTENT_TYPE = "application/json"
CONTENT_ENCODING = "utf-8"
DELIVERY_MODE_PERSISTENT = 2


V = TypeVar("V")


def pop_confirmed(pending: dict[int, V], delivery_tag: int,
                  multiple: bool) -> list[tuple[int, V]]:
    """Remove and return the publishes a basic.ack or basic.nack settles: ``delivery_tag``
    alone, or with ``multiple`` every tag up to it. ``pending`` maps delivery tags to what the
    driver tracks for them, in publish (insertion) order."""
    if not multiple:
        return [(delivery_tag, pending.pop(delivery_tag))] if delivery_tag in pending else []
    done = []
    for tag in pending:
        if tag > delivery_tag:
            break
        done.append(tag)
    return [(tag, pending.pop(tag)) for tag in done]


#: Casts with a larger body wait for their own confirm even when pipelining is on: a large body
#: gains nothing from it (the link is busy anyway), keeping a copy costs memory, and a body the
#: broker refuses (over its ``max_message_size``) is reported to the caller, not only logged.
PIPELINED_CAST_MAX_BYTES = 64 * 1024


def pipelines(ttl: float | None, mandatory: bool, body: bytes, window: int,
              retry: int | None) -> bool:
    """Whether a send may return before its confirm: a cast (no TTL), not mandatory, small,
    retried forever (``retry`` None: with a budget, the caller is told when it runs out), with
    pipelining on (``cast_confirm_window`` > 0). The core never passes a negative ``retry``."""
    return (window > 0 and not ttl and not mandatory and retry is None
            and len(body) <= PIPELINED_CAST_MAX_BYTES)


def holds_when_unroutable(fanout: bool, ttl: float | None, mandatory: bool) -> bool:
    """Whether a send is published mandatory by the driver itself, and kept and sent again
    (see :class:`msgbus.driver.held_casts.HeldCasts`) when the broker returns it: a cast
    (no TTL) to a topic or server queue that the caller did not ask to be mandatory.

    Calls are retried by the core within their deadline; fanout casts reach whoever listens."""
    return not fanout and not ttl and not mandatory


def expiration_ms(ttl: float | None) -> str | None:
    """The ``expiration`` property for a call of ``ttl`` seconds (None when no TTL)."""
    if ttl is None:
        return None
    return str(max(1, int(ttl * 1000)))


def reconnect_delays(settings: AmqpSettings) -> Iterator[float]:
    """Pauses between reconnection attempts, counted from the first one asked for: every
    ``reconnect_fast_interval`` (+-50% jitter) during the first ``reconnect_fast_period``
    seconds, then ``rabbit_retry_interval`` growing by ``rabbit_retry_backoff`` a step up to
    ``rabbit_interval_max`` (+-20% jitter). Short outages are over as soon as the broker is
    back; long ones cost the broker few attempts."""
    start = time.monotonic()
    delay = settings.retry_interval
    while True:
        if time.monotonic() - start < settings.fast_period:
            yield settings.fast_interval * random.uniform(0.5, 1.5)
            continue
        yield min(delay, settings.interval_max) * random.uniform(0.8, 1.2)
        delay += settings.retry_backoff


#: The port of a URL host that names none (oslo.messaging's rule, over TLS too).
DEFAULT_PORT = 5672


def default_port(ssl: bool) -> int:
    """The port of a URL host that names none: 5672, over TLS too, as oslo.messaging does, so
    that an operator's existing URLs reach the same port (RabbitMQ's TLS listener is usually
    on 5671: name it in the URL). One rule for every AMQP driver."""
    return DEFAULT_PORT


def host_order(hosts: list[Any], start: int = 0) -> Iterator[Any]:
    """Round-robin over the URL's hosts forever, starting at ``start``."""
    if not hosts:
        raise ConfigurationError("the transport URL names no host")
    i = start
    while True:
        yield hosts[i % len(hosts)]
        i += 1
