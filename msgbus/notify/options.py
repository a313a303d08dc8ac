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
]


def register_notifier_opts(conf: cfg.ConfigOpts) -> None:
    """Register the notifier options on ``conf`` (idempotent)."""
    conf.register_opts(notifier_opts, group=NOTIFIER_GROUP)
