"""RPC server: consume a target's requests, dispatch them to endpoints, send replies."""

from __future__ import annotations

import logging
from typing import Any, Sequence

from msgbus import envelope, failures
from msgbus.driver.base import IncomingMessage, Listener
from msgbus.exceptions import (ExpectedException, MessageDeliveryFailure,
                               MessageSerializationError, MessageUndeliverable, NoSuchMethod,
                               RPCDispatcherError, UnsupportedVersion)
from msgbus.executors.base import Executor
from msgbus.recent_ids import RecentIds
from msgbus.rpc.dispatcher import (RPCAccessPolicyBase, RPCDispatcher, expected_exceptions,
                                   expose)
from msgbus.rpc.heartbeat import HeartbeatScheduler
from msgbus.rpc.ping import with_ping_endpoint
from msgbus.serializer import Serializer
from msgbus.server import MessageHandlingServer
from msgbus.target import Target
from msgbus.transport import Transport

LOG = logging.getLogger(__name__)

__all__ = ["RPCServer", "get_rpc_server", "expected_exceptions", "expose"]  # as oslo's rpc.server

_MIN_HEARTBEAT_INTERVAL = 0.05
#: Most kinds of request (method, namespace, version) a server remembers as async at once.
_ASYNC_REQUESTS_MEMORY = 1024


class RPCServer(MessageHandlingServer):
    """Serves ``target`` (topic and server required) with ``dispatcher``'s endpoints.

    Requests are acknowledged on receipt (at most once, as oslo.messaging does); a malformed or
    duplicate message is logged and dropped; an endpoint's exception goes back to the caller.
    """

    def __init__(self, transport: Transport, target: Target, dispatcher: RPCDispatcher,
                 executor: str | type[Executor] = "threading") -> None:
        super().__init__(transport, executor)
        self.target = target
        self.dispatcher = dispatcher
        self._recent = RecentIds(self.conf.rpc_duplicate_window)
        self._heartbeats = HeartbeatScheduler()
        self._send_tb = self.conf.rpc_send_remote_traceback
        self._async_endpoints = self.runs_coroutines
        self._async_requests: set[tuple] = set()  # see _is_async
        if not self.runs_coroutines and dispatcher.has_async_methods():
            LOG.warning("RPC server %s has 'async def' endpoint methods but the %r executor "
                        "cannot run them: build it with executor='asyncio'", target,
                        self.executor_type)

    def start(self, override_pool_size: int | None = None) -> None:
        """Begin consuming. The target is checked here (topic and server required), not when
        the server is built: as with oslo.messaging, ``start()`` raises InvalidTarget."""
        self.target.require("topic", "server", why="for an RPC server's target")
        super().start(override_pool_size)

    def _create_listener(self) -> Listener:
        return self.transport.listen(self.target, self._on_incoming)

    def _on_incoming(self, incoming: IncomingMessage) -> None:
        incoming.ack()
        try:
            message = envelope.decode(incoming.body)
        except envelope.MalformedMessage as exc:
            LOG.error("RPC server %s dropped a malformed message: %s (first bytes: %r)",
                      self.target, exc, bytes(incoming.body[:120]))
            return
        unique_id = message.get("_unique_id")
        if isinstance(unique_id, str) and self._recent.seen(unique_id):
            LOG.warning("RPC server %s dropped duplicate message %s", self.target, unique_id)
            return
        if self._async_endpoints and self._is_async(message):
            self._submit_async(self._process_async, message)
        else:
            self._submit(self._process, message)

    def _is_async(self, message: dict) -> bool:
        """``dispatcher.is_async(message)``, remembering the requests (method, namespace,
        version) it was true for, so an async request's method is found once, not twice (about
        7 us each). Only true is remembered: sent to the loop by mistake, a request for a plain
        method still runs on a thread (``dispatch_async`` does that), never the reverse."""
        key = (message.get("method"), message.get("namespace"), message.get("version"))
        try:
            if key in self._async_requests:
                return True
        except TypeError:  # an unhashable field: a malformed request, dispatched to fail
            return self.dispatcher.is_async(message)
        if not self.dispatcher.is_async(message):
            return False
        if len(self._async_requests) >= _ASYNC_REQUESTS_MEMORY:
            self._async_requests.clear()
        self._async_requests.add(key)
        return True

    def _begin(self, message: dict) -> tuple[str | None, str | None, dict, Any]:
        """Take the reply fields out of ``message``; start heartbeats when the caller asked."""
        msg_id = message.pop("_msg_id", None)
        reply_q = message.pop("_reply_q", None)
        monitor = message.pop("_timeout", None)
        ctxt = envelope.unpack_context(message)
        ctxt["client_timeout"] = monitor
        if not (isinstance(msg_id, str) and isinstance(reply_q, str)):
            return None, None, ctxt, None
        beat_handle = None
        if isinstance(monitor, (int, float)) and monitor > 0:
            beat_handle = self._heartbeats.add(
                max(monitor / 2, _MIN_HEARTBEAT_INTERVAL),
                lambda: self._reply(msg_id, reply_q, None, None, ending=False))
        return msg_id, reply_q, ctxt, beat_handle

    def _failure(self, method: Any, exc: Exception) -> BaseException:
        """What the caller is told about ``exc`` raised by dispatching ``method`` (logged)."""
        if isinstance(exc, ExpectedException):
            failure = exc.exc_info[1]
            LOG.debug("expected exception in %s: %r", method, failure)
            return failure if failure is not None else exc
        if isinstance(exc, (NoSuchMethod, UnsupportedVersion, RPCDispatcherError)):
            LOG.warning("RPC server %s could not dispatch %r: %s", self.target, method, exc)
            return exc
        LOG.error("exception in RPC method %r", method, exc_info=exc)
        return exc

    def _process(self, message: dict) -> None:
        msg_id, reply_q, ctxt, beat_handle = self._begin(message)
        try:
            try:
                result, failure = self.dispatcher.dispatch(ctxt, message), None
            except Exception as exc:
                result, failure = None, self._failure(message.get("method"), exc)
        finally:
            if beat_handle is not None:
                self._heartbeats.cancel(beat_handle)
        if msg_id is not None and reply_q is not None:
            self._reply(msg_id, reply_q, result, failure, ending=True)

    async def _process_async(self, executor: Any, message: dict) -> None:
        """:meth:`_process` on the event loop (the ``asyncio`` executor): the endpoint is
        awaited here; the reply is sent from the executor's threads, as drivers block."""
        msg_id, reply_q, ctxt, beat_handle = self._begin(message)
        run_in_thread = executor.run_in_thread
        try:
            try:
                result, failure = await self.dispatcher.dispatch_async(ctxt, message,
                                                                       run_in_thread), None
            except Exception as exc:
                result, failure = None, self._failure(message.get("method"), exc)
        finally:
            if beat_handle is not None:
                self._heartbeats.cancel(beat_handle)
        if msg_id is not None and reply_q is not None:
            executor.call_driver(self._reply, msg_id, reply_q, result, failure, True)

    @staticmethod
    def _reply_body(msg_id: str, result: Any, failure: str | None, ending: bool) -> bytes:
        return envelope.encode({"result": result, "failure": failure, "ending": ending,
                                "_msg_id": msg_id, "_unique_id": envelope.new_id()})

    def _reply(self, msg_id: str, reply_q: str, result: Any, failure: BaseException | None,
               ending: bool) -> None:
        encoded = (failures.serialize(failure, with_traceback=self._send_tb)
                   if failure is not None else None)
        try:
            body = self._reply_body(msg_id, result, encoded, ending)
        except MessageSerializationError as exc:
            LOG.error("result of message %s cannot be encoded: %s", msg_id, exc)
            body = self._reply_body(msg_id, None, failures.serialize(exc, with_traceback=False),
                                    ending)
        try:
            self.transport.send_reply(reply_q, body)
        except MessageUndeliverable:
            # The caller's reply queue is missing (e.g. being declared again after a broker
            # restart): sent again in the background; a heartbeat is not worth it.
            if ending:
                self.transport.reply_retrier().add(reply_q, body, msg_id)
        except Exception as exc:
            LOG.error("could not send the reply to message %s to %s: %s", msg_id, reply_q, exc)
            if ending:
                # The broker refused the reply itself (e.g. larger than its max_message_size),
                # not the route to the caller: tell the caller why at once, with a small
                # failure, instead of letting its call time out.
                notice = MessageDeliveryFailure(f"the server could not send its reply "
                                                f"({len(body)} bytes) to message {msg_id}: {exc}")
                self._send_notice(msg_id, reply_q, notice)

    def _send_notice(self, msg_id: str, reply_q: str, notice: Exception) -> None:
        try:
            self.transport.send_reply(reply_q, self._reply_body(
                msg_id, None, failures.serialize(notice, with_traceback=False), True))
        except Exception as again:
            LOG.error("could not tell message %s's caller that its reply was refused: %s",
                      msg_id, again)

    def _waited(self) -> None:
        self._heartbeats.stop()


def get_rpc_server(transport: Transport, target: Target, endpoints: Sequence[Any],
                   executor: str | type[Executor] = "threading",
                   serializer: Serializer | None = None,
                   access_policy: type[RPCAccessPolicyBase] | RPCAccessPolicyBase | None = None,
                   server_cls: type[RPCServer] = RPCServer) -> RPCServer:
    """Build an RPC server for ``endpoints`` on ``target`` (call ``start()`` to serve)."""
    dispatcher = RPCDispatcher(with_ping_endpoint(transport.conf, endpoints), serializer,
                               access_policy)
    return server_cls(transport, target, dispatcher, executor)
