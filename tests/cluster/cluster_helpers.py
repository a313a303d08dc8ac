"""Helpers of the cluster tests: option sets for both AMQP drivers and oslo.messaging."""

from __future__ import annotations

import importlib
import uuid
from typing import Any

from oslo_config import cfg

from msgbus import options as core_options

#: The URL scheme of each AMQP driver under test.
DRIVERS = ["rabbit", "pika"]
#: Every topic these tests make starts with this.
TOPIC_PREFIX = "msgbus-cluster-"


def unique(name: str) -> str:
    return f"{TOPIC_PREFIX}{name}-{uuid.uuid4().hex[:8]}"


def msgbus_conf(**overrides: Any) -> cfg.ConfigOpts:
    """A fresh ConfigOpts with both AMQP drivers' options registered and ``overrides`` set in
    both drivers' groups (everything else keeps its default)."""
    from msgbus_kombu.options import GROUP as KOMBU_GROUP
    from msgbus_kombu.options import register_opts as register_kombu
    from msgbus_pika.options import GROUP as PIKA_GROUP
    from msgbus_pika.options import register_opts as register_pika
    conf = core_options.new_conf()
    register_kombu(conf)
    register_pika(conf)
    for key, value in overrides.items():
        for group in (KOMBU_GROUP, PIKA_GROUP):
            conf.set_override(key, value, group=group)
    return conf


def quorum_conf(**overrides: Any) -> cfg.ConfigOpts:
    """:func:`msgbus_conf` with ``rabbit_quorum_queue = true``."""
    return msgbus_conf(rabbit_quorum_queue=True, **overrides)


def oslo_conf(url: str, **rabbit_opts: Any) -> cfg.ConfigOpts:
    """A fresh ConfigOpts for oslo.messaging with ``rabbit_opts`` in oslo_messaging_rabbit."""
    import oslo_messaging as om
    conf = cfg.ConfigOpts()
    conf([], project="oslo-cluster", default_config_files=[], default_config_dirs=[])
    om.get_rpc_transport(conf, url=url).cleanup()  # registers oslo's options
    # oslo.messaging 18 registers its tracing and metrics options on the global CONF only
    for module, group in (("oslo_messaging._tracing.client", "oslo_messaging_tracing"),
                          ("oslo_messaging._metrics.client", "oslo_messaging_metrics")):
        try:
            opts = getattr(importlib.import_module(module), group)
        except (ImportError, AttributeError):
            continue
        conf.register_opts(opts, group=group)
    for key, value in rabbit_opts.items():
        conf.set_override(key, value, group="oslo_messaging_rabbit")
    return conf
