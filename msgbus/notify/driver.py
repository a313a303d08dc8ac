"""Notifier drivers: the interface, and loading them from the ``msgbus.notify.drivers`` group.

A notifier driver decides what "sending" a notification means: putting it on the message bus
(``messagingv2``, ``messaging``), logging it (``log``), keeping it in memory (``test``), routing it
to other drivers (``routing``) or dropping it (``noop``). Each is constructed once per Notifier as
``cls(conf, topics=..., transport=...)``.
"""

from __future__ import annotations

import abc
import difflib
from typing import TYPE_CHECKING, Any, Iterable, Sequence

from stevedore import driver as sd_driver

from msgbus.driver.loader import installed
from msgbus.exceptions import DriverLoadFailure

if TYPE_CHECKING:
    from oslo_config import cfg

    from msgbus.transport import Transport

__all__ = ["NotifierDriver", "NotifierDriverLoadFailure", "DRIVER_GROUP", "load_notifier_driver",
           "load_notifier_drivers"]

DRIVER_GROUP = "msgbus.notify.drivers"


class NotifierDriverLoadFailure(DriverLoadFailure):
    """No notifier driver of that name is installed, or it could not be imported."""

    def __init__(self, driver: str, ex: Exception | str) -> None:
        Exception.__init__(self, f"failed to load notifier driver {driver!r}: {ex}")
        self.driver = driver
        self.ex = ex


class NotifierDriver(abc.ABC):
    """Base class of notifier drivers (oslo.messaging's ``notify.notifier.Driver``)."""

    def __init__(self, conf: "cfg.ConfigOpts", topics: Sequence[str],
                 transport: "Transport") -> None:
        self.conf = conf
        self.topics = list(topics)
        self.transport = transport

    @abc.abstractmethod
    def notify(self, ctxt: dict, message: dict, priority: str, retry: int | None) -> None:
        """Send ``message`` (see :mod:`msgbus.notify.message`) with ``priority`` (upper case).

        ``ctxt`` is the serialized request context (a dict). ``retry``: None retries connection
        failures forever, 0 never, N at most N times. May raise; the Notifier logs the failure.
        """


def _unknown(name: str) -> str:
    names = installed(DRIVER_GROUP)
    msg = (f"no notifier driver named {name!r} is installed (entry point group "
           f"{DRIVER_GROUP!r}); installed: {', '.join(names) or 'none'}")
    close = difflib.get_close_matches(name, names, n=1)
    if close:
        msg += f"; did you mean {close[0]!r}?"
    return msg


def load_notifier_driver(name: str) -> type[NotifierDriver]:
    """The notifier driver class registered under ``name``; NotifierDriverLoadFailure if none."""
    if name not in installed(DRIVER_GROUP):
        raise NotifierDriverLoadFailure(name, _unknown(name))
    try:
        cls: Any = sd_driver.DriverManager(DRIVER_GROUP, name, invoke_on_load=False).driver
    except sd_driver.NoMatches:
        raise NotifierDriverLoadFailure(name, _unknown(name)) from None
    except Exception as exc:  # the plugin's own import failed
        raise NotifierDriverLoadFailure(name, f"{type(exc).__name__}: {exc}") from exc
    if not (isinstance(cls, type) and callable(getattr(cls, "notify", None))):
        raise NotifierDriverLoadFailure(name, f"entry point gives {cls!r}, "
                                              "not a notifier driver class")
    return cls


def load_notifier_drivers(names: Iterable[str], conf: "cfg.ConfigOpts", topics: Sequence[str],
                          transport: "Transport") -> dict[str, NotifierDriver]:
    """Instantiate the named drivers (duplicates once each), keyed by name, in order."""
    drivers: dict[str, NotifierDriver] = {}
    for name in names:
        if name not in drivers:
            drivers[name] = load_notifier_driver(name)(conf, topics=topics, transport=transport)
    return drivers
