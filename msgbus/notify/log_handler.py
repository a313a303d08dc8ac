"""Logging handlers that turn log records into notifications.

:class:`LoggingNotificationHandler` sends each record as a ``logrecord`` notification at the
record's level; :class:`LoggingErrorNotificationHandler` (alias ``PublishErrorsHandler``) sends
records as ``error_notification`` errors. Both guard against recursion (a failure to send is
logged, and that log record is not sent again) and never raise from ``emit``.
"""

from __future__ import annotations

import logging
import threading
import traceback
from typing import Any, Sequence

from oslo_config import cfg

from msgbus.notify import options
from msgbus.notify.notifier import Notifier, get_notification_transport
from msgbus.serializer import Serializer

__all__ = ["LoggingNotificationHandler", "LoggingErrorNotificationHandler",
           "PublishErrorsHandler"]

_LEVEL_METHODS = {"DEBUG": "debug", "INFO": "info", "WARNING": "warn", "WARN": "warn",
                  "ERROR": "error", "CRITICAL": "critical", "FATAL": "critical"}


class _GuardedHandler(logging.Handler):
    """A handler whose ``emit`` is not re-entered on the same thread, and never raises.

    Records of the messaging stack itself (``ignored_loggers``) are not sent: they may be logged
    on a driver's I/O thread, which a send from that thread would wait for forever.
    """

    #: Logger name prefixes whose records are never sent.
    ignored_loggers: tuple[str, ...] = ("msgbus", "kombu", "amqp", "pika")

    def __init__(self, level: int = logging.NOTSET) -> None:
        super().__init__(level)
        self._busy = threading.local()
        self._owned_transport: Any = None

    def emit(self, record: logging.LogRecord) -> None:
        if getattr(self._busy, "active", False):
            return  # a record logged while sending a record: do not loop
        if record.name.startswith(self.ignored_loggers):
            return
        self._busy.active = True
        try:
            self._send(record)
        except Exception:
            self.handleError(record)
        finally:
            self._busy.active = False

    def _send(self, record: logging.LogRecord) -> None:
        raise NotImplementedError

    def close(self) -> None:
        """Close the handler and the transport it made for itself."""
        transport, self._owned_transport = self._owned_transport, None
        if transport is not None:
            transport.cleanup()
        super().close()


class LoggingNotificationHandler(_GuardedHandler):
    """Sends every log record as a notification of the record's level (event ``logrecord``).

    Usable from a logging configuration file::

        [handler_notifier]
        class = msgbus.LoggingNotificationHandler
        level = ERROR
        args = ('rabbit://guest:guest@localhost:5672/',)

    ``conf`` defaults to the class attribute ``CONF`` (oslo.config's global ``cfg.CONF``, as in
    oslo.messaging); subclass to change it.
    """

    CONF: cfg.ConfigOpts = cfg.CONF

    def __init__(self, url: str | None, publisher_id: str | None = None,
                 driver: str | Sequence[str] | None = None,
                 topic: str | Sequence[str] | None = None,
                 serializer: type[Serializer] | Serializer | None = None,
                 conf: cfg.ConfigOpts | None = None, level: int = logging.NOTSET) -> None:
        super().__init__(level)
        transport = get_notification_transport(conf if conf is not None else self.CONF, url)
        self._owned_transport = transport
        if isinstance(serializer, type):
            serializer = serializer()
        topics = [topic] if isinstance(topic, str) else topic
        self.notifier = Notifier(transport, publisher_id, driver, serializer, topics=topics)

    def _send(self, record: logging.LogRecord) -> None:
        method = _LEVEL_METHODS.get(record.levelname)
        if method is None:
            return
        exc_text = None
        if record.exc_info and record.exc_info[0] is not None:
            exc_text = "".join(traceback.format_exception(*record.exc_info))
        getattr(self.notifier, method)({}, "logrecord", {
            "name": record.name, "levelno": record.levelno, "levelname": record.levelname,
            "exc_info": exc_text, "pathname": record.pathname, "lineno": record.lineno,
            "msg": record.getMessage(), "funcName": record.funcName, "thread": record.thread,
            "processName": record.processName, "process": record.process,
            "extra": getattr(record, "extra", None)})


class LoggingErrorNotificationHandler(_GuardedHandler):
    """Sends records as ``error_notification`` errors with publisher ``error.publisher``.

    Nothing is sent when the ``log`` notifier driver is configured: that driver would log the
    notification, which would come back here. ``conf`` defaults to ``cfg.CONF``.
    """

    def __init__(self, level: int = logging.NOTSET, conf: cfg.ConfigOpts | None = None,
                 url: str | None = None) -> None:
        super().__init__(level)
        conf = conf if conf is not None else cfg.CONF
        transport = get_notification_transport(conf, url)
        self._owned_transport = transport
        self._conf = conf
        self._notifier = Notifier(transport, publisher_id="error.publisher")

    def _send(self, record: logging.LogRecord) -> None:
        if "log" in options.group(self._conf).driver:
            return
        self._notifier.error({}, "error_notification", {"error": record.getMessage()})


#: oslo.messaging's older name.
PublishErrorsHandler = LoggingErrorNotificationHandler
