"""RPC client: ``call`` (wait for the result) and ``cast`` (fire and forget) to a Target."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from msgbus import envelope
from msgbus.exceptions import (ClientSendError, InvalidTarget, MessagingException,
                               RPCVersionCapError)
from msgbus.rpc.versions import version_is_compatible
from msgbus.serializer import NoOpSerializer, Serializer
from msgbus.target import Target
from msgbus.transport import Transport, TransportOptions

LOG = logging.getLogger(__name__)

__all__ = ["RPCClient", "get_rpc_client"]

_UNSET: Any = object()


class _CallContext:
    """A client bound to one target and set of options; ``prepare`` makes variations."""

    def __init__(self, transport: Transport, target: Target, serializer: Serializer | None,
                 timeout: float | None, version_cap: str | None, retry: int | None,
                 call_monitor_timeout: float | None,
                 transport_options: TransportOptions | None) -> None:
        if not isinstance(transport, Transport):
            raise TypeError(f"expected a msgbus Transport, got {type(transport).__name__}")
        self.transport = transport
        self.target = target
        self.serializer = serializer or NoOpSerializer()
        self.timeout = timeout
        self.version_cap = version_cap
        self.retry = retry
        self.call_monitor_timeout = call_monitor_timeout
        self.transport_options = transport_options

    def prepare(self, exchange: str | None = _UNSET, topic: str | None = _UNSET,
                namespace: str | None = _UNSET, version: str | None = _UNSET,
                server: str | None = _UNSET, fanout: bool | None = _UNSET,
                timeout: float | None = _UNSET, version_cap: str | None = _UNSET,
                retry: int | None = _UNSET, call_monitor_timeout: float | None = _UNSET,
                transport_options: TransportOptions | None = _UNSET) -> "_CallContext":
        """A copy of this client with some target fields or options replaced."""
        changes = {k: v for k, v in dict(exchange=exchange, topic=topic, namespace=namespace,
                                         version=version, server=server,
                                         fanout=fanout).items() if v is not _UNSET}
        pick = lambda new, old: old if new is _UNSET else new  # noqa: E731
        return _CallContext(self.transport, self.target(**changes), self.serializer,
                            pick(timeout, self.timeout), pick(version_cap, self.version_cap),
                            pick(retry, self.retry),
                            pick(call_monitor_timeout, self.call_monitor_timeout),
                            pick(transport_options, self.transport_options))

    def can_send_version(self, version: str | None = _UNSET) -> bool:
        """Whether ``version`` (default: the target's) is within the version cap."""
        version = self.target.version if version is _UNSET else version
        return (not self.version_cap or not version
                or version_is_compatible(self.version_cap, version))

    def _check_version_cap(self) -> None:
        version = self.target.version
        if self.version_cap and version and not version_is_compatible(self.version_cap, version):
            raise RPCVersionCapError(version=version, version_cap=self.version_cap)

    def _message(self, ctxt: Any, method: str, kwargs: dict) -> dict:
        if not isinstance(method, str) or not method:
            raise ValueError(f"method must be a non-empty string, not {method!r}")
        self._check_version_cap()
        msg: dict[str, Any] = {
            "method": method,
            "args": {k: self.serializer.serialize_entity(ctxt, v) for k, v in kwargs.items()},
        }
        if self.target.namespace is not None:
            msg["namespace"] = self.target.namespace
        if self.target.version:
            msg["version"] = self.target.version
        msg["_unique_id"] = envelope.new_id()
        envelope.pack_context(msg, self.serializer.serialize_context(ctxt))
        return msg

    def _mandatory(self) -> bool:
        return bool(self.transport_options and self.transport_options.at_least_once)

    def _publish(self, body: bytes, ttl: float | None) -> None:
        try:
            self.transport.send(self.target, body, ttl=ttl, retry=self.retry,
                                mandatory=self._mandatory())
        except MessagingException:
            raise
        except Exception as exc:
            raise ClientSendError(self.target, exc) from exc

    def cast(self, ctxt: Any, method: str, **kwargs: Any) -> None:
        """Send ``method(**kwargs)`` to the target without waiting for a result."""
        self.target.require("topic", why="to send a message")
        self._publish(envelope.encode(self._message(ctxt, method, kwargs)), None)

    def _prepare_call(self, ctxt: Any, method: str, kwargs: dict) -> tuple:
        self.target.require("topic", why="to send a message")
        if self.target.fanout:
            raise InvalidTarget("A call cannot be used with fanout", self.target)
        msg = self._message(ctxt, method, kwargs)
        timeout = self.timeout
        if timeout is None:
            timeout = self.transport.conf.rpc_response_timeout
        waiter = self.transport.reply_waiter()
        msg_id = envelope.new_id()
        msg["_msg_id"] = msg_id
        msg["_reply_q"] = waiter.address
        msg["_timeout"] = self.call_monitor_timeout
        return waiter, envelope.encode(msg), timeout, waiter.register(msg_id)

    def call(self, ctxt: Any, method: str, **kwargs: Any) -> Any:
        """Invoke ``method(**kwargs)`` on one server and return its result.

        Raises the remote exception (rebuilt when allowed, else RemoteError), or MessagingTimeout
        when no reply comes within ``timeout`` (or no heartbeat within call_monitor_timeout).
        """
        waiter, body, timeout, pending = self._prepare_call(ctxt, method, kwargs)
        try:
            self._publish(body, timeout)
        except BaseException:
            waiter.forget(pending.msg_id)
            raise
        result = waiter.wait(pending, timeout or None, self.call_monitor_timeout)
        return self.serializer.deserialize_entity(ctxt, result)

    async def call_async(self, ctxt: Any, method: str, **kwargs: Any) -> Any:
        """:meth:`call` for asyncio: awaits the reply without blocking the event loop."""
        waiter, body, timeout, pending = self._prepare_call(ctxt, method, kwargs)
        try:
            await asyncio.get_running_loop().run_in_executor(None, self._publish, body, timeout)
        except BaseException:
            waiter.forget(pending.msg_id)
            raise
        result = await waiter.wait_async(pending, timeout or None, self.call_monitor_timeout)
        return self.serializer.deserialize_entity(ctxt, result)

    async def cast_async(self, ctxt: Any, method: str, **kwargs: Any) -> None:
        """:meth:`cast` for asyncio: the send runs off the event loop."""
        self.target.require("topic", why="to send a message")
        body = envelope.encode(self._message(ctxt, method, kwargs))
        await asyncio.get_running_loop().run_in_executor(None, self._publish, body, None)


class RPCClient(_CallContext):
    """Invokes methods on RPC servers listening on ``target``.

    ``timeout`` defaults to the ``rpc_response_timeout`` option; ``version_cap`` refuses to send
    newer versions; ``retry`` bounds connection retries (None: forever); ``call_monitor_timeout``
    lets long calls live as long as the server keeps sending heartbeats.
    """

    def __init__(self, transport: Transport, target: Target, timeout: float | None = None,
                 version_cap: str | None = None, serializer: Serializer | None = None,
                 retry: int | None = None, call_monitor_timeout: float | None = None,
                 transport_options: TransportOptions | None = None,
                 _manual_load: bool = True) -> None:
        super().__init__(transport, target, serializer, timeout, version_cap, retry,
                         call_monitor_timeout, transport_options)


def get_rpc_client(transport: Transport, target: Target, *, client_cls: type = RPCClient,
                   **kwargs: Any) -> RPCClient:
    """Build an RPCClient (oslo.messaging's factory function)."""
    return client_cls(transport, target, **kwargs)
