"""The core's oslo.config options, and how they get onto a user's ConfigOpts.

oslo.messaging's spellings are read too: ``[DEFAULT]`` options have the same names, and
:func:`aliased_value` reads a value a test set in an ``oslo_messaging_*`` group that
:func:`register_oslo_groups` registered (values in configuration files reach msgbus's options
through their ``deprecated_opts``, with oslo.config's deprecation warning).
"""

from __future__ import annotations

import copy
import logging
from typing import Any

from oslo_config import cfg

LOG = logging.getLogger(__name__)

transport_opts = [
    cfg.StrOpt("transport_url", secret=True, default=None,
               help="URL of the messaging transport: its scheme picks the driver, for example "
                    "'rabbit://user:pass@host:5672/vhost' or 'fake://' for an in-process bus."),
    cfg.StrOpt("control_exchange", default="openstack",
               help="Exchange that targets without an explicit exchange use."),
]

rpc_opts = [
    cfg.FloatOpt("rpc_response_timeout", default=60, min=0,
                 help="Seconds an RPC call waits for its reply when the client sets no timeout."),
    cfg.BoolOpt("rpc_send_remote_traceback", default=False,
                help="Whether an RPC server includes the traceback of an endpoint's exception in "
                     "the failure it returns to the caller. Off by default: tracebacks can leak "
                     "server internals."),
    cfg.FloatOpt("reply_missing_queue_timeout", default=60.0, min=0,
                 deprecated_opts=[
                     cfg.DeprecatedOpt("kombu_missing_consumer_retry_timeout",
                                       group="oslo_messaging_rabbit"),
                     cfg.DeprecatedOpt("kombu_reconnect_timeout", group="oslo_messaging_rabbit")],
                 help="Seconds a server keeps sending a reply again, in the background, while "
                      "the caller's reply queue does not exist (for example while the caller "
                      "declares it again after a broker restart); then the reply is dropped "
                      "with an error log. Applies to every driver."),
    cfg.FloatOpt("listen_timeout", default=30.0, min=0.1,
                 help="Seconds that starting an RPC server or a notification listener waits "
                      "for the broker (connecting, declaring and binding its queues) before it "
                      "fails with an error naming the broker. Once started, listeners "
                      "reconnect on their own for as long as they run."),
    cfg.BoolOpt("rpc_ping_enabled", default=False,
                help="Add to every RPC server an endpoint answering the method "
                     "oslo_rpc_server_ping with 'pong', so that tools can check a server is "
                     "alive."),
    cfg.IntOpt("rpc_duplicate_window", default=4096, min=16,
               help="How many recent message unique ids a server or reply waiter remembers to "
                    "drop redelivered duplicates."),
]

executor_opts = [
    cfg.IntOpt("executor_thread_pool_size", default=64, min=1,
               deprecated_name="rpc_thread_pool_size",
               help="Number of worker threads of the threading executor: how many messages one "
                    "server or listener handles at once."),
]


def register_opts(conf: cfg.ConfigOpts) -> cfg.ConfigOpts:
    """Register the core options on ``conf`` (idempotent) and return it.

    An option oslo.messaging registered on the same ConfigOpts under the same name (a process
    running both, sharing ``cfg.CONF``) is left as it is: it means the same, only its help text
    differs, which oslo.config would refuse as a duplicate."""
    _register_missing(conf, [*transport_opts, *rpc_opts, *executor_opts], None)
    return conf


def aliased_value(conf: cfg.ConfigOpts, group: str | None, opt: cfg.Opt, alias_group: str | None,
                  alias_name: str | None = None) -> Any:
    """``opt``'s value in ``group``; while it is at its default, the value of its oslo.messaging
    spelling (``alias_name`` in ``alias_group``) when that is registered on ``conf`` (as
    :class:`~msgbus.conffixture.ConfFixture` does) and set."""
    value = conf[group][opt.dest] if group else conf[opt.dest]
    if value != opt.default:
        return value
    try:
        holder = conf[alias_group] if alias_group else conf
        alias = getattr(holder, alias_name or opt.dest)
    except (cfg.NoSuchOptError, cfg.NoSuchGroupError, AttributeError, KeyError):
        return value
    return value if alias is None else alias


def _renamed(opts: list[cfg.Opt], names: dict[str, str]) -> list[cfg.Opt]:
    """Copies of ``opts`` under their oslo.messaging names (``names`` maps ours to theirs)."""
    copies = []
    for opt in opts:
        renamed = copy.copy(opt)
        renamed.name = renamed.dest = names.get(opt.dest, opt.dest)
        renamed.deprecated_opts = []
        copies.append(renamed)
    return copies


def register_oslo_groups(conf: cfg.ConfigOpts) -> cfg.ConfigOpts:
    """Register oslo.messaging's groups (``oslo_messaging_rabbit``,
    ``oslo_messaging_notifications``) and its old ``[DEFAULT]`` notification names on ``conf``,
    so that code written for oslo.messaging can set them before any transport exists; msgbus
    reads what is set there when its own spelling is left at its default."""
    from msgbus.driver.amqp import OSLO_RABBIT_GROUP, amqp_opts, ignored_opts
    from msgbus.notify.options import OLD_DEFAULT_NAMES, OSLO_NOTIFY_GROUP, notifier_opts
    rabbit = [*_renamed([*amqp_opts, *ignored_opts], {}), *_oslo_only_rabbit_opts()]
    _register_missing(conf, rabbit, OSLO_RABBIT_GROUP)
    notify = [o for o in notifier_opts if o.dest in ("driver", "transport_url", "topics", "retry")]
    _register_missing(conf, _renamed(notify, {}), OSLO_NOTIFY_GROUP)
    old = [o for o in notify if o.dest in OLD_DEFAULT_NAMES]
    _register_missing(conf, _renamed(old, OLD_DEFAULT_NAMES), None)
    _register_missing(conf, _oslo_metrics_opts(), OSLO_METRICS_GROUP)
    return conf


#: oslo.messaging's group for its oslo.metrics client; msgbus sends no oslo.metrics data.
OSLO_METRICS_GROUP = "oslo_messaging_metrics"


def _oslo_metrics_opts() -> list[cfg.Opt]:
    """oslo.messaging's ``[oslo_messaging_metrics]`` options, registered so that code and
    configuration setting them keep working; ``metrics_enabled`` is warned about (see
    :func:`warn_unsupported_metrics`)."""
    return [
        cfg.BoolOpt("metrics_enabled", default=False,
                    help="oslo.messaging sends RPC metrics to oslo.metrics when true; msgbus "
                         "does not, and logs a warning when this is set."),
        cfg.IntOpt("metrics_buffer_size", default=1000,
                   help="Accepted for oslo.messaging compatibility; unused by msgbus."),
        cfg.StrOpt("metrics_socket_file", default="/var/tmp/metrics_collector.sock",
                   help="Accepted for oslo.messaging compatibility; unused by msgbus."),
        cfg.StrOpt("metrics_process_name", default="",
                   help="Accepted for oslo.messaging compatibility; unused by msgbus."),
        cfg.IntOpt("metrics_thread_stop_timeout", default=10,
                   help="Accepted for oslo.messaging compatibility; unused by msgbus."),
    ]


def warn_unsupported_metrics(conf: cfg.ConfigOpts) -> None:
    """Log a warning when ``[oslo_messaging_metrics] metrics_enabled`` asks for what msgbus
    does not send."""
    try:
        enabled = conf[OSLO_METRICS_GROUP].metrics_enabled
    except (cfg.NoSuchOptError, cfg.NoSuchGroupError):
        return
    if enabled:
        LOG.warning("[%s] metrics_enabled is set, but msgbus sends no oslo.metrics data: "
                    "the option is ignored", OSLO_METRICS_GROUP)


def _oslo_only_rabbit_opts() -> list[cfg.Opt]:
    """oslo.messaging rabbit options whose msgbus spelling lives elsewhere."""
    return [
        cfg.IntOpt("kombu_missing_consumer_retry_timeout", default=60,
                   help="oslo.messaging's spelling of [DEFAULT] reply_missing_queue_timeout."),
        cfg.StrOpt("kombu_failover_strategy", default="round-robin",
                   choices=["round-robin", "shuffle"],
                   help="oslo.messaging's spelling of [msgbus_rabbit] failover_strategy."),
        cfg.IntOpt("heartbeat_rate", default=3,
                   help="oslo.messaging's spelling of [msgbus_rabbit] heartbeat_rate."),
    ]


def _register_missing(conf: cfg.ConfigOpts, opts: list[cfg.Opt], group: str | None) -> None:
    """Register ``opts`` in ``group``, skipping names registered there already (for example by
    oslo.messaging itself on a shared ConfigOpts)."""
    for opt in opts:
        try:
            conf.register_opt(opt, group=group)
        except cfg.DuplicateOptError:
            continue


def new_conf() -> cfg.ConfigOpts:
    """A private ConfigOpts with the core options, for callers that pass none."""
    conf = cfg.ConfigOpts()
    conf([], project="msgbus", default_config_files=[], default_config_dirs=[])
    return register_opts(conf)


def list_opts() -> list[tuple[str | None, list[cfg.Opt]]]:
    """Entry point for ``oslo-config-generator --namespace msgbus``."""
    opts: list[tuple[str | None, list[cfg.Opt]]] = [
        (None, [*transport_opts, *rpc_opts, *executor_opts])]
    from msgbus.executors.aio import asyncio_opts
    opts[0][1].extend(asyncio_opts)
    from msgbus.notify.options import notifier_opts, NOTIFIER_GROUP
    opts.append((NOTIFIER_GROUP, list(notifier_opts)))
    return opts
