"""msgbus: RPC and notifications over message brokers, with oslo.messaging's API.

Everything a user needs is importable from here; drivers come from the ``msgbus.drivers`` entry
point group and are chosen by the transport URL's scheme (``fake://``, ``rabbit://``, ``pika://``).
"""

from msgbus import exceptions, serializer, target, transport
from msgbus.rpc import dispatcher
from msgbus import notify
from msgbus.notify import (LoggingErrorNotificationHandler, LoggingNotificationHandler,
                           NotificationFilter, NotificationResult, Notifier,
                           PublishErrorsHandler, get_batch_notification_listener,
                           get_notification_listener, get_notification_transport)
from msgbus.exceptions import (ClientSendError, ConfigurationError, DriverLoadFailure,
                               ExecutorLoadFailure, ExpectedException, InvalidTarget,
                               InvalidTransportURL, MessageDeliveryFailure,
                               MessageSerializationError, MessageUndeliverable,
                               MessagingException, MessagingServerError, MessagingTimeout,
                               NoSuchMethod, RemoteError, RPCDispatcherError, RPCVersionCapError,
                               ServerListenError, TransportClosedError, UnsupportedVersion)
from msgbus.rpc import (DefaultRPCAccessPolicy, ExplicitRPCAccessPolicy, LegacyRPCAccessPolicy,
                        RPCAccessPolicyBase, RPCClient, RPCDispatcher, RPCServer,
                        expected_exceptions, expose, get_rpc_client, get_rpc_server)
from msgbus.serializer import (JsonPayloadSerializer, NoOpSerializer, RequestContextSerializer,
                               Serializer)
from msgbus.server import MessageHandlingServer
from msgbus.target import Target
from msgbus.transport import (NotificationTransport, RPCTransport, Transport, TransportHost,
                              TransportOptions, TransportURL, get_rpc_transport, get_transport,
                              set_transport_defaults)

__all__ = [
    "ClientSendError", "ConfigurationError", "DriverLoadFailure", "ExecutorLoadFailure",
    "ExpectedException", "InvalidTarget", "InvalidTransportURL", "MessageDeliveryFailure",
    "MessageSerializationError", "MessageUndeliverable", "MessagingException",
    "MessagingServerError", "MessagingTimeout", "NoSuchMethod", "RemoteError",
    "RPCDispatcherError", "RPCVersionCapError", "ServerListenError", "TransportClosedError",
    "UnsupportedVersion",
    "DefaultRPCAccessPolicy", "ExplicitRPCAccessPolicy", "LegacyRPCAccessPolicy",
    "RPCAccessPolicyBase", "RPCClient", "RPCDispatcher", "RPCServer", "expected_exceptions",
    "expose", "get_rpc_client", "get_rpc_server", "JsonPayloadSerializer", "NoOpSerializer",
    "RequestContextSerializer", "Serializer", "MessageHandlingServer", "Target",
    "NotificationTransport", "RPCTransport", "Transport", "TransportHost", "TransportOptions",
    "TransportURL", "get_rpc_transport", "get_transport", "set_transport_defaults",
    "exceptions", "serializer", "target", "transport", "dispatcher",
    "notify", "Notifier", "NotificationFilter", "NotificationResult",
    "LoggingNotificationHandler", "LoggingErrorNotificationHandler", "PublishErrorsHandler",
    "get_notification_listener", "get_batch_notification_listener", "get_notification_transport",
]
