"""Sending: a pool of confirm-mode connections, one sending thread per connection at a time.

Each :class:`PublishSlot` owns one :class:`~msgbus_kombu.connection.Link` whose channel is in
publisher-confirm mode. A sending thread takes a slot, publishes, and reads the broker's answer
(ack, nack, or a return of an unroutable mandatory message) on that same connection, so there is
no hand-off to another thread and no lock held while waiting for the broker; concurrent senders
use different slots (up to ``rpc_conn_pool_size``). Exchange and queue declarations are
remembered per connection, so a send declares only the first time (and again after a reconnect).

A maintenance thread keeps idle slots alive: it answers heartbeats and notices a broker that
closed them, so the next send does not trip over a dead connection.
"""

from __future__ import annotations

import collections
import logging
import struct
import threading
import time
from typing import Any

from amqp.basic_message import Message

from msgbus.driver.amqp import (CONTENT_ENCODING, CONTENT_TYPE, DELIVERY_MODE_PERSISTENT,
                                ExchangeSpec, QueueSpec)
from msgbus.exceptions import MessageDeliveryFailure, MessageUndeliverable, MessagingTimeout
from msgbus_kombu.connection import (CHANNEL_ERRORS, CONNECTION_ERRORS, ConnectFailed,
                                     Connector, Link, RetryBudget, Stopped)
from msgbus_kombu.options import Settings

LOG = logging.getLogger(__name__)

_NOT_FOUND = 404


#: Basic.Ack (class 60, method 80): the broker confirms a published message.
_ACK_PREFIX = b"\x00\x3c\x00\x50"
_METHOD_PUBLISH = b"\x00\x3c\x00\x28"  # Basic.Publish (60, 40), then ticket 0
_FRAME_END = b"\xce"


def _shortstr(text: str) -> bytes:
    raw = text.encode()
    if len(raw) > 255:
        raise ValueError(f"AMQP short string too long ({len(raw)} bytes): {text[:60]!r}...")
    return bytes((len(raw),)) + raw


def properties_bytes(expiration: str | None) -> bytes:
    """The encoded content-header properties of oslo.messaging's messages."""
    props: dict[str, Any] = {"content_type": CONTENT_TYPE, "content_encoding": CONTENT_ENCODING,
                             "delivery_mode": DELIVERY_MODE_PERSISTENT}
    if expiration is not None:
        props["expiration"] = expiration
    return Message(b"", **props)._serialize_properties()


def publish_frames(channel: int, exchange: str, routing_key: str, mandatory: bool,
                   properties: bytes, body: bytes, frame_max: int) -> bytes:
    """Basic.Publish, its content header and body frame(s), ready to write in one go."""
    method = b"".join((_METHOD_PUBLISH, b"\x00\x00", _shortstr(exchange), _shortstr(routing_key),
                       b"\x01" if mandatory else b"\x00"))
    header = struct.pack(">HHQ", 60, 0, len(body)) + properties
    parts = [struct.pack(">BHI", 1, channel, len(method)), method, _FRAME_END,
             struct.pack(">BHI", 2, channel, len(header)), header, _FRAME_END]
    chunk = max(4096, frame_max - 8)
    for offset in range(0, len(body), chunk):
        piece = body[offset:offset + chunk]
        parts += (struct.pack(">BHI", 3, channel, len(piece)), piece, _FRAME_END)
    return b"".join(parts)


class Returned(Exception):
    """The broker returned a mandatory message: no queue was bound for it."""

    def __init__(self, code: int, text: str, exchange: str, routing_key: str) -> None:
        super().__init__(f"{code} {text}")
        self.code = code
        self.text = text
        self.exchange = exchange
        self.routing_key = routing_key


class Nacked(Exception):
    """The broker refused responsibility for a message (basic.nack)."""


class PublishSlot:
    """One confirm-mode connection, used by one sending thread at a time."""

    def __init__(self, connector: Connector, index: int) -> None:
        self._connector = connector
        self.index = index
        self.link: Link | None = None
        self.last_used = time.monotonic()
        self._tag = 0
        self._channel_id = 0
        self._acked = 0
        self._nacked = 0
        self._returned: Returned | None = None

    # confirm bookkeeping (called by py-amqp while this slot's thread reads)
    def _on_ack(self, delivery_tag: int, multiple: bool) -> None:
        if delivery_tag > self._acked:
            self._acked = delivery_tag

    def _on_nack(self, delivery_tag: int, multiple: bool) -> None:
        if delivery_tag > self._nacked:
            self._nacked = delivery_tag
        if delivery_tag > self._acked:
            self._acked = delivery_tag

    def _on_return(self, exc: Exception, exchange: str, routing_key: str, message: Any) -> None:
        code = getattr(exc, "code", None) or getattr(exc, "reply_code", 312)
        text = getattr(exc, "message", None) or getattr(exc, "reply_text", None) or str(exc)
        self._returned = Returned(code, text, exchange, routing_key)

    def _hook(self, frame_type: int, channel: int, payload: bytes,
              _unpack: Any = struct.unpack_from) -> bool:
        """Fast path for Basic.Ack; everything else goes to py-amqp."""
        if frame_type == 1 and payload[:4] == _ACK_PREFIX and channel == self._channel_id:
            tag = _unpack(">Q", payload, 4)[0]
            if tag > self._acked:
                self._acked = tag
            return True
        return False

    def _setup_channel(self, link: Link) -> None:
        channel = link.channel
        channel.confirm_select()
        channel.events["basic_ack"].add(self._on_ack)
        channel.events["basic_nack"].add(self._on_nack)
        channel.events["basic_return"].add(self._on_return)
        self._tag = self._acked = self._nacked = 0
        self._channel_id = channel.channel_id
        link.hook = self._hook

    def connect(self, deadline: float | None = None) -> Link:
        """Open this slot's connection (one try of every host); raises ConnectFailed."""
        link = self._connector.open(f"send{self.index}", deadline)
        try:
            self._setup_channel(link)
        except BaseException:
            link.abort()
            raise
        self.link = link
        return link

    def reopen_channel(self) -> None:
        """After a channel error: a fresh confirm channel on the same connection."""
        link = self.link
        if link is None:
            return
        try:
            link.reopen_channel()
            self._setup_channel(link)
        except CONNECTION_ERRORS + CHANNEL_ERRORS:
            self.abort()

    def abort(self) -> None:
        link, self.link = self.link, None
        if link is not None:
            link.abort()

    def close(self) -> None:
        link, self.link = self.link, None
        if link is not None:
            link.close()

    def publish(self, exchange: ExchangeSpec | None, routing_key: str, body: bytes,
                properties: bytes, mandatory: bool, declare: QueueSpec | None,
                deadline: float | None) -> None:
        """Publish and wait for the broker's confirm (connecting first when needed).

        Raises Returned (mandatory and unroutable), Nacked, ConnectFailed, or a connection or
        channel error of py-amqp.
        """
        link = self.link
        if link is not None and link.pending():
            # Whatever came while the slot was idle; a close from the broker (or a dead socket)
            # shows here, before we publish: then this same try reconnects.
            try:
                link.drain_pending()
            except CONNECTION_ERRORS as exc:
                LOG.info("send connection to %s was closed while idle (%s); reconnecting",
                         link.endpoint.describe(), exc)
                self.abort()
                link = None
        if link is None:
            link = self.connect(deadline)
        if declare is not None:
            link.declare_queue(declare)
        exchange_name = ""
        if exchange is not None:
            link.declare_exchange(exchange)
            exchange_name = exchange.name
        self._returned = None
        self._tag += 1
        tag = self._tag
        link.write(publish_frames(self._channel_id, exchange_name, routing_key, mandatory,
                                  properties, body, link.conn.frame_max))
        while self._acked < tag:
            if deadline is not None and not link.wait_readable(deadline - time.monotonic()):
                raise TimeoutError("no publisher confirm before the call's timeout")
            link.read_frame()
        self.last_used = time.monotonic()
        if self._nacked >= tag:
            raise Nacked(f"the broker refused message {tag} (basic.nack)")
        if self._returned is not None:
            raise self._returned

    def keepalive(self) -> None:
        """Handle frames that arrived while idle and send a heartbeat when one is due."""
        link = self.link
        if link is None:
            return
        try:
            link.drain_pending()
            link.heartbeat_check()
        except CONNECTION_ERRORS + CHANNEL_ERRORS as exc:
            LOG.info("idle send connection to %s lost (%s); reconnecting on next send",
                     link.endpoint.describe(), exc)
            self.abort()


class PublisherPool:
    """Up to ``rpc_conn_pool_size`` slots; :meth:`send` retries by the ``retry`` rule."""

    def __init__(self, connector: Connector, settings: Settings,
                 stop: threading.Event) -> None:
        self._connector = connector
        self._settings = settings
        self._stop = stop
        self._size = settings.amqp.pool_size
        self._idle: collections.deque[PublishSlot] = collections.deque()
        self._slots: list[PublishSlot] = []
        self._cond = threading.Condition()
        self._closed = False
        self._properties: dict[str | None, bytes] = {}
        self._warming = 0
        self._keeping = 0
        self._keeper: threading.Thread | None = None

    # the pool
    def _acquire(self, deadline: float | None = None) -> PublishSlot:
        try:
            return self._idle.pop()
        except IndexError:
            pass
        with self._cond:
            while True:
                if self._closed:
                    raise MessageDeliveryFailure("the transport is closed: nothing can be sent")
                try:
                    return self._idle.pop()
                except IndexError:
                    pass
                if deadline is not None and time.monotonic() >= deadline:
                    raise MessagingTimeout("no send connection became free before the call's "
                                           f"timeout (all {self._size} are busy)")
                if self._warming or self._keeping:  # a slot comes back soon: take it
                    self._cond.wait(0.5)
                    continue
                if len(self._slots) < self._size:
                    slot = PublishSlot(self._connector, len(self._slots) + 1)
                    self._slots.append(slot)
                    self._start_keeper()
                    return slot
                wait = 1.0 if deadline is None else min(1.0, deadline - time.monotonic())
                self._cond.wait(max(0.0, wait))

    def _release(self, slot: PublishSlot) -> None:
        with self._cond:
            if self._closed:
                slot.close()
                return
            self._idle.append(slot)
            self._cond.notify()

    def _start_keeper(self) -> None:
        interval = self._settings.heartbeat_interval
        if interval is None or self._keeper is not None:
            return
        self._keeper = threading.Thread(target=self._keep_alive, args=(interval,),
                                        name="msgbus-kombu-send-heartbeat", daemon=True)
        self._keeper.start()

    def _keep_alive(self, interval: float) -> None:
        """Every ``interval``: heartbeats on the slots idle that long (one at a time, so a
        sender never finds the pool empty because of this)."""
        while not self._stop.wait(interval):
            now = time.monotonic()
            for slot in list(self._slots):
                if now - slot.last_used < interval:
                    continue
                with self._cond:
                    if slot not in self._idle:
                        continue
                    self._idle.remove(slot)
                    self._keeping += 1
                try:
                    slot.keepalive()
                finally:
                    with self._cond:
                        self._keeping -= 1
                        self._idle.appendleft(slot)  # least recently used end
                        self._cond.notify()

    def warm_up(self, exchange: ExchangeSpec | None = None) -> None:
        """Open the first send connection now (while a first call sets up its reply queue);
        a send that needs a connection meanwhile waits for this one. Errors are only logged:
        the send retries by its own rules."""
        with self._cond:
            if self._slots or self._closed:
                return
            slot = PublishSlot(self._connector, 1)
            self._slots.append(slot)
            self._warming += 1
        try:
            link = slot.connect()
            if exchange is not None:  # the exchange a first send most likely needs
                link.declare_exchange(exchange)
        except (ConnectFailed, *CONNECTION_ERRORS, *CHANNEL_ERRORS) as exc:
            LOG.debug("send connection warm-up failed: %s", exc)
        finally:
            with self._cond:
                self._warming -= 1
                self._start_keeper()
                self._cond.notify_all()
            self._release(slot)

    def start_warm_up(self, exchange: ExchangeSpec | None = None) -> None:
        """Run :meth:`warm_up` on a short-lived thread when the pool is still empty."""
        if self._slots or self._closed:
            return
        threading.Thread(target=self.warm_up, args=(exchange,), name="msgbus-kombu-warm-up",
                         daemon=True).start()

    # sending
    def send(self, exchange: ExchangeSpec | None, routing_key: str, body: bytes, *,
             expiration: str | None = None, mandatory: bool = False,
             retry: int | None = None, deadline: float | None = None,
             declare: QueueSpec | None = None) -> None:
        """Publish ``body`` and return once the broker confirmed it.

        Raises MessageUndeliverable (mandatory, no queue), MessageDeliveryFailure (the retries
        are spent or the broker refused), MessagingTimeout (``deadline`` passed first).
        """
        if not isinstance(body, (bytes, bytearray, memoryview)):
            raise TypeError(f"a message body must be bytes, not {type(body).__name__}")
        body = bytes(body)
        properties = self._properties.get(expiration)
        if properties is None:
            properties = properties_bytes(expiration)
            if len(self._properties) < 256:
                self._properties[expiration] = properties
        budget = RetryBudget(self._settings, retry, deadline, self._stop)
        slot = self._acquire(deadline)
        try:
            refreshed = False
            while True:
                try:
                    slot.publish(exchange, routing_key, body, properties, mandatory, declare,
                                 deadline)
                    return
                except Returned as ret:
                    raise MessageUndeliverable(None, ret.exchange or "", ret.routing_key,
                                               body) from None
                except CHANNEL_ERRORS as exc:
                    slot.reopen_channel()
                    if getattr(exc, "reply_code", None) == _NOT_FOUND and not refreshed:
                        # An exchange we had declared went away (auto-delete): declare again.
                        refreshed = True
                        continue
                    raise MessageDeliveryFailure(
                        f"the AMQP broker at {self._where(slot)} refused the message to "
                        f"exchange {self._exchange_name(exchange)!r} with routing key "
                        f"{routing_key!r}: {exc}") from None
                except (ConnectFailed, Nacked, *CONNECTION_ERRORS) as exc:
                    where = self._where(slot)
                    slot.abort()
                    if self._closed:
                        raise MessageDeliveryFailure("the transport was closed while "
                                                     "sending") from None
                    self._retry_or_raise(budget, exc, where, exchange, routing_key)
                except (MessageDeliveryFailure, MessagingTimeout, MessageUndeliverable):
                    raise
                except Exception:  # not the broker's doing: the slot's state is unknown
                    slot.abort()
                    raise
        finally:
            self._release(slot)

    def _retry_or_raise(self, budget: RetryBudget, exc: BaseException, where: str,
                        exchange: ExchangeSpec | None, routing_key: str) -> None:
        try:
            again = budget.failed()
        except Stopped:
            raise MessageDeliveryFailure("the transport was closed while sending") from None
        if again:
            LOG.warning("sending to %s failed (%s); try %d, retrying", where, exc,
                        budget.failures + 1)
            return
        if budget.deadline is not None and time.monotonic() >= budget.deadline:
            raise MessagingTimeout(
                f"could not send to exchange {self._exchange_name(exchange)!r} with routing key "
                f"{routing_key!r} before the timeout: the AMQP broker at {where} failed: "
                f"{exc}") from None
        msg = (f"could not send to exchange {self._exchange_name(exchange)!r} with routing "
               f"key {routing_key!r}: the AMQP broker at {where} failed after "
               f"{budget.failures} attempt(s): {exc}")
        LOG.error("%s", msg)
        raise MessageDeliveryFailure(msg) from None

    def _where(self, slot: PublishSlot) -> str:
        if slot.link is not None:
            return f"{slot.link.endpoint.describe()} (vhost {slot.link.endpoint.vhost})"
        return f"{self._connector.describe()} (vhost {self._connector.endpoints[0].vhost})"

    @staticmethod
    def _exchange_name(exchange: ExchangeSpec | None) -> str:
        return exchange.name if exchange is not None else ""

    def close(self) -> None:
        """Close every idle connection; busy ones close when their sender is done."""
        with self._cond:
            self._closed = True
            idle = list(self._idle)
            self._idle.clear()
            self._cond.notify_all()
        for slot in idle:
            slot.close()
        keeper = self._keeper
        if keeper is not None and keeper is not threading.current_thread():
            keeper.join(5.0)
