"""The driver's oslo.config options (group ``msgbus_rabbit``) and the settings read from them.

The group holds the AMQP options every msgbus AMQP driver shares (``msgbus.driver.amqp``) plus a
few of this driver's own. A transport URL's query options (``rabbit://...?ssl=true``) override
the configured values, option by option.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Mapping

from oslo_config import cfg

from msgbus.driver.amqp import (OSLO_RABBIT_GROUP, AmqpSettings, amqp_opts, ignored_opts,
                               oslo_alias,
                               register_amqp_opts)
from msgbus.driver.url_options import coerce_query_value
from msgbus.options import aliased_value

LOG = logging.getLogger(__name__)

#: The oslo.config group of this driver's options.
GROUP = "msgbus_rabbit"

kombu_opts = [
    cfg.IntOpt("heartbeat_rate", default=3, min=1, deprecated_opts=oslo_alias("heartbeat_rate"),
               help="How many times per heartbeat_timeout_threshold the driver checks and "
                    "sends AMQP heartbeats on each connection."),
    cfg.FloatOpt("confirm_timeout", default=0, min=0,
                 help="Seconds to wait for the broker to confirm a published message before "
                      "the connection is taken as dead and the send is retried; 0 means "
                      "heartbeat_timeout_threshold (or 60 when heartbeats are off). A call "
                      "never waits longer than its own timeout."),
    cfg.StrOpt("failover_strategy", default="round-robin",
               deprecated_opts=oslo_alias("kombu_failover_strategy"),
               choices=[("round-robin", "try the URL's hosts in turn"),
                        ("shuffle", "try the URL's hosts in a random order")],
               help="Order in which the hosts of a multi-host transport URL are tried when "
                    "(re)connecting."),
    cfg.FloatOpt("listener_drain_timeout", default=30.0, min=0,
                 help="Seconds a stopped listener keeps its connection open so that messages "
                      "already handed to the application can still be acknowledged or "
                      "requeued; deliveries left unsettled then go back to the queue."),
    cfg.StrOpt("connection_name_prefix", default="msgbus",
               help="Prefix of the connection_name client property shown by the broker "
                    "(e.g. rabbitmqctl list_connections client_properties)."),
    cfg.BoolOpt("fast_path", default=True,
                help="Publish, read and settle with the driver's own frame code "
                     "(msgbus_kombu.frames) where the installed py-amqp and kombu are versions "
                     "it was verified against; false (or other versions) uses only py-amqp's "
                     "public API."),
]


def register_opts(conf: cfg.ConfigOpts) -> None:
    """Register every option of the driver in :data:`GROUP` (idempotent)."""
    register_amqp_opts(conf, GROUP)
    conf.register_opts(kombu_opts, group=GROUP)


def list_opts() -> list[tuple[str, list[cfg.Opt]]]:
    """Entry point for ``oslo-config-generator --namespace msgbus_kombu``."""
    return [(GROUP, list(amqp_opts) + list(ignored_opts) + list(kombu_opts))]


@dataclasses.dataclass(frozen=True)
class KombuSettings:
    """This driver's own settings in effect for one transport (config, then URL query)."""

    heartbeat_rate: int
    confirm_timeout: float
    failover_strategy: str
    listener_drain_timeout: float
    connection_name_prefix: str
    fast_path: bool = True


@dataclasses.dataclass(frozen=True)
class Settings:
    """Everything the driver reads from configuration for one transport."""

    amqp: AmqpSettings
    kombu: KombuSettings

    @property
    def io_timeout(self) -> float:
        """Seconds a blocking read (a confirm, a declare) may wait before the link is dead."""
        if self.kombu.confirm_timeout > 0:
            return self.kombu.confirm_timeout
        return float(self.amqp.heartbeat or 60)

    @property
    def fast_path(self) -> bool:
        """Whether links use :mod:`msgbus_kombu.frames` (the option, and verified versions)."""
        from msgbus_kombu.frames import VERSIONS_OK  # (imports py-amqp: only when asked)
        return self.kombu.fast_path and VERSIONS_OK

    @property
    def heartbeat_interval(self) -> float | None:
        """Seconds between heartbeat checks on a connection, None when heartbeats are off."""
        if not self.amqp.heartbeat:
            return None
        return self.amqp.heartbeat / (2.0 * self.kombu.heartbeat_rate)


def read_settings(conf: cfg.ConfigOpts, query: Mapping[str, str] | None = None) -> Settings:
    """The settings of one transport: ``conf``'s :data:`GROUP`, overridden by URL ``query``."""
    register_opts(conf)
    query = dict(query or {})
    known = {o.dest for o in amqp_opts} | {o.dest for o in kombu_opts}
    unknown = sorted(set(query) - known)
    if unknown:
        LOG.warning("ignoring unknown transport URL option(s) %s (known: %s)",
                    ", ".join(unknown), ", ".join(sorted(known)))
    amqp = AmqpSettings.from_conf(conf, GROUP, query)
    oslo_names = {"failover_strategy": "kombu_failover_strategy"}
    values = {o.dest: aliased_value(conf, GROUP, o, OSLO_RABBIT_GROUP, oslo_names.get(o.dest))
              for o in kombu_opts}
    for opt in kombu_opts:
        if opt.dest in query:
            values[opt.dest] = coerce_query_value(opt, query[opt.dest])
    return Settings(amqp, KombuSettings(**values))
