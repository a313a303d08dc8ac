"""The logging handler under oslo.messaging's module path (``oslo_messaging.notify.logger``),
which logging configuration files name."""

from msgbus.notify.log_handler import LoggingNotificationHandler

__all__ = ["LoggingNotificationHandler"]
