"""RPC client: ``call`` (wait for the result) and ``cast`` (fire and forget) to a Target."""

from __future__ import annotations

import asyncio
import contextvars
import logging
import random
import time
from typing import Any

from msgbus import envelope
from msgbus.arguments import check_target, positional_arguments_error
from msgbus.driver.base import Capability
from msgbus.exceptions import (ClientSendError, InvalidTarget, MessageUndeliverable,
                               MessagingException, MessagingTimeout, RemoteError,
                               RPCVersionCapError)
from msgbus.rpc.aio_call import AsyncCalls
from msgbus.rpc.versions import check_version, version_allowed
from msgbus.serializer import NoOpSerializer, Serializer
from msgbus.target import Target
from msgbus.transport import Transport, TransportOptions

LOG = logging.getLogger(__name__)

# oslo.messaging's names in its rpc.client module (its users import the errors from there too)
__all__ = ["RPCClient", "get_rpc_client", "ClientSendError", "RPCVersionCapError", "RemoteError"]

_UNSET: Any = object()

#: First and longest pause before sending again a call the broker could not route (no queue
#: for its topic yet: a server is starting, or declaring its queues again after a restart).
_UNROUTED_FIRST_PAUSE = 0.02
_UNROUTED_MAX_PAUSE = 0.25


class _Call:
    """One call on its way: what was sent and the deadline that bounds all of it."""

    __slots__ = ("waiter", "body", "pending", "timeout", "deadline", "method")

    def __init__(self, waiter: Any, body: bytes, pending: Any, timeout: float | None,
                 deadline: float | None, method: str) -> None:
        self.waiter = waiter
        self.body = body
        self.pending = pending
        self.timeout = timeout
        self.deadline = deadline
        self.method = method


class _CallContext:
    """A client bound to one target and set of options; ``prepare`` makes variations."""

    def __init__(self, transport: Transport, target: Target, serializer: Serializer | None,
                 timeout: float | None, version_cap: str | None, retry: int | None,
                 call_monitor_timeout: float | None,
                 transport_options: TransportOptions | None) -> None:
        if not isinstance(transport, Transport):
            raise TypeError(f"expected a msgbus Transport, got {type(transport).__name__}")
        check_target(target, "RPCClient")
        self.transport = transport
        self.target = target
        self.serializer = serializer or NoOpSerializer()
        self.timeout = timeout
        self.version_cap = version_cap
        self.retry = retry
        self.call_monitor_timeout = call_monitor_timeout
        self.transport_options = transport_options
        self._aio = AsyncCalls()  # shared with prepare()'s copies

    def prepare(self, exchange: str | None = _UNSET, topic: str | None = _UNSET,
                namespace: str | None = _UNSET, version: str | None = _UNSET,
                server: str | None = _UNSET, fanout: bool | None = _UNSET,
                timeout: float | None = _UNSET, version_cap: str | None = _UNSET,
                retry: int | None = _UNSET, call_monitor_timeout: float | None = _UNSET,
                transport_options: TransportOptions | None = _UNSET) -> "_CallContext":
        """A copy of this client with some target fields or options replaced.

        An unparsable ``version`` raises MessagingException here, as with oslo.messaging."""
        if version is not _UNSET:
            check_version(version)
        changes = {k: v for k, v in dict(exchange=exchange, topic=topic, namespace=namespace,
                                         version=version, server=server,
                                         fanout=fanout).items() if v is not _UNSET}
        pick = lambda new, old: old if new is _UNSET else new  # noqa: E731
        prepared = _CallContext(self.transport, self.target(**changes), self.serializer,
                                pick(timeout, self.timeout),
                                pick(version_cap, self.version_cap), pick(retry, self.retry),
                                pick(call_monitor_timeout, self.call_monitor_timeout),
                                pick(transport_options, self.transport_options))
        prepared._aio = self._aio
        return prepared

    def can_send_version(self, version: str | None = _UNSET) -> bool:
        """Whether a message at ``version`` (default: the target's) may be sent under the
        version cap. As oslo.messaging: True without a cap; with a cap, False for no version."""
        if version is _UNSET:
            version = self.target.version
        else:
            check_version(version)
        return version_allowed(self.version_cap, version)

    def _check_version_cap(self) -> None:
        version = self.target.version
        if not version_allowed(self.version_cap, version):
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

    def _publish(self, body: bytes, ttl: float | None, mandatory: bool = False,
                 deadline: float | None = None) -> None:
        try:
            self.transport.send(self.target, body, ttl=ttl, retry=self.retry,
                                mandatory=mandatory or self._mandatory(), deadline=deadline)
        except MessagingException:
            raise
        except Exception as exc:
            raise ClientSendError(self.target, exc) from exc

    def _describe(self, method: str, timeout: float | None) -> str:
        where = f"topic {self.target.topic!r}"
        if self.target.server:
            where += f", server {self.target.server!r}"
        if self.target.exchange:
            where += f", exchange {self.target.exchange!r}"
        limit = f" within {timeout:g}s" if timeout else ""
        return f" (call of {method!r} on {where}{limit})"

    def _publish_call(self, call: _Call) -> None:
        """Send a call's request; while the broker has no queue for it (it returns the message
        as unroutable), send it again until the call's deadline: a server may be starting or
        declaring its queues again after a broker restart. ``at_least_once`` raises at once."""
        returns = Capability.MANDATORY in self.transport.capabilities
        pause = _UNROUTED_FIRST_PAUSE
        tries = 0
        # With a call monitor, a call that no server has taken gives up after that long too.
        give_up = call.deadline
        if self.call_monitor_timeout:
            monitor_end = time.monotonic() + self.call_monitor_timeout
            give_up = monitor_end if give_up is None else min(give_up, monitor_end)
        while True:
            # The first send carries the call's timeout as its expiration, as oslo.messaging's
            # does; one sent again carries the time left.
            ttl = call.timeout
            if tries and call.deadline is not None:
                ttl = call.deadline - time.monotonic()
            if give_up is not None and time.monotonic() >= give_up:
                raise MessagingTimeout(
                    f"Timed out sending message ID {call.pending.msg_id}"
                    f"{self._describe(call.method, call.timeout)}: "
                    + ("the broker had no queue for it (no server is listening)"
                       if tries else "no time left to send it"))
            try:
                self._publish(call.body, ttl, mandatory=returns, deadline=call.deadline)
                return
            except MessageUndeliverable:
                if self._mandatory():
                    raise
            tries += 1
            if tries == 1:
                LOG.info("no queue for message %s%s yet; sending it again until the call's "
                         "deadline", call.pending.msg_id,
                         self._describe(call.method, call.timeout))
            wait = pause * random.uniform(0.5, 1.0)
            if give_up is not None:
                wait = min(wait, max(0.0, give_up - time.monotonic()))
            time.sleep(wait)
            pause = min(pause * 2, _UNROUTED_MAX_PAUSE)

    def cast(self, ctxt: Any, method: str, *args: Any, **kwargs: Any) -> None:
        """Send ``method(**kwargs)`` to the target without waiting for a result."""
        if args:
            raise positional_arguments_error("cast", method, args)
        self.target.require("topic", why="to send a message")
        self._publish(envelope.encode(self._message(ctxt, method, kwargs)), None)

    def _prepare_call(self, ctxt: Any, method: str, kwargs: dict) -> _Call:
        start = time.monotonic()
        msg = self._call_message(ctxt, method, kwargs)
        timeout, deadline = self._call_deadline(start)
        return self._register_call(msg, method, timeout, deadline)

    def _call_message(self, ctxt: Any, method: str, kwargs: dict) -> dict:
        self.target.require("topic", why="to send a message")
        if self.target.fanout:
            raise InvalidTarget("A call cannot be used with fanout", self.target)
        return self._message(ctxt, method, kwargs)

    def _call_deadline(self, start: float) -> tuple[float | None, float | None]:
        timeout = self.timeout
        if timeout is None:
            timeout = self.transport.conf.rpc_response_timeout
        return timeout or None, (start + timeout if timeout else None)

    def _register_call(self, msg: dict, method: str, timeout: float | None,
                       deadline: float | None) -> _Call:
        waiter = self.transport.reply_waiter(deadline)
        msg_id = envelope.new_id()
        msg["_msg_id"] = msg_id
        msg["_reply_q"] = waiter.address
        msg["_timeout"] = self.call_monitor_timeout
        return _Call(waiter, envelope.encode(msg), waiter.register(msg_id), timeout, deadline,
                     method)

    def call(self, ctxt: Any, method: str, *args: Any, **kwargs: Any) -> Any:
        """Invoke ``method(**kwargs)`` on one server and return its result.

        Raises the remote exception (rebuilt when allowed, else RemoteError), or MessagingTimeout
        when no reply comes within ``timeout`` (or no heartbeat within call_monitor_timeout).
        The timeout bounds the whole call, sending included, whatever the broker does.
        """
        if args:
            raise positional_arguments_error("call", method, args)
        call = self._prepare_call(ctxt, method, kwargs)
        try:
            self._publish_call(call)
        except BaseException:
            call.waiter.forget(call.pending.msg_id)
            raise
        result = call.waiter.wait(call.pending, call.deadline, self.call_monitor_timeout,
                                  lambda: self._describe(method, call.timeout))
        return self.serializer.deserialize_entity(ctxt, result)

    def _send_call(self, msg: dict, method: str, timeout: float | None,
                   deadline: float | None) -> _Call:
        """Register and send a call (off the event loop: both may wait on the broker)."""
        call = self._register_call(msg, method, timeout, deadline)
        try:
            self._publish_call(call)
        except BaseException:
            call.waiter.forget(call.pending.msg_id)
            raise
        return call

    async def call_async(self, ctxt: Any, method: str, *args: Any, **kwargs: Any) -> Any:
        """:meth:`call` for asyncio: same options and outcomes, without blocking the loop.

        The arguments and context are serialized in the caller's task (its ``contextvars``
        are visible to the serializer); the send runs on the transport's send threads and the
        wait is a future, so many calls in flight need no thread each. Cancelling the awaiting
        task frees the call's reply slot: a reply arriving later is dropped.
        """
        if args:
            raise positional_arguments_error("call_async", method, args)
        if not self.call_monitor_timeout:
            return await self._aio.call(self, ctxt, method, kwargs)
        # With a call monitor, the reply waiter's clock watches the heartbeats.
        start = time.monotonic()
        msg = self._call_message(ctxt, method, kwargs)
        timeout, deadline = self._call_deadline(start)
        sending = self._aio.run(self, contextvars.copy_context().run, self._send_call, msg,
                                method, timeout, deadline)
        try:
            # Bounded by the deadline even while every executor thread is busy sending.
            left = None if deadline is None else max(0.0, deadline - time.monotonic())
            call = await asyncio.wait_for(asyncio.shield(sending), left)
        except (asyncio.CancelledError, asyncio.TimeoutError) as exc:
            # The send may still finish in its thread: free the slot it registers then.
            sending.add_done_callback(_forget_sent_call)
            if isinstance(exc, asyncio.CancelledError):
                raise
            raise MessagingTimeout(f"Timed out sending a message"
                                   f"{self._describe(method, timeout)}: the send did not "
                                   f"finish in time") from None
        result = await call.waiter.wait_async(call.pending, call.deadline,
                                              self.call_monitor_timeout,
                                              lambda: self._describe(method, call.timeout))
        return self.serializer.deserialize_entity(ctxt, result)

    async def cast_async(self, ctxt: Any, method: str, *args: Any, **kwargs: Any) -> None:
        """:meth:`cast` for asyncio: serialized in the caller's task, sent off the loop."""
        if args:
            raise positional_arguments_error("cast_async", method, args)
        self.target.require("topic", why="to send a message")
        body = envelope.encode(self._message(ctxt, method, kwargs))
        await self._aio.run(self, self._publish, body, None)


def _forget_sent_call(sending: asyncio.Future) -> None:
    if sending.cancelled() or sending.exception() is not None:
        return
    call = sending.result()
    call.waiter.forget(call.pending.msg_id)


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
    check_target(target, "get_rpc_client")
    return client_cls(transport, target, **kwargs)
