"""Notifications: the Notifier, its drivers, notification listeners, filters, logging handlers.

Send with ``Notifier(get_notification_transport(url=...), publisher_id).info(ctxt, event,
payload)``; receive with ``get_notification_listener(transport, [Target(topic=...)],
endpoints)``, whose endpoints have methods named after priorities.
"""

from msgbus.notify.dispatcher import NotificationResult
from msgbus.notify.driver import NotifierDriver, NotifierDriverLoadFailure
from msgbus.notify.filter import NotificationFilter
from msgbus.notify.listener import (BatchNotificationServer, NotificationServer,
                                    get_batch_notification_listener, get_notification_listener)
from msgbus.notify.log_handler import (LoggingErrorNotificationHandler,
                                       LoggingNotificationHandler, PublishErrorsHandler)
from msgbus.notify.message import PRIORITIES
from msgbus.notify.notifier import AsyncNotifier, Notifier, get_notification_transport

__all__ = ["Notifier", "AsyncNotifier", "get_notification_transport", "get_notification_listener",
           "get_batch_notification_listener", "NotificationResult", "NotificationFilter",
           "NotificationServer", "BatchNotificationServer", "LoggingNotificationHandler",
           "LoggingErrorNotificationHandler", "PublishErrorsHandler", "NotifierDriver",
           "NotifierDriverLoadFailure", "PRIORITIES"]
