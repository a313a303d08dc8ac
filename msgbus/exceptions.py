"""Every exception msgbus raises, with oslo.messaging's names.

They live in one module so that a remote failure naming ``msgbus.exceptions`` can be rebuilt by a
client without importing anything the wire asked for.
"""

from __future__ import annotations

from typing import Any


class MessagingException(Exception):
    """Base class of msgbus's own errors."""


class MessagingTimeout(MessagingException):
    """No reply (or no call-monitor heartbeat) arrived in time."""


class MessageDeliveryFailure(MessagingException):
    """The broker could not be reached, or refused the message, within the retry budget."""


class TransportClosedError(MessageDeliveryFailure):
    """The transport was closed (``cleanup()``): make a new one to send or serve again."""


class MessageUndeliverable(MessagingException):
    """The broker had no queue to route a mandatory message to."""

    def __init__(self, exception: Exception | None = None, exchange: str | None = None,
                 routing_key: str | None = None, message: Any = None) -> None:
        super().__init__(f"message to exchange {exchange!r} with routing key {routing_key!r} "
                         f"could not be routed to any queue")
        self.exception = exception
        self.exchange = exchange
        self.routing_key = routing_key
        self.message = message


class ConfigurationError(MessagingException):
    """A configuration value is invalid."""


class InvalidTarget(MessagingException, ValueError):
    """A Target lacks a field that the operation needs."""

    def __init__(self, msg: str, target: Any) -> None:
        super().__init__(f"{msg}: {target}")
        self.target = target


class InvalidTransportURL(MessagingException):
    """A transport URL could not be parsed."""

    def __init__(self, url: str, msg: str) -> None:
        super().__init__(msg)
        self.url = url


class DriverLoadFailure(MessagingException):
    """No driver matches the transport URL's scheme, or the driver is broken."""

    def __init__(self, driver: str, ex: Exception | str) -> None:
        super().__init__(f"failed to load transport driver {driver!r}: {ex}")
        self.driver = driver
        self.ex = ex


class ExecutorLoadFailure(MessagingException):
    """No executor of that name is installed."""

    def __init__(self, executor: str, ex: Exception | str) -> None:
        super().__init__(f"failed to load executor {executor!r}: {ex}")
        self.executor = executor
        self.ex = ex


class MessagingServerError(MessagingException):
    """Base class of errors raised by servers."""


class ServerListenError(MessagingServerError):
    """The server could not start listening on its target."""

    def __init__(self, target: Any, ex: Exception) -> None:
        super().__init__(f"failed to listen on target {target}: {ex}")
        self.target = target
        self.ex = ex


class RPCDispatcherError(MessagingServerError):
    """Base class of errors the dispatcher sends back instead of a result."""


class NoSuchMethod(RPCDispatcherError, AttributeError):
    """No endpoint exposes the method, or the access policy refused it."""

    def __init__(self, method: str) -> None:
        super().__init__(f"Endpoint does not support RPC method {method}")
        self.method = method


class UnsupportedVersion(RPCDispatcherError):
    """No endpoint implements a version compatible with the requested one."""

    def __init__(self, version: str, method: str | None = None) -> None:
        super().__init__(f"Endpoint does not support RPC version {version}. "
                         f"Attempted method: {method}")
        self.version = version
        self.method = method


class RPCVersionCapError(MessagingException):
    """The requested version is above the client's version cap; nothing was sent."""

    def __init__(self, version: str | None, version_cap: str | None) -> None:
        super().__init__(f"Requested message version, {version} is incompatible. It needs to be "
                         f"equal in major version and less than or equal in minor version as the "
                         f"specified version cap {version_cap}.")
        self.version = version
        self.version_cap = version_cap


class ClientSendError(MessagingException):
    """The client could not hand the message to the transport."""

    def __init__(self, target: Any, ex: Exception) -> None:
        super().__init__(f"Failed to send to target {target}: {ex}")
        self.target = target
        self.ex = ex


class MessageSerializationError(MessagingException, TypeError):
    """Arguments or a result could not be encoded as JSON."""


class RemoteError(MessagingException):
    """A remote method raised an exception the client may not rebuild.

    ``exc_type`` is the remote class name, ``value`` its message, ``traceback`` the remote
    traceback text when the server sent one.
    """

    def __init__(self, exc_type: str | None = None, value: str | None = None,
                 traceback: str | None = None) -> None:
        self.exc_type = exc_type
        self.value = value
        self.traceback = traceback
        msg = f"Remote error: {exc_type} {value}"
        if traceback:
            msg += f"\n{traceback}"
        super().__init__(msg)


class ExpectedException(Exception):
    """Wraps an exception an endpoint declared as expected, so it is not logged as an error."""

    def __init__(self) -> None:
        import sys
        self.exc_info = sys.exc_info()
