"""The messaging notifier drivers under oslo.messaging's module path
(``oslo_messaging.notify.messaging``)."""

from msgbus.notify.drivers.messaging import MessagingDriver, MessagingV2Driver

__all__ = ["MessagingDriver", "MessagingV2Driver"]
