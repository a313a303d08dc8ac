"""Options of the notifier, in their own group."""

from __future__ import annotations

from oslo_config import cfg

NOTIFIER_GROUP = "msgbus_notifications"

notifier_opts = [
    cfg.MultiStrOpt("driver", default=[],
                    help="Notifier driver(s) that send notifications: messagingv2, messaging, "
                         "log, noop, test, routing. None configured means notifications are "
                         "dropped."),
    cfg.StrOpt("transport_url", secret=True,
               help="Transport URL for notifications; falls back to the RPC transport_url."),
    cfg.ListOpt("topics", default=["notifications"],
                help="Topics notifications are sent to."),
    cfg.IntOpt("retry", default=-1,
               help="Connection retries when sending a notification: -1 forever, 0 none, "
                    "N at most N."),
    cfg.StrOpt("routing_config", default="",
               help="YAML file of the 'routing' notifier driver: groups of driver names, each "
                    "with 'accepted_events' and/or 'accepted_priorities' glob patterns."),
]


def register_notifier_opts(conf: cfg.ConfigOpts) -> cfg.ConfigOpts:
    """Register the notifier options on ``conf`` (idempotent) and return it."""
    conf.register_opts(notifier_opts, group=NOTIFIER_GROUP)
    return conf


def group(conf: cfg.ConfigOpts) -> cfg.ConfigOpts.GroupAttr:
    """The registered notifier option group of ``conf``."""
    register_notifier_opts(conf)
    return getattr(conf, NOTIFIER_GROUP)
