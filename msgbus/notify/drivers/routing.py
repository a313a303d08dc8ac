"""The ``routing`` notifier driver: rules in a YAML file pick other drivers per notification.

The file (option ``routing_config`` of group ``msgbus_notifications``) has oslo.messaging's
routing_driver format: groups of driver names, each driver with glob lists ``accepted_events``
and/or ``accepted_priorities``. A driver receives a notification when every rule it has matches
(a driver with no rule receives everything); a driver named in several groups receives it once::

    group_1:
      messagingv2:
        accepted_priorities: [info, error]
      log:
        accepted_events: ["compute.instance.*"]
"""

from __future__ import annotations

import fnmatch
import logging
from typing import TYPE_CHECKING, Any, Mapping, Sequence

import yaml

from msgbus.exceptions import ConfigurationError
from msgbus.notify import options
from msgbus.notify.driver import NotifierDriver, NotifierDriverLoadFailure, load_notifier_driver

if TYPE_CHECKING:
    from oslo_config import cfg

    from msgbus.transport import Transport

LOG = logging.getLogger(__name__)

__all__ = ["RoutingDriver", "RoutingRule", "parse_routing_config", "load_routing_config"]

_RULE_KEYS = ("accepted_events", "accepted_priorities")


class RoutingRule:
    """The conditions of one driver in one group."""

    def __init__(self, driver: str, events: list[str] | None,
                 priorities: list[str] | None) -> None:
        self.driver = driver
        self.events = events
        self.priorities = [p.lower() for p in priorities] if priorities is not None else None

    def matches(self, event_type: str, priority: str) -> bool:
        """True when every condition the rule has accepts ``event_type`` and ``priority``."""
        if self.events is not None and \
                not any(fnmatch.fnmatchcase(event_type, p) for p in self.events):
            return False
        if self.priorities is not None and \
                not any(fnmatch.fnmatchcase(priority.lower(), p) for p in self.priorities):
            return False
        return True

    def __repr__(self) -> str:
        return f"<RoutingRule {self.driver} events={self.events} priorities={self.priorities}>"


def _patterns(where: str, value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return value
    raise ConfigurationError(f"routing config: {where} must be a list of glob patterns, "
                             f"not {value!r}")


def parse_routing_config(data: Any, source: str = "routing config") -> list[RoutingRule]:
    """The rules of a loaded routing document (None or empty: no rules); ConfigurationError."""
    if data is None:
        return []
    if not isinstance(data, Mapping):
        raise ConfigurationError(f"{source}: the top level must map group names to drivers, "
                                 f"not a {type(data).__name__}")
    rules = []
    for group_name, group in data.items():
        if group is None:
            continue
        if not isinstance(group, Mapping):
            raise ConfigurationError(f"{source}: group {group_name!r} must map driver names to "
                                     f"rules, not a {type(group).__name__}")
        for driver, conditions in group.items():
            conditions = conditions or {}
            if not isinstance(conditions, Mapping):
                raise ConfigurationError(f"{source}: rules of driver {driver!r} in group "
                                         f"{group_name!r} must be a mapping")
            for key in conditions:
                if key not in _RULE_KEYS:
                    LOG.warning("%s: unknown rule %r for driver %r in group %r ignored "
                                "(known: %s)", source, key, driver, group_name,
                                ", ".join(_RULE_KEYS))
            where = f"{group_name}.{driver}"
            events = conditions.get("accepted_events")
            priorities = conditions.get("accepted_priorities")
            rules.append(RoutingRule(
                str(driver),
                _patterns(f"{where}.accepted_events", events) if events is not None else None,
                _patterns(f"{where}.accepted_priorities", priorities)
                if priorities is not None else None))
    return rules


def load_routing_config(path: str) -> list[RoutingRule]:
    """Read and parse the routing YAML file at ``path``; ConfigurationError if unusable."""
    try:
        with open(path, encoding="utf-8") as stream:
            data = yaml.safe_load(stream)
    except OSError as exc:
        raise ConfigurationError(f"cannot read the notification routing config {path!r}: "
                                 f"{exc.strerror or exc}") from exc
    except yaml.YAMLError as exc:
        raise ConfigurationError(f"notification routing config {path!r} is not valid YAML: "
                                 f"{exc}") from exc
    return parse_routing_config(data, source=path)


class RoutingDriver(NotifierDriver):
    """Hands each notification to the drivers whose routing rules accept it."""

    def __init__(self, conf: "cfg.ConfigOpts", topics: Sequence[str],
                 transport: "Transport") -> None:
        super().__init__(conf, topics, transport)
        path = options.group(self.conf).routing_config
        if path:
            self.rules = load_routing_config(path)
        else:
            LOG.warning("routing notifier driver has no routing_config: notifications are dropped")
            self.rules = []
        self.drivers: dict[str, NotifierDriver] = {}
        for rule in self.rules:
            if rule.driver in self.drivers:
                continue
            if rule.driver == "routing":
                LOG.warning("routing config names the routing driver itself: ignored")
                continue
            try:
                cls = load_notifier_driver(rule.driver)
            except NotifierDriverLoadFailure as exc:
                LOG.warning("routing config: %s; its rules are ignored", exc)
                continue
            self.drivers[rule.driver] = cls(self.conf, topics=self.topics,
                                            transport=self.transport)

    def drivers_for(self, event_type: str, priority: str) -> list[str]:
        """Names of the loaded drivers that accept a notification, each once, in file order."""
        names: list[str] = []
        for rule in self.rules:
            if rule.driver in self.drivers and rule.driver not in names and \
                    rule.matches(event_type, priority):
                names.append(rule.driver)
        return names

    def notify(self, ctxt: dict, message: dict, priority: str, retry: int | None) -> None:
        event_type = str(message.get("event_type"))
        for name in self.drivers_for(event_type, priority):
            LOG.debug("routing notification %s (%s) to driver %s",
                      message.get("message_id"), event_type, name)
            try:
                self.drivers[name].notify(ctxt, message, priority, retry)
            except Exception:
                LOG.exception("notifier driver %s failed on notification %s (%s)", name,
                              message.get("message_id"), event_type)
