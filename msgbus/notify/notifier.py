"""The Notifier: sends notifications through its drivers; never raises to the caller."""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, Any, Iterable, Mapping, Sequence

from oslo_config import cfg

from msgbus import options as core_options
from msgbus.arguments import check_conf
from msgbus.notify import message as notification
from msgbus.notify import options
from msgbus.notify.driver import NotifierDriver, load_notifier_drivers
from msgbus.serializer import NoOpSerializer, Serializer
from msgbus.transport import NotificationTransport, Transport, _make

if TYPE_CHECKING:
    from msgbus.transport_url import TransportURL

LOG = logging.getLogger(__name__)

__all__ = ["Notifier", "AsyncNotifier", "get_notification_transport", "Driver"]

#: oslo.messaging's name of the notifier driver base class (``oslo_messaging.notify.notifier``).
Driver = NotifierDriver

_UNSET: Any = object()


def get_notification_transport(conf: cfg.ConfigOpts | None = None,
                               url: "str | TransportURL | None" = None,
                               allowed_remote_exmods: Iterable[str] | None = None
                               ) -> NotificationTransport:
    """A transport for notifiers and notification listeners.

    The URL is ``url``, else option ``transport_url`` of group ``msgbus_notifications``, else the
    RPC ``transport_url``: notifications may travel on another bus than RPC.
    """
    check_conf(conf, "get_notification_transport")
    conf = core_options.register_opts(conf) if conf is not None else core_options.new_conf()
    if url is None:
        url = options.group(conf).transport_url
    else:
        options.register_notifier_opts(conf)
    return _make(NotificationTransport, conf, url,  # type: ignore[return-value]
                 allowed_remote_exmods)


def _context_for_wire(ctxt: Any, warned: set[type]) -> Any:
    """What of a context a notification carries: oslo.messaging's rule, so that no token is
    broadcast to every consumer of the notification bus.

    None or a plain ``dict`` (exactly ``dict``, not a subclass) carries nothing: ``{}``. Any other
    context carries only what its ``redacted_copy()`` returns (oslo.context's ``RequestContext``
    drops its tokens there); a context without one carries nothing either, with a warning (once
    per class and Notifier: ``warned`` holds the classes already named).
    """
    if ctxt is None or type(ctxt) is dict:
        return {}
    redacted_copy = getattr(ctxt, "redacted_copy", None)
    if not callable(redacted_copy):
        _warn_unredactable(warned, type(ctxt), "it has no redacted_copy() method")
        return {}
    try:
        return redacted_copy()
    except Exception as exc:
        _warn_unredactable(warned, type(ctxt),
                           f"its redacted_copy() raised {type(exc).__name__}: {exc}")
        return {}


def _warn_unredactable(warned: set[type], cls: type, why: str) -> None:
    if cls in warned:
        return
    warned.add(cls)
    LOG.warning("notifications with a %s.%s context are sent without their context: %s",
                cls.__module__, cls.__qualname__, why)


class Notifier:
    """Sends notifications (``info(ctxt, event_type, payload)`` and the other priorities).

    ``driver`` (a name or a list; default: option ``driver`` of group ``msgbus_notifications``)
    picks the notifier drivers from the ``msgbus.notify.drivers`` entry points; ``topics``
    (default: option ``topics``) where the messaging drivers send; ``retry`` the connection
    retries (-1 or None: forever; default: option ``retry``). Sending is synchronous; a failure
    is logged, never raised: a notification must not break the operation it describes.
    """

    def __init__(self, transport: Transport, publisher_id: str | None = None,
                 driver: str | Sequence[str] | None = None,
                 serializer: Serializer | None = None, retry: int | None = None,
                 topics: Sequence[str] | None = None) -> None:
        conf = transport.conf
        group = options.group(conf)
        if not isinstance(transport, NotificationTransport):
            LOG.warning("Notifier uses an RPC transport: get one with get_notification_transport "
                        "so that notifications can have their own transport_url")
        self.transport = transport
        self.publisher_id = publisher_id
        self.retry = retry if retry is not None else group.retry
        if driver is None:
            names = list(group.driver)
        elif isinstance(driver, str):
            names = [driver]
        else:
            names = list(driver)
        self._topics = list(topics) if topics is not None else list(group.topics)
        self._serializer = serializer or NoOpSerializer()
        #: context classes already named in a "sent without their context" warning
        self._unredactable: set[type] = set()
        self._drivers: Mapping[str, NotifierDriver] = load_notifier_drivers(
            names, conf, self._topics, transport)

    @property
    def drivers(self) -> Mapping[str, NotifierDriver]:
        """The loaded notifier drivers by name (e.g. ``drivers["test"].notifications``)."""
        return self._drivers

    @property
    def topics(self) -> list[str]:
        return list(self._topics)

    def prepare(self, publisher_id: str | None = _UNSET,
                retry: int | None = _UNSET) -> "Notifier":
        """A Notifier sharing this one's drivers with another ``publisher_id`` and/or ``retry``."""
        return _SubNotifier(self,
                            self.publisher_id if publisher_id is _UNSET else publisher_id,
                            self.retry if retry is _UNSET else retry)

    def is_enabled(self) -> bool:
        """Whether notifications go anywhere: False with no driver or only ``noop``."""
        return bool(self._drivers) and list(self._drivers) != ["noop"]

    def _notify(self, ctxt: Any, event_type: str, payload: Any, priority: str) -> None:
        built = self._build(ctxt, event_type, payload, priority)
        if built is not None:
            self._send(*built, event_type, priority)

    def _build(self, ctxt: Any, event_type: str, payload: Any,
               priority: str) -> tuple[dict, dict] | None:
        """The wire context and message; None (logged) when there is nothing to send."""
        if not self._drivers:
            return None
        try:
            wire_payload = self._serializer.serialize_entity(ctxt, payload)
            wire_ctxt = _context_for_wire(ctxt, self._unredactable)
            ctxt_dict = self._serializer.serialize_context(wire_ctxt) or {}
            msg = notification.build(self.publisher_id, event_type, priority, wire_payload)
        except Exception as exc:
            LOG.error("notification %s (%s) not sent: cannot serialize it: %s: %s", event_type,
                      priority, type(exc).__name__, exc)
            return None
        return ctxt_dict, msg

    def _send(self, ctxt_dict: dict, msg: dict, event_type: str, priority: str) -> None:
        for name, driver in self._drivers.items():
            try:
                driver.notify(ctxt_dict, msg, priority, self.retry)
            except Exception as exc:
                LOG.error("notifier driver %s could not send notification %s (%s, %s): "
                          "%s: %s", name, msg["message_id"], event_type, priority,
                          type(exc).__name__, exc)

    def audit(self, ctxt: Any, event_type: str, payload: Any) -> None:
        """Send a notification at audit level."""
        self._notify(ctxt, event_type, payload, "AUDIT")

    def debug(self, ctxt: Any, event_type: str, payload: Any) -> None:
        """Send a notification at debug level."""
        self._notify(ctxt, event_type, payload, "DEBUG")

    def info(self, ctxt: Any, event_type: str, payload: Any) -> None:
        """Send a notification at info level."""
        self._notify(ctxt, event_type, payload, "INFO")

    def warn(self, ctxt: Any, event_type: str, payload: Any) -> None:
        """Send a notification at warning level (priority ``WARN``)."""
        self._notify(ctxt, event_type, payload, "WARN")

    warning = warn

    def error(self, ctxt: Any, event_type: str, payload: Any) -> None:
        """Send a notification at error level."""
        self._notify(ctxt, event_type, payload, "ERROR")

    def critical(self, ctxt: Any, event_type: str, payload: Any) -> None:
        """Send a notification at critical level."""
        self._notify(ctxt, event_type, payload, "CRITICAL")

    def sample(self, ctxt: Any, event_type: str, payload: Any) -> None:
        """Send a notification at sample level (frequent, small measurements)."""
        self._notify(ctxt, event_type, payload, "SAMPLE")


class _SubNotifier(Notifier):
    """A prepared Notifier: the base's drivers and serializer, its own publisher_id and retry."""

    def __init__(self, base: Notifier, publisher_id: str | None,  # noqa: D107
                 retry: int | None) -> None:
        self.transport = base.transport
        self.publisher_id = publisher_id
        self.retry = retry
        self._topics = base._topics
        self._serializer = base._serializer
        self._unredactable = base._unredactable
        self._drivers = base._drivers


class AsyncNotifier:
    """A :class:`Notifier` for asyncio code: ``await notifier.info(ctxt, event_type, payload)``.

    Same arguments, drivers and rules (a failure is logged, never raised). The payload and
    context are serialized in the caller's task (its ``contextvars`` are visible to the
    serializer); the drivers, which may wait on the broker, send from the loop's default
    executor, so the loop never blocks. ``AsyncNotifier(notifier=...)`` wraps an existing one.
    """

    def __init__(self, transport: Transport | None = None, publisher_id: str | None = None,
                 driver: str | Sequence[str] | None = None,
                 serializer: Serializer | None = None, retry: int | None = None,
                 topics: Sequence[str] | None = None, *,
                 notifier: Notifier | None = None) -> None:
        if notifier is None:
            if transport is None:
                raise TypeError("AsyncNotifier needs a transport (or notifier=an existing "
                                "Notifier)")
            notifier = Notifier(transport, publisher_id, driver, serializer, retry, topics)
        self.notifier = notifier

    @property
    def publisher_id(self) -> str | None:
        return self.notifier.publisher_id

    @property
    def drivers(self) -> Mapping[str, NotifierDriver]:
        """The loaded notifier drivers by name."""
        return self.notifier.drivers

    def prepare(self, publisher_id: str | None = _UNSET,
                retry: int | None = _UNSET) -> "AsyncNotifier":
        """An AsyncNotifier sharing this one's drivers (see :meth:`Notifier.prepare`)."""
        return AsyncNotifier(notifier=self.notifier.prepare(publisher_id, retry))

    def is_enabled(self) -> bool:
        """Whether notifications go anywhere (see :meth:`Notifier.is_enabled`)."""
        return self.notifier.is_enabled()

    async def _notify(self, ctxt: Any, event_type: str, payload: Any, priority: str) -> None:
        built = self.notifier._build(ctxt, event_type, payload, priority)
        if built is None:
            return
        await asyncio.get_running_loop().run_in_executor(
            None, self.notifier._send, built[0], built[1], event_type, priority)

    async def audit(self, ctxt: Any, event_type: str, payload: Any) -> None:
        """Send a notification at audit level."""
        await self._notify(ctxt, event_type, payload, "AUDIT")

    async def debug(self, ctxt: Any, event_type: str, payload: Any) -> None:
        """Send a notification at debug level."""
        await self._notify(ctxt, event_type, payload, "DEBUG")

    async def info(self, ctxt: Any, event_type: str, payload: Any) -> None:
        """Send a notification at info level."""
        await self._notify(ctxt, event_type, payload, "INFO")

    async def warn(self, ctxt: Any, event_type: str, payload: Any) -> None:
        """Send a notification at warning level (priority ``WARN``)."""
        await self._notify(ctxt, event_type, payload, "WARN")

    warning = warn

    async def error(self, ctxt: Any, event_type: str, payload: Any) -> None:
        """Send a notification at error level."""
        await self._notify(ctxt, event_type, payload, "ERROR")

    async def critical(self, ctxt: Any, event_type: str, payload: Any) -> None:
        """Send a notification at critical level."""
        await self._notify(ctxt, event_type, payload, "CRITICAL")

    async def sample(self, ctxt: Any, event_type: str, payload: Any) -> None:
        """Send a notification at sample level (frequent, small measurements)."""
        await self._notify(ctxt, event_type, payload, "SAMPLE")
