"""The pika driver's options (group ``msgbus_pika``) and the settings one transport runs with.

The AMQP options shared with the kombu driver come from :mod:`msgbus.driver.amqp`; the few below
are pika's own. (How long a server start waits for the broker, ``listen_timeout``, and how long a
reply to a missing reply queue is retried, ``reply_missing_queue_timeout``, are core options in
``[DEFAULT]``: the core passes the first as a deadline and does the second itself.)
Any of them can be overridden per transport in the URL's query string, for example
``pika://guest:guest@127.0.0.1:5672/?rabbit_retry_interval=0.1&heartbeat_timeout_threshold=10``.
"""

from __future__ import annotations

import copy
import dataclasses
import logging
from typing import Mapping

from oslo_config import cfg

from msgbus.driver.amqp import (OSLO_RABBIT_GROUP, AmqpSettings, amqp_opts, ignored_opts,
                               oslo_alias,
                               register_amqp_opts)
from msgbus.driver.url_options import coerce_query_value
from msgbus.options import aliased_value

LOG = logging.getLogger(__name__)

#: The option group of this driver.
GROUP = "msgbus_pika"

pika_opts = [
    cfg.FloatOpt("blocked_connection_timeout", default=60.0, min=0,
                 help="Seconds a connection may stay blocked by a broker resource alarm "
                      "(connection.blocked) before it is dropped and re-established; 0 waits "
                      "forever."),
    cfg.FloatOpt("shutdown_timeout", default=10.0, min=0.1,
                 help="Seconds stopping a listener or closing a transport waits for the broker to "
                      "confirm the cancellations and queue deletions before closing anyway."),
    cfg.BoolOpt("fast_path", default=True,
                help="Use the driver's tuned SelectConnection (msgbus_pika.select_connection) "
                     "where the installed pika is a release series it was verified against; "
                     "false (or another pika) uses pika's plain SelectConnection."),
]

_ALL_OPTS = {opt.dest: opt for opt in [*amqp_opts, *pika_opts]}


def register_opts(conf: cfg.ConfigOpts) -> None:
    """Register the shared AMQP options and pika's own in group ``msgbus_pika`` (idempotent)."""
    register_amqp_opts(conf, GROUP)
    conf.register_opts(pika_opts, group=GROUP)
    conf.register_opts(kombu_only_opts, group=GROUP)


#: oslo.messaging rabbit options of its kombu connection that pika has no use for: read (from
#: ``[oslo_messaging_rabbit]`` too) only to name them in a warning when set.
kombu_only_opts = [
    cfg.StrOpt("failover_strategy", default="round-robin",
               deprecated_opts=oslo_alias("kombu_failover_strategy"),
               help="Accepted for oslo.messaging files (kombu_failover_strategy); the pika "
                    "driver tries the URL's hosts round-robin."),
    cfg.IntOpt("heartbeat_rate", default=3, deprecated_opts=oslo_alias("heartbeat_rate"),
               help="Accepted for oslo.messaging files; pika paces heartbeats itself."),
]


def _warn_kombu_only(conf: cfg.ConfigOpts) -> None:
    """Name the kombu-only options set (in our group, ``[oslo_messaging_rabbit]`` or through
    ConfFixture) that this driver does not apply."""
    oslo_names = {"failover_strategy": "kombu_failover_strategy"}
    for opt in kombu_only_opts:
        value = aliased_value(conf, GROUP, opt, OSLO_RABBIT_GROUP, oslo_names.get(opt.dest))
        if value != opt.default:
            LOG.warning("option %s = %s has no effect on the pika driver",
                        oslo_names.get(opt.dest, opt.dest), value)


def list_opts() -> list[tuple[str, list[cfg.Opt]]]:
    """Entry point ``oslo.config.opts``: every option of the driver, for sample config files."""
    return [(GROUP, copy.deepcopy([*amqp_opts, *ignored_opts, *pika_opts, *kombu_only_opts]))]


@dataclasses.dataclass(frozen=True)
class PikaSettings:
    """Everything a pika transport needs to know from configuration and its URL's query."""

    amqp: AmqpSettings
    blocked_connection_timeout: float
    shutdown_timeout: float
    fast_path: bool = True

    @classmethod
    def from_conf(cls, conf: cfg.ConfigOpts,
                  query: Mapping[str, str] | None = None) -> "PikaSettings":
        """Read group ``msgbus_pika``; URL query options (same names) win over it."""
        register_opts(conf)
        query = dict(query or {})
        unknown = sorted(set(query) - set(_ALL_OPTS))
        if unknown:
            LOG.warning("pika transport URL: ignoring unknown option(s) %s; known: %s",
                        ", ".join(unknown), ", ".join(sorted(_ALL_OPTS)))
        amqp = AmqpSettings.from_conf(conf, GROUP, query)
        group = conf[GROUP]
        values = {opt.dest: getattr(group, opt.dest) for opt in pika_opts}
        _warn_kombu_only(conf)
        for opt in pika_opts:
            if opt.dest in query:
                values[opt.dest] = coerce_query_value(opt, query[opt.dest])
        return cls(amqp=amqp, **values)
