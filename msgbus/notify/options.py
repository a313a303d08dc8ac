"""Options of the notifier, in their own group; oslo.messaging's spellings are read as aliases.

A configuration file's ``[oslo_messaging_notifications]`` options (and the older
``[DEFAULT] notification_driver``, ``notification_topics``, ``notification_transport_url``) reach
these options through ``deprecated_opts``, with oslo.config's deprecation warning naming the new
spelling; values a test sets in those groups through ConfFixture are read by :func:`group`.
"""

from __future__ import annotations

from typing import Any

from oslo_config import cfg

from msgbus.options import aliased_value

NOTIFIER_GROUP = "msgbus_notifications"
#: oslo.messaging's group of the notifier options.
OSLO_NOTIFY_GROUP = "oslo_messaging_notifications"
#: our option name -> its oldest oslo.messaging spelling, in [DEFAULT]
OLD_DEFAULT_NAMES = {"driver": "notification_driver", "topics": "notification_topics",
                     "transport_url": "notification_transport_url"}


def _aliases(name: str) -> list[cfg.DeprecatedOpt]:
    aliases = [cfg.DeprecatedOpt(name, group=OSLO_NOTIFY_GROUP)]
    if name in OLD_DEFAULT_NAMES:
        aliases.append(cfg.DeprecatedOpt(OLD_DEFAULT_NAMES[name], group="DEFAULT"))
    return aliases


notifier_opts = [
    cfg.MultiStrOpt("driver", default=[], deprecated_opts=_aliases("driver"),
                    help="Notifier driver(s) that send notifications: messagingv2, messaging, "
                         "log, noop, test, routing. None configured means notifications are "
                         "dropped."),
    cfg.StrOpt("transport_url", secret=True, deprecated_opts=_aliases("transport_url"),
               help="Transport URL for notifications; falls back to the RPC transport_url."),
    cfg.ListOpt("topics", default=["notifications"], deprecated_opts=_aliases("topics"),
                help="Topics notifications are sent to."),
    cfg.IntOpt("retry", default=-1, deprecated_opts=_aliases("retry"),
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


class NotifierOptions:
    """The notifier options of one ConfigOpts, read by attribute (``group(conf).driver``): our
    group's value, else one set in oslo.messaging's group or old ``[DEFAULT]`` name."""

    def __init__(self, conf: cfg.ConfigOpts) -> None:
        self._conf = conf

    def __getattr__(self, name: str) -> Any:
        opt = next((o for o in notifier_opts if o.dest == name), None)
        if opt is None:
            raise AttributeError(name)
        value = aliased_value(self._conf, NOTIFIER_GROUP, opt, OSLO_NOTIFY_GROUP)
        if name in OLD_DEFAULT_NAMES and value == opt.default:
            value = aliased_value(self._conf, NOTIFIER_GROUP, opt, None, OLD_DEFAULT_NAMES[name])
        return value


def group(conf: cfg.ConfigOpts) -> NotifierOptions:
    """The notifier options of ``conf`` (registered on it if needed)."""
    register_notifier_opts(conf)
    return NotifierOptions(conf)
