"""RabbitMQ naming and declaration rules shared by msgbus's AMQP 0-9-1 drivers.

Both the kombu and the pika driver build their topology from these specs, so the two (and
oslo.messaging's rabbit driver) declare identical exchanges and queues: RabbitMQ refuses a
re-declaration whose flags or arguments differ (406 PRECONDITION_FAILED). No broker library is
imported here; a driver turns the specs into calls of its own client.

Every option also reads oslo.messaging's spelling (group ``oslo_messaging_rabbit``) as a
deprecated alias, so an OpenStack service's configuration file works unchanged. (Over 400 lines:
the options, the settings read from them and the specs built from those belong together, and
the API reference documents them as one module; about half the lines are option help texts.)
"""

from __future__ import annotations

import dataclasses
import fcntl
import logging
import os
import random
import socket
import ssl
import sys
import time
import uuid
from typing import Any, Iterator, Mapping, TypeVar

from oslo_config import cfg

from msgbus.exceptions import ConfigurationError
from msgbus.driver.url_options import coerce_query_value
from msgbus.options import aliased_value

LOG = logging.getLogger(__name__)

#: oslo.messaging's group of its rabbit driver: read as a deprecated alias of a driver's group.
OSLO_RABBIT_GROUP = "oslo_messaging_rabbit"


def oslo_alias(*names: str) -> list[cfg.DeprecatedOpt]:
    """``deprecated_opts`` reading oslo.messaging's spelling(s) of an option in its group."""
    return [cfg.DeprecatedOpt(name, group=OSLO_RABBIT_GROUP) for name in names]


#: Options every AMQP driver registers in its own group (see :func:`register_amqp_opts`).
amqp_opts = [
    cfg.BoolOpt("amqp_durable_queues",
                deprecated_opts=oslo_alias("amqp_durable_queues"), default=False,
                help="Declare exchanges and shared queues durable, so they survive a broker "
                     "restart. Must match every other client of the same queues."),
    cfg.BoolOpt("amqp_auto_delete",
                deprecated_opts=oslo_alias("amqp_auto_delete"), default=False,
                help="Declare exchanges and shared queues auto-delete: the broker removes them "
                     "when their last consumer leaves."),
    cfg.BoolOpt("rabbit_quorum_queue",
                deprecated_opts=oslo_alias("rabbit_quorum_queue"), default=False,
                help="Declare topic, server and notification queues as quorum queues "
                     "(replicated; forces durable)."),
    cfg.IntOpt("rabbit_transient_queues_ttl",
               deprecated_opts=oslo_alias("rabbit_transient_queues_ttl"), default=1800, min=0,
               help="Seconds an unused reply or fanout queue lives before the broker deletes it "
                    "(x-expires), so that dead clients leave no queues behind; 0 sets no "
                    "x-expires. With rabbit_stream_fanout, the age of the oldest message kept "
                    "in the fanout stream (x-max-age) instead."),
    cfg.IntOpt("rabbit_qos_prefetch_count",
               deprecated_opts=oslo_alias("rabbit_qos_prefetch_count"), default=0, min=0,
               help="Unacknowledged messages a consumer may hold (basic.qos); 0 is unlimited."),
    cfg.IntOpt("heartbeat_timeout_threshold",
               deprecated_opts=oslo_alias("heartbeat_timeout_threshold"), default=60, min=0,
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
    cfg.FloatOpt("rabbit_retry_interval",
                 deprecated_opts=oslo_alias("rabbit_retry_interval"), default=1.0, min=0,
                 help="Seconds between reconnection attempts once an outage has lasted longer "
                      "than reconnect_fast_period."),
    cfg.FloatOpt("rabbit_retry_backoff",
                 deprecated_opts=oslo_alias("rabbit_retry_backoff"), default=2.0, min=0,
                 help="Seconds added to the reconnection delay after each failed attempt (after "
                      "the fast period)."),
    cfg.FloatOpt("rabbit_interval_max",
                 deprecated_opts=oslo_alias("rabbit_interval_max"), default=30.0, min=0,
                 help="Longest delay between reconnection attempts, in seconds."),
    cfg.IntOpt("rpc_conn_pool_size",
               deprecated_opts=oslo_alias("rpc_conn_pool_size"), default=30, min=1,
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
    cfg.BoolOpt("ssl",
                deprecated_opts=oslo_alias("ssl"), default=False, help="Connect over TLS."),
    cfg.StrOpt("ssl_ca_file",
               deprecated_opts=oslo_alias("ssl_ca_file"), default="",
               help="CA bundle that verifies the broker's certificate (TLS)."),
    cfg.StrOpt("ssl_cert_file",
               deprecated_opts=oslo_alias("ssl_cert_file"),
               default="", help="Client certificate file (TLS)."),
    cfg.StrOpt("ssl_key_file",
               deprecated_opts=oslo_alias("ssl_key_file"),
               default="", help="Client private key file (TLS)."),
    cfg.BoolOpt("ssl_verify", default=True,
                help="Verify the broker's certificate and host name (TLS)."),
    cfg.StrOpt("ssl_version", deprecated_opts=oslo_alias("ssl_version"), default="",
               help="TLS protocol version to use, as oslo.messaging names them (TLSv1, "
                    "TLSv1_1, TLSv1_2, SSLv23 for any); empty lets the client and broker "
                    "agree on the newest both support."),
    cfg.StrOpt("rabbit_login_method",
               deprecated_opts=oslo_alias("rabbit_login_method"),
               default="AMQPLAIN", choices=["PLAIN", "AMQPLAIN", "EXTERNAL", "RABBIT-CR-DEMO"],
               help="SASL mechanism used to log in to the broker. EXTERNAL logs in with the "
                    "TLS client certificate (ssl_cert_file)."),
    cfg.BoolOpt("rabbit_ha_queues",
                deprecated_opts=oslo_alias("rabbit_ha_queues"), default=False,
                help="Declare queues with x-ha-policy=all (classic mirrored queues, RabbitMQ "
                     "before 3.0). Cannot be combined with rabbit_quorum_queue."),
    cfg.IntOpt("rabbit_quorum_delivery_limit",
               deprecated_opts=oslo_alias("rabbit_quorum_delivery_limit"), default=0, min=0,
               help="With quorum queues: deliveries of one message after which the broker drops "
                    "(or dead-letters) it (x-delivery-limit); 0 sets no limit."),
    cfg.IntOpt("rabbit_quorum_max_memory_length",
               deprecated_opts=oslo_alias("rabbit_quorum_max_memory_length"), default=0, min=0,
               help="With quorum queues: messages a queue keeps in memory "
                    "(x-max-in-memory-length); 0 sets no limit."),
    cfg.IntOpt("rabbit_quorum_max_memory_bytes",
               deprecated_opts=oslo_alias("rabbit_quorum_max_memory_bytes"), default=0, min=0,
               help="With quorum queues: bytes of messages a queue keeps in memory "
                    "(x-max-in-memory-bytes); 0 sets no limit."),
    cfg.BoolOpt("rabbit_transient_quorum_queue",
                deprecated_opts=oslo_alias("rabbit_transient_quorum_queue"), default=False,
                help="Declare reply and fanout queues as quorum queues too (durable), and "
                     "fanout exchanges durable."),
    cfg.BoolOpt("rabbit_stream_fanout",
                deprecated_opts=oslo_alias("rabbit_stream_fanout"), default=False,
                help="Replace each listener's fanout queue by one stream queue "
                     "'<topic>_fanout' per topic (x-queue-type: stream) shared by all its "
                     "servers. Needs rabbit_transient_quorum_queue and a "
                     "rabbit_qos_prefetch_count above 0."),
    cfg.BoolOpt("use_queue_manager",
                deprecated_opts=oslo_alias("use_queue_manager"), default=False,
                help="Name reply and fanout queues after hostname and processname with a "
                     "counter, so that a restarted service declares the same names again "
                     "(unused ones go after rabbit_transient_queues_ttl), instead of random "
                     "names."),
    cfg.StrOpt("hostname", deprecated_opts=oslo_alias("hostname"), default=None,
               sample_default="node1.example.com",
               help="Host name in queue names of use_queue_manager; unset means this "
                    "machine's host name."),
    cfg.StrOpt("processname", deprecated_opts=oslo_alias("processname"), default=None,
               sample_default="nova-api",
               help="Process name in queue names of use_queue_manager; unset means the name "
                    "of the running program."),
    cfg.BoolOpt("enable_cancel_on_failover",
                deprecated_opts=oslo_alias("enable_cancel_on_failover"), default=False,
                help="Ask the broker to cancel consumers of a mirrored queue when its leader "
                     "fails over (x-cancel-on-ha-failover), so they consume again at once."),
]

#: oslo.messaging options msgbus reads so that a service's file works unchanged, but that have
#: no effect: a value other than the default is named in a warning when a transport starts.
#: (the option, why it has no effect)
IGNORED_OSLO_OPTIONS: tuple[tuple[cfg.Opt, str], ...] = (
    (cfg.FloatOpt("kombu_reconnect_delay",
                  deprecated_opts=oslo_alias("kombu_reconnect_delay"), default=1.0, min=0,
                  help="Accepted for oslo.messaging files; no effect: msgbus consumes again "
                       "after a cancel notification at once and reconnects per "
                       "reconnect_fast_interval."),
     "msgbus consumes again at once after a consumer cancel and reconnects per "
     "reconnect_fast_interval / rabbit_retry_interval"),
    (cfg.FloatOpt("kombu_reconnect_splay",
                  deprecated_opts=oslo_alias("kombu_reconnect_splay"), default=0.0, min=0,
                  help="Accepted for oslo.messaging files; no effect (reconnects are "
                       "jittered already)."),
     "reconnection delays are jittered already"),
    (cfg.StrOpt("kombu_compression",
                deprecated_opts=oslo_alias("kombu_compression"),
                help="Accepted for oslo.messaging files; no effect: msgbus sends messages "
                     "uncompressed."),
     "msgbus sends message bodies uncompressed"),
    (cfg.IntOpt("conn_pool_min_size",
                deprecated_opts=oslo_alias("conn_pool_min_size"),
                default=2, help="Accepted for oslo.messaging files; no effect."),
     "msgbus keeps rpc_conn_pool_size send connections"),
    (cfg.IntOpt("conn_pool_ttl",
                deprecated_opts=oslo_alias("conn_pool_ttl"),
                default=1200, help="Accepted for oslo.messaging files; no effect."),
     "msgbus keeps its send connections open"),
    (cfg.BoolOpt("ssl_enforce_fips_mode",
                 deprecated_opts=oslo_alias("ssl_enforce_fips_mode"), default=False,
                 help="Accepted for oslo.messaging files; no effect (as in oslo.messaging "
                      "with OpenSSL 3)."),
     "OpenSSL 3 has no FIPS mode switch; configure FIPS in OpenSSL itself"),
    (cfg.BoolOpt("ssl_enforce_hostname_verification",
                 deprecated_opts=oslo_alias("ssl_enforce_hostname_verification"), default=True,
                 help="Accepted for oslo.messaging files; use ssl_verify."),
     "msgbus checks the broker's host name whenever ssl_verify is true (the default); "
     "set ssl_verify = false to skip every check"),
    (cfg.BoolOpt("direct_mandatory_flag",
                 deprecated_opts=oslo_alias("direct_mandatory_flag"), default=True,
                 help="Accepted for oslo.messaging files; replies are always sent mandatory."),
     "replies are always sent mandatory, so a missing reply queue is noticed"),
    (cfg.BoolOpt("heartbeat_in_pthread",
                 deprecated_opts=oslo_alias("heartbeat_in_pthread"), default=False,
                 help="Accepted for oslo.messaging files; heartbeats always run on the "
                      "driver's own threads."),
     "heartbeats always run on the driver's own threads"),
)

ignored_opts = [opt for opt, _why in IGNORED_OSLO_OPTIONS]



def register_amqp_opts(conf: cfg.ConfigOpts, group: str) -> None:
    """Register the shared AMQP options (and the ignored oslo ones) in ``group`` of ``conf``
    (idempotent)."""
    conf.register_opts(amqp_opts, group=group)
    conf.register_opts(ignored_opts, group=group)


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
    ssl_version: str = ""
    login_method: str = "AMQPLAIN"
    ha_queues: bool = False
    quorum_delivery_limit: int = 0
    quorum_max_memory_length: int = 0
    quorum_max_memory_bytes: int = 0
    transient_quorum: bool = False
    stream_fanout: bool = False
    queue_manager: bool = False
    hostname: str = ""
    processname: str = ""
    cancel_on_failover: bool = False

    @classmethod
    def from_conf(cls, conf: cfg.ConfigOpts, group: str,
                  query: Mapping[str, str] | None = None) -> "AmqpSettings":
        """Read ``group`` and apply the URL's query options (same names) over it."""
        register_amqp_opts(conf, group)
        values: dict[str, Any] = {
            opt.dest: aliased_value(conf, group, opt, OSLO_RABBIT_GROUP) for opt in amqp_opts}
        for key, text in (query or {}).items():
            opt = next((o for o in amqp_opts if o.dest == key), None)
            if opt is None:
                continue
            values[key] = coerce_query_value(opt, text)
        _check(values)
        warn_ignored(conf, group)
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
            ssl_version=values["ssl_version"],
            login_method=values["rabbit_login_method"],
            ha_queues=values["rabbit_ha_queues"],
            quorum_delivery_limit=values["rabbit_quorum_delivery_limit"],
            quorum_max_memory_length=values["rabbit_quorum_max_memory_length"],
            quorum_max_memory_bytes=values["rabbit_quorum_max_memory_bytes"],
            transient_quorum=values["rabbit_transient_quorum_queue"],
            stream_fanout=values["rabbit_stream_fanout"],
            queue_manager=values["use_queue_manager"],
            hostname=values["hostname"] or socket.gethostname(),
            processname=values["processname"] or os.path.basename(sys.argv[0] or "python"),
            cancel_on_failover=values["enable_cancel_on_failover"],
        )


#: oslo.messaging's ssl_version names -> the one TLS version they pin (None: any).
SSL_VERSIONS: dict[str, ssl.TLSVersion | None] = {
    "": None, "sslv23": None, "tls": None,
    "tlsv1": ssl.TLSVersion.TLSv1, "tlsv1_1": ssl.TLSVersion.TLSv1_1,
    "tlsv1_2": ssl.TLSVersion.TLSv1_2, "tlsv1_3": ssl.TLSVersion.TLSv1_3,
}


def tls_version(name: str) -> ssl.TLSVersion | None:
    """The TLS version ``ssl_version`` pins (set it as both minimum and maximum of the
    context), or None for any; a name oslo.messaging would refuse is a ConfigurationError."""
    try:
        return SSL_VERSIONS[name.strip().lower()]
    except KeyError:
        raise ConfigurationError(
            f"option ssl_version: unknown TLS version {name!r}; use one of TLSv1, TLSv1_1, "
            f"TLSv1_2, TLSv1_3 or SSLv23 (any), or leave it empty") from None


def _check(values: Mapping[str, Any]) -> None:
    """Refuse combinations oslo.messaging refuses, with the options to change."""
    if values["rabbit_quorum_queue"] and values["rabbit_ha_queues"]:
        raise ConfigurationError("rabbit_quorum_queue and rabbit_ha_queues are both on: a "
                                 "queue is quorum or mirrored, not both; turn one off")
    if values["rabbit_stream_fanout"] and values["rabbit_qos_prefetch_count"] <= 0:
        raise ConfigurationError("rabbit_stream_fanout needs rabbit_qos_prefetch_count above 0 "
                                 "(streams are consumed with a prefetch limit)")
    if values["rabbit_stream_fanout"] and not values["rabbit_transient_quorum_queue"]:
        raise ConfigurationError("rabbit_stream_fanout needs rabbit_transient_quorum_queue = "
                                 "true (as in oslo.messaging)")
    tls_version(values["ssl_version"])


def warn_ignored(conf: cfg.ConfigOpts, group: str) -> None:
    """Log a warning naming each oslo.messaging option set to something msgbus does not do."""
    for opt, why in IGNORED_OSLO_OPTIONS:
        value = aliased_value(conf, group, opt, OSLO_RABBIT_GROUP)
        if value != opt.default:
            LOG.warning("option %s = %s has no effect in msgbus (%s)", opt.dest, value, why)


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
    #: arguments of basic.consume on this queue (x-stream-offset, x-cancel-on-ha-failover)
    consumer_arguments: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    #: whether the listener deletes the queue when it stops (False: shared or named to be
    #: declared again after a restart; the broker drops it per x-expires)
    private: bool = True


@dataclasses.dataclass(frozen=True)
class Route:
    """Where to publish: an exchange (``""`` is the default exchange) and a routing key."""

    exchange: ExchangeSpec | None
    routing_key: str

    @property
    def exchange_name(self) -> str:
        return self.exchange.name if self.exchange else ""


class QueueNamer:
    """Stable reply and fanout queue names for ``use_queue_manager``: host, process name and a
    counter kept in a file of /dev/shm (locked), so that the processes of one service never pick
    the same name and a restarted service (a new process group) counts from 1 again. The names
    say ``msgbus`` before the counter: oslo.messaging keeps its own counter, and an oslo process
    of the same host and process name must never pick the same queue."""

    def __init__(self, hostname: str, processname: str, folder: str = "/dev/shm") -> None:
        self.prefix = f"{hostname}:{processname}:msgbus"
        safe = f"{hostname}_{processname}".replace("/", "_")
        self.path = os.path.join(folder if os.path.isdir(folder) else "/tmp",
                                 f"msgbus_{safe}_queues")

    @staticmethod
    def _generation() -> str:
        group = os.getpgrp() or os.getpid()
        try:
            with open(f"/proc/{group}/stat") as stat:
                started = stat.read().rsplit(")", 1)[1].split()[19]
        except (OSError, IndexError):
            started = "0"
        return f"{group}-{started}"

    def next(self) -> str:
        """The next unused name of this service generation: ``host:process:msgbus:N``."""
        generation = self._generation()
        with open(self.path, "a+") as counter:
            fcntl.flock(counter, fcntl.LOCK_EX)
            counter.seek(0)
            seen, _, count = counter.read().partition(" ")
            number = int(count) + 1 if seen == generation and count.isdigit() else 1
            counter.seek(0)
            counter.truncate()
            counter.write(f"{generation} {number}")
        return f"{self.prefix}:{number}"


class Topology:
    """oslo.messaging's RabbitMQ names, flags and arguments for targets (18.3's rules),
    computed from AmqpSettings."""

    def __init__(self, settings: AmqpSettings, default_exchange: str) -> None:
        self.settings = settings
        self.default_exchange = default_exchange
        self._namer = (QueueNamer(settings.hostname, settings.processname)
                       if settings.queue_manager else None)

    # exchanges
    def topic_exchange(self, exchange: str | None) -> ExchangeSpec:
        """The topic exchange of a target (its own, or the control exchange)."""
        return ExchangeSpec(exchange or self.default_exchange, "topic",
                            self.settings.durable, self.settings.auto_delete)

    def fanout_exchange(self, topic: str) -> ExchangeSpec:
        """``<topic>_fanout``: the target's exchange is ignored for fanout; durable with
        rabbit_transient_quorum_queue."""
        return ExchangeSpec(f"{topic}_fanout", "fanout", self.settings.transient_quorum, True)

    # queue arguments
    def _type_arguments(self, quorum: bool) -> dict[str, Any]:
        settings = self.settings
        args: dict[str, Any] = {}
        if settings.ha_queues:
            args["x-ha-policy"] = "all"
        if quorum:
            args["x-queue-type"] = "quorum"
            for key, value in (("x-delivery-limit", settings.quorum_delivery_limit),
                               ("x-max-in-memory-length", settings.quorum_max_memory_length),
                               ("x-max-in-memory-bytes", settings.quorum_max_memory_bytes)):
                if value:
                    args[key] = value
        return args

    def _shared_arguments(self) -> dict[str, Any]:
        return self._type_arguments(self.settings.quorum)

    def _transient_arguments(self) -> dict[str, Any]:
        args = self._type_arguments(self.settings.transient_quorum)
        if self.settings.transient_ttl_ms > 0:
            args["x-expires"] = self.settings.transient_ttl_ms
        return args

    def _consumer_arguments(self) -> dict[str, Any]:
        return {"x-cancel-on-ha-failover": True} if self.settings.cancel_on_failover else {}

    def _shared_queue(self, name: str, exchange: str | None, key: str) -> QueueSpec:
        return QueueSpec(name, self.settings.durable, self.settings.auto_delete,
                         self._shared_arguments(), self.topic_exchange(exchange), key,
                         self._consumer_arguments(), private=False)

    def _unique(self) -> str:
        return self._namer.next() if self._namer is not None else uuid.uuid4().hex

    # queues
    def topic_queue(self, exchange: str | None, topic: str) -> QueueSpec:
        """The load-balanced queue ``<topic>`` shared by a topic's servers."""
        return self._shared_queue(topic, exchange, topic)

    def server_queue(self, exchange: str | None, topic: str, server: str) -> QueueSpec:
        """A server's own queue ``<topic>.<server>``."""
        name = f"{topic}.{server}"
        return self._shared_queue(name, exchange, name)

    def fanout_queue(self, topic: str) -> QueueSpec:
        """A listener's copy of the topic's fanout: ``<topic>_fanout_<uuid>``; with
        rabbit_stream_fanout one stream ``<topic>_fanout`` that every server reads from its
        end (x-stream-offset) and none deletes."""
        settings = self.settings
        consumer = self._consumer_arguments()
        if settings.stream_fanout:
            args: dict[str, Any] = {"x-queue-type": "stream"}
            if settings.transient_ttl_ms > 0:
                args["x-max-age"] = f"{settings.transient_ttl_ms // 1000}s"
            return QueueSpec(f"{topic}_fanout", True, False, args, self.fanout_exchange(topic),
                             topic, {**consumer, "x-stream-offset": "last"}, private=False)
        return QueueSpec(f"{topic}_fanout_{self._unique()}", settings.transient_quorum, False,
                         self._transient_arguments(), self.fanout_exchange(topic), topic,
                         consumer, private=not settings.queue_manager)

    def reply_queue(self) -> QueueSpec:
        """A transport's reply queue ``reply_<uuid>``, reached through the default exchange."""
        name = f"reply_{self._unique()}"
        return QueueSpec(name, self.settings.transient_quorum, False,
                         self._transient_arguments(), None, name, self._consumer_arguments(),
                         private=not self.settings.queue_manager)

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


#: Seconds after a consumer consumes again on a new connection at which it checks that its
#: queues still exist: a dead cluster node's clean-up deletes its non-durable queues by name, and
#: can delete one a client already declared again elsewhere, without a basic.cancel.
QUEUE_RECHECK_AFTER_RECONNECT = (1.0, 3.0, 10.0)


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
