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
from typing import Any, NamedTuple

from amqp.basic_message import Message

from msgbus.driver.amqp import (CONTENT_ENCODING, CONTENT_TYPE, DELIVERY_MODE_PERSISTENT,
                                ExchangeSpec, QueueSpec, pop_confirmed)
from msgbus.exceptions import MessageDeliveryFailure, MessageUndeliverable, MessagingTimeout
from msgbus_kombu.connection import (CHANNEL_ERRORS, CONNECTION_ERRORS, LINK_ERRORS, ConnectFailed,
                                     Connector, Link, RetryBudget, Stopped)
from msgbus_kombu.options import Settings

LOG = logging.getLogger(__name__)

_NOT_FOUND = 404
#: Seconds that closing a transport (or the idle keeper) waits for casts' last confirms.
_FLUSH_TIMEOUT = 10.0
#: A pipelined cast whose confirm did not come after this many publishes is dropped with an
#: error log (the broker keeps refusing it, e.g. permissions), rather than retried forever.
_MAX_CAST_ATTEMPTS = 4


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


class InFlight(NamedTuple):
    """A cast published ahead of its confirm: what it takes to publish it again."""

    exchange: ExchangeSpec | None
    routing_key: str
    body: bytes
    properties: bytes
    #: how many times it was published already (see :data:`_MAX_CAST_ATTEMPTS`)
    attempts: int = 1


def _spent(copy: InFlight) -> bool:
    """Whether ``copy`` was published its last time; logs that it is dropped."""
    if copy.attempts < _MAX_CAST_ATTEMPTS:
        return False
    LOG.error("dropping a cast to exchange %r with routing key %r: published %d times, never "
              "confirmed by the broker", copy.exchange.name if copy.exchange else "",
              copy.routing_key, copy.attempts)
    return True


class PublishSlot:
    """One confirm-mode connection, used by one sending thread at a time.

    Every published message is tracked by its delivery tag until the broker confirms it. A
    pipelined cast keeps a copy (:class:`InFlight`): if its connection or channel fails, or the
    broker nacks it, the copy goes to :attr:`replay` and the next publish on this slot (after
    reconnecting) sends it again, ahead of its own message.
    """

    def __init__(self, connector: Connector, index: int, window: int = 0) -> None:
        self._connector = connector
        self.index = index
        self.window = window
        self.link: Link | None = None
        self.last_used = time.monotonic()
        self._tag = 0
        self._channel_id = 0
        #: delivery tag -> the copy of a pipelined cast, or None for a send that waits itself
        self._unconfirmed: dict[int, InFlight | None] = {}
        self._nacked: set[int] = set()
        self._returned: Returned | None = None
        #: pipelined casts to publish again (their connection failed or the broker nacked them)
        self.replay: list[InFlight] = []

    # confirm bookkeeping (called while this slot's thread reads)
    def _settle(self, delivery_tag: int, multiple: bool, nack: bool) -> None:
        for tag, copy in pop_confirmed(self._unconfirmed, delivery_tag, multiple):
            if not nack:
                continue
            if copy is None:
                self._nacked.add(tag)
            else:
                LOG.warning("the broker refused (nacked) a cast to %r; sending it again",
                            copy.routing_key)
                self.replay.append(copy)

    def _on_ack(self, delivery_tag: int, multiple: bool) -> None:
        self._settle(delivery_tag, multiple, False)

    def _on_nack(self, delivery_tag: int, multiple: bool) -> None:
        self._settle(delivery_tag, multiple, True)

    def _on_return(self, exc: Exception, exchange: str, routing_key: str, message: Any) -> None:
        code = int(getattr(exc, "code", None) or getattr(exc, "reply_code", None) or 312)
        text = getattr(exc, "message", None) or getattr(exc, "reply_text", None) or str(exc)
        self._returned = Returned(code, text, exchange, routing_key)

    def _hook(self, frame_type: int, channel: int, payload: bytes,
              _unpack: Any = struct.unpack_from) -> bool:
        """Fast path for Basic.Ack; everything else goes to py-amqp."""
        if frame_type == 1 and payload[:4] == _ACK_PREFIX and channel == self._channel_id:
            tag = _unpack(">Q", payload, 4)[0]
            self._settle(tag, len(payload) > 12 and bool(payload[12] & 1), False)
            return True
        return False

    def _orphan(self) -> None:
        """The channel is gone: its unconfirmed casts are to be published again."""
        copies = [copy for copy in self._unconfirmed.values() if copy is not None]
        self._unconfirmed.clear()
        self._nacked.clear()
        kept = [copy for copy in copies if not _spent(copy)]
        if kept:
            self.replay[:0] = kept

    def _setup_channel(self, link: Link) -> None:
        channel = link.channel
        channel.confirm_select()
        channel.events["basic_ack"].add(self._on_ack)
        channel.events["basic_nack"].add(self._on_nack)
        channel.events["basic_return"].add(self._on_return)
        self._tag = 0
        self._orphan()
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
        self._orphan()
        try:
            link.reopen_channel()
            self._setup_channel(link)
        except CONNECTION_ERRORS + CHANNEL_ERRORS:
            self.abort()

    def abort(self) -> None:
        self._orphan()
        link, self.link = self.link, None
        if link is not None:
            link.abort()

    def close(self) -> None:
        self._orphan()
        link, self.link = self.link, None
        if link is not None:
            link.close()

    @property
    def outstanding(self) -> int:
        """Pipelined casts not confirmed yet (published or waiting to be published again)."""
        return len(self.replay) + sum(1 for c in self._unconfirmed.values() if c is not None)

    def _write(self, link: Link, exchange: ExchangeSpec | None, routing_key: str, body: bytes,
               properties: bytes, mandatory: bool) -> int:
        exchange_name = ""
        if exchange is not None:
            link.declare_exchange(exchange)
            exchange_name = exchange.name
        self._tag += 1
        link.write(publish_frames(self._channel_id, exchange_name, routing_key, mandatory,
                                  properties, body, link.conn.frame_max))
        return self._tag

    def _publish_replay(self, link: Link) -> None:
        """Publish again the casts whose confirm never came (see :attr:`replay`)."""
        count = 0
        while self.replay:
            copy = self.replay[0]
            if _spent(copy):
                self.replay.pop(0)
                continue
            # counted before the write: a copy whose declaration fails each time runs out too
            self.replay[0] = copy = copy._replace(attempts=copy.attempts + 1)
            tag = self._write(link, copy.exchange, copy.routing_key, copy.body, copy.properties,
                              False)
            self.replay.pop(0)
            self._unconfirmed[tag] = copy
            count += 1
        if count:
            LOG.info("sent %d unconfirmed cast(s) again on %s", count, link.endpoint.describe())

    def _ready_link(self, deadline: float | None) -> Link:
        link = self.link
        if link is not None and link.pending():
            # Whatever came while the slot was idle; a close from the broker (or a dead socket)
            # shows here, before we publish: then this same try reconnects. A channel error
            # here answers an earlier pipelined cast (e.g. its exchange was deleted).
            try:
                link.drain_pending()
            except CHANNEL_ERRORS as exc:
                LOG.info("the broker closed the send channel (%s); opening another", exc)
                self.reopen_channel()
                link = self.link
            except CONNECTION_ERRORS as exc:
                LOG.info("send connection to %s was closed while idle (%s); reconnecting",
                         link.endpoint.describe(), exc)
                self.abort()
                link = None
        if link is None:
            link = self.connect(deadline)
        if self.replay:
            self._publish_replay(link)
        return link

    def publish(self, exchange: ExchangeSpec | None, routing_key: str, body: bytes,
                properties: bytes, mandatory: bool, declare: QueueSpec | None,
                deadline: float | None, pipelined: bool = False) -> None:
        """Publish, then wait for the broker's confirm (connecting first when needed).

        ``pipelined`` (a cast, see :func:`msgbus.driver.amqp.pipelines`): return once the
        message is written while fewer than ``window`` casts await their confirm; the slot keeps
        a copy until the confirm comes.
        Raises Returned (mandatory and unroutable), Nacked, ConnectFailed, or a connection or
        channel error of py-amqp.
        """
        link = self._ready_link(deadline)
        if declare is not None:
            link.declare_queue(declare)
        self._returned = None
        if pipelined:
            tag = self._write(link, exchange, routing_key, body, properties, False)
            self._unconfirmed[tag] = InFlight(exchange, routing_key, body, properties)
            self.last_used = time.monotonic()
            self._collect_confirms(link)
            return
        tag = self._write(link, exchange, routing_key, body, properties, mandatory)
        self._unconfirmed[tag] = None
        io_timeout = link.settings.io_timeout
        while tag in self._unconfirmed:
            wait = io_timeout
            if deadline is not None:
                wait = min(wait, deadline - time.monotonic())
            if not link.wait_readable(wait):
                if deadline is not None and time.monotonic() >= deadline:
                    raise TimeoutError("no publisher confirm before the call's timeout")
                # Silent for the whole I/O timeout: taken as dead, so the send (within its
                # deadline) goes out again on a new connection rather than waiting on this one.
                raise TimeoutError(f"no publisher confirm within {io_timeout:g}s")
            link.read_frame()
        self.last_used = time.monotonic()
        if tag in self._nacked:
            self._nacked.discard(tag)
            raise Nacked(f"the broker refused message {tag} (basic.nack)")
        if self._returned is not None:
            raise self._returned

    def _collect_confirms(self, link: Link) -> None:
        """Read the confirms already here; wait while the window is full. A failure here is
        not the cast's: its copy is kept and published again by the next send on this slot."""
        try:
            link.drain_pending()
            while len(self._unconfirmed) > self.window:
                link.read_frame()
        except CHANNEL_ERRORS as exc:
            LOG.info("the broker closed the send channel with %d cast(s) unconfirmed (%s); "
                     "they are sent again on the next send", self.outstanding, exc)
            self.reopen_channel()
        except CONNECTION_ERRORS as exc:
            LOG.warning("send connection to %s failed with %d cast(s) unconfirmed (%s); they "
                        "are sent again on the next send", link.endpoint.describe(),
                        self.outstanding, exc)
            self.abort()

    def flush(self, timeout: float) -> int:
        """Get every outstanding cast confirmed within ``timeout`` (publishing again what needs
        it, reconnecting once); returns how many are still unconfirmed."""
        deadline = time.monotonic() + timeout
        tries = 0
        while self.outstanding and tries < 3 and time.monotonic() < deadline:
            tries += 1
            try:
                link = self._ready_link(deadline)
                while self.outstanding and not self.replay:
                    if not link.wait_readable(deadline - time.monotonic()):
                        return self.outstanding
                    link.read_frame()
            except LINK_ERRORS as exc:
                LOG.info("flushing unconfirmed casts on %s failed (%s)",
                         self._connector.describe(), exc)
                self.abort()
        return self.outstanding

    def keepalive(self) -> None:
        """Handle frames that arrived while idle (confirms among them) and send a heartbeat
        when one is due; casts left to publish again are flushed now rather than kept."""
        link = self.link
        if link is not None:
            try:
                link.drain_pending()
                link.heartbeat_check()
            except CONNECTION_ERRORS + CHANNEL_ERRORS as exc:
                LOG.info("idle send connection to %s lost (%s); reconnecting on next send",
                         link.endpoint.describe(), exc)
                self.abort()
        if self.replay:
            left = self.flush(_FLUSH_TIMEOUT)
            if left:
                LOG.warning("%d cast(s) still unconfirmed by the broker at %s; trying again "
                            "later", left, self._connector.describe())


class PublisherPool:
    """Up to ``rpc_conn_pool_size`` slots; :meth:`send` retries by the ``retry`` rule."""

    def __init__(self, connector: Connector, settings: Settings,
                 stop: threading.Event) -> None:
        self._connector = connector
        self._settings = settings
        self._stop = stop
        self._size = settings.amqp.pool_size
        self._window = settings.amqp.cast_window
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
                    slot = PublishSlot(self._connector, len(self._slots) + 1, self._window)
                    self._slots.append(slot)
                    self._start_keeper()
                    return slot
                wait = 1.0 if deadline is None else min(1.0, deadline - time.monotonic())
                self._cond.wait(max(0.0, wait))

    def _release(self, slot: PublishSlot) -> None:
        with self._cond:
            if not self._closed:
                self._idle.append(slot)
                self._cond.notify()
                return
        self._flush_and_close(slot)

    @staticmethod
    def _flush_and_close(slot: PublishSlot) -> None:
        if slot.outstanding:
            left = slot.flush(_FLUSH_TIMEOUT)
            if left:
                LOG.error("%d cast(s) were not confirmed by the broker before the transport "
                          "closed: they may be lost", left)
        slot.close()

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
            slot = PublishSlot(self._connector, 1, self._window)
            self._slots.append(slot)
            self._warming += 1
        try:
            link = slot.connect()
            if exchange is not None:  # the exchange a first send most likely needs
                link.declare_exchange(exchange)
        except LINK_ERRORS as exc:
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
             declare: QueueSpec | None = None, pipelined: bool = False) -> None:
        """Publish ``body`` and return once the broker confirmed it (``pipelined``: once it is
        written, within the slot's window of unconfirmed casts; see :class:`PublishSlot`).

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
                                 deadline, pipelined)
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
                except (ConnectFailed, Nacked) + CONNECTION_ERRORS as exc:
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
            self._flush_and_close(slot)
        keeper = self._keeper
        if keeper is not None and keeper is not threading.current_thread():
            keeper.join(5.0)
