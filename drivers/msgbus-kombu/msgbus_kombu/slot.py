"""One send connection: a confirm-mode channel used by one sending thread at a time.

A :class:`PublishSlot` owns one :class:`~msgbus_kombu.connection.Link`. A sending thread takes a
slot (from :class:`~msgbus_kombu.publisher.PublisherPool`), publishes, and reads the broker's
answer (ack, nack, or the return of an unroutable mandatory message) on that same connection, so
there is no hand-off to another thread and no lock held while waiting for the broker. Exchange
declarations are remembered per connection, so a send declares only the first time (and again
after a reconnect).

Casts that pipeline (see :func:`msgbus.driver.amqp.pipelines`) return once written; the slot
keeps a copy (:class:`InFlight`) until the broker confirms it, and publishes it again if the
connection fails first. Casts to topic and server queues go out mandatory: a copy the broker
returns (no queue bound yet; the return comes before its confirm) is handed to ``on_returned``,
which keeps it for sending again (see :mod:`msgbus_kombu.keeper`).

The replies the broker confirmed lately are remembered too (:class:`~msgbus_kombu.copies.Recent`)
and published again when the connection ends as it does when the broker stops.
"""

from __future__ import annotations

import logging
import time
from typing import Any, Callable

from msgbus.driver.amqp import ExchangeSpec, QueueSpec, pop_confirmed
from msgbus.driver.held_casts import Held
from msgbus_kombu.connection import LINK_ERRORS, Connector
from msgbus_kombu.copies import RECENT_SECONDS, InFlight, Recent, spent
from msgbus_kombu.link import CHANNEL_ERRORS, CONNECTION_ERRORS, Link, Properties
from msgbus_kombu.frames import confirm_hook

LOG = logging.getLogger(__name__)

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


def _ignore_return(copy: InFlight) -> None:
    LOG.error("the broker returned a cast to %s as unroutable; nothing keeps it", copy.where())


class PublishSlot:
    """One confirm-mode connection, used by one sending thread at a time.

    Every published message is tracked by its delivery tag until the broker confirms it. A
    pipelined cast keeps a copy (:class:`InFlight`): if its connection or channel fails, the
    copy goes to :attr:`replay` and the next use of this slot (after reconnecting) sends it
    again, ahead of its own message. A copy the broker nacks is held (``on_returned``) and sent
    again after a growing pause until ``cast_hold_timeout`` when it was published mandatory,
    else replayed as above.
    """

    def __init__(self, connector: Connector, index: int, window: int = 0,
                 on_returned: Callable[[InFlight], None] = _ignore_return,
                 remember: bool = True) -> None:
        self._connector = connector
        self.index = index
        self.window = window
        self._on_returned = on_returned
        #: the messages confirmed lately (all of them with ``remember``, else replies only; the
        #: driver remembers replies only: see :mod:`msgbus_kombu.copies`)
        self.recent = Recent(remember)
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
        #: set by the pool once the slot is closed for good (the transport closed)
        self.finished = False

    # confirm bookkeeping (called while this slot's thread reads)
    def _settle(self, delivery_tag: int, multiple: bool, nack: bool) -> None:
        settled = pop_confirmed(self._unconfirmed, delivery_tag, multiple)
        if not nack:
            self.recent.confirmed(settled)
            return
        refused: list[InFlight] = []
        for tag, copy in settled:
            if copy is None:
                self._nacked.add(tag)
            elif copy.hold:
                # A queue that cannot take it now (a quorum queue electing a new leader after
                # a node died nacks everything for a few hundred ms): held, sent again after a
                # growing pause until cast_hold_timeout, as a returned cast is.
                refused.append(copy)
                self._on_returned(copy)
            else:
                refused.append(copy)
                self.replay.append(copy)
        if refused:
            LOG.warning("the broker refused (nacked) %d cast(s), the first to %s; sending them "
                        "again", len(refused), refused[0].where())

    def _on_ack(self, delivery_tag: int, multiple: bool) -> None:
        self._settle(delivery_tag, multiple, False)

    def _on_nack(self, delivery_tag: int, multiple: bool) -> None:
        self._settle(delivery_tag, multiple, True)

    def _on_return(self, exc: Exception, exchange: str, routing_key: str, message: Any) -> None:
        """basic.return: a pipelined cast's copy (found by its body) goes to ``on_returned``;
        otherwise it is the send this slot's thread is waiting for."""
        body = message.body
        for tag, copy in self._unconfirmed.items():
            if copy is not None and copy.routing_key == routing_key and copy.body == body:
                del self._unconfirmed[tag]  # its confirm, still to come, settles nothing
                self._on_returned(copy)
                return
        code = int(getattr(exc, "code", None) or getattr(exc, "reply_code", None) or 312)
        text = getattr(exc, "message", None) or getattr(exc, "reply_text", None) or str(exc)
        self._returned = Returned(code, text, exchange, routing_key)

    def _orphan(self) -> None:
        """The channel is gone: its unconfirmed casts are to be published again."""
        copies = [copy for copy in self._unconfirmed.values() if copy is not None]
        self._unconfirmed.clear()
        self._nacked.clear()
        kept = [copy for copy in copies if not spent(copy)]
        if kept:
            self.replay[:0] = kept

    def _setup_channel(self, link: Link, deadline: float | None) -> None:
        channel = link.channel
        with link.bounded(deadline):
            channel.confirm_select()
        channel.events["basic_ack"].add(self._on_ack)
        channel.events["basic_nack"].add(self._on_nack)
        channel.events["basic_return"].add(self._on_return)
        self._tag = 0
        self._orphan()
        self._channel_id = channel.channel_id
        if link.fast:
            link.hook = confirm_hook(self._channel_id, self._on_ack)

    def connect(self, deadline: float | None = None) -> Link:
        """Open this slot's connection (one try of every host, by ``deadline``); raises
        ConnectFailed or a connection error."""
        link = self._connector.open(f"send{self.index}", deadline)
        try:
            self._setup_channel(link, deadline)
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
            self._setup_channel(link, None)
        except CONNECTION_ERRORS + CHANNEL_ERRORS as exc:
            self.abort(exc)

    def interrupt(self) -> None:
        """From another thread (closing): cut the connection, so that a sender blocked reading
        from it fails at once; its own thread then aborts the slot."""
        link = self.link
        if link is not None:
            link.interrupt()

    def abort(self, cause: BaseException | None = None) -> None:
        """Drop the connection (broken, or its state unknown); ``cause``, the error that broke
        it, tells whether the broker is shutting down (see the module docstring)."""
        if self.recent:
            copies = self.recent.take_if_lost(cause)
            if copies:
                self.replay[:0] = copies
                LOG.warning("the connection to the AMQP broker at %s ended (%s): %d message(s) "
                            "it confirmed in the last %gs will be sent again, in case it stopped "
                            "(its non-durable queues die with it; receivers drop the copies they "
                            "already had)", self._connector.describe(), cause, len(copies),
                            RECENT_SECONDS)
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
               properties: Properties, mandatory: bool, deadline: float | None) -> int:
        exchange_name = ""
        if exchange is not None:
            link.declare_exchange(exchange, deadline)
            exchange_name = exchange.name
        self._tag += 1
        link.publish(exchange_name, routing_key, mandatory, properties, body)
        return self._tag

    def _publish_replay(self, link: Link, deadline: float | None) -> None:
        """Publish again the casts whose confirm never came (see :attr:`replay`)."""
        count = 0
        while self.replay:
            copy = self.replay[0]
            if spent(copy):
                self.replay.pop(0)
                continue
            # counted before the write: a copy whose declaration fails each time runs out too
            self.replay[0] = copy = copy._replace(attempts=copy.attempts + 1)
            tag = self._write(link, copy.exchange, copy.routing_key, copy.body, copy.properties,
                              copy.hold, deadline)
            self.replay.pop(0)
            self._unconfirmed[tag] = copy
            count += 1
        if count:
            LOG.info("sent %d unconfirmed cast(s) again on %s", count, link.endpoint.describe())

    def ready_link(self, deadline: float | None) -> Link:
        """The slot's link, connected (by ``deadline``), with the casts to replay sent."""
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
                self.abort(exc)
                link = None
        if link is None:
            link = self.connect(deadline)
        if self.replay:
            self._publish_replay(link, deadline)
        return link

    def publish(self, exchange: ExchangeSpec | None, routing_key: str, body: bytes,
                properties: Properties, mandatory: bool, declare: QueueSpec | None,
                deadline: float | None, pipelined: bool = False, hold: bool = False,
                held: Held | None = None) -> None:
        """Publish, then wait for the broker's confirm (connecting first when needed).

        ``pipelined`` (a cast, see :func:`msgbus.driver.amqp.pipelines`): return once the
        message is written while fewer than ``window`` casts await their confirm; the slot keeps
        a copy until the confirm comes. ``hold``: publish mandatory; a pipelined copy the broker
        returns goes to ``on_returned`` (``held``: its record, when it was held before).
        Raises Returned (mandatory and unroutable, when waiting), Nacked, ConnectFailed,
        TimeoutError (``deadline`` passed, or the I/O timeout), or a connection or channel error
        of py-amqp.
        """
        link = self.ready_link(deadline)
        if declare is not None:
            link.declare_queue(declare, deadline)
        self._returned = None
        if pipelined:
            tag = self._write(link, exchange, routing_key, body, properties, hold, deadline)
            self._unconfirmed[tag] = InFlight(exchange, routing_key, body, properties, 1, hold,
                                              held)
            self.last_used = time.monotonic()
            self._collect_confirms(link)
            return
        # The write and every read up to the confirm end by the deadline too: a broker that
        # stops reading (a memory alarm) or stalls in the middle of a frame cannot hold the
        # send past it (the link is then given up, as after any I/O error).
        with link.bounded(deadline):
            tag = self._write(link, exchange, routing_key, body, properties,
                              mandatory or hold, deadline)
            self._unconfirmed[tag] = None
            io_timeout = link.io_timeout
            while tag in self._unconfirmed:
                wait = io_timeout
                if deadline is not None:
                    wait = min(wait, deadline - time.monotonic())
                if not link.wait_readable(wait):
                    if deadline is not None and time.monotonic() >= deadline:
                        raise TimeoutError("no publisher confirm before the deadline")
                    # Silent for the whole I/O timeout: taken as dead, so the send (within its
                    # deadline) goes out again on a new connection rather than waiting here.
                    raise TimeoutError(f"no publisher confirm within {io_timeout:g}s")
                link.read_frame()
        self.last_used = now = time.monotonic()
        if tag in self._nacked:
            self._nacked.discard(tag)
            raise Nacked(f"the broker refused message {tag} (basic.nack)")
        if self._returned is not None:
            raise self._returned
        self.recent.confirmed_one(now, exchange, routing_key, body, properties)

    def _collect_confirms(self, link: Link) -> None:
        """Read the confirms already here; wait while the window is full. A failure here is
        not the cast's: its copy is kept and published again by the next use of this slot."""
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
            self.abort(exc)

    def flush(self, timeout: float) -> int:
        """Get every outstanding cast confirmed within ``timeout`` (publishing again what needs
        it, reconnecting once); returns how many are still unconfirmed."""
        deadline = time.monotonic() + timeout
        tries = 0
        while self.outstanding and tries < 3 and time.monotonic() < deadline:
            tries += 1
            try:
                link = self.ready_link(deadline)
                while self.outstanding and not self.replay:
                    if not link.wait_readable(deadline - time.monotonic()):
                        return self.outstanding
                    link.read_frame()
            except LINK_ERRORS as exc:
                LOG.info("flushing unconfirmed casts on %s failed (%s)",
                         self._connector.describe(), exc)
                self.abort(exc)
        return self.outstanding

    def service(self, heartbeat: bool, deadline: float) -> None:
        """While idle: handle the frames that arrived (confirms and returns among them), send a
        heartbeat when one is due (``heartbeat``), and publish again, by ``deadline``, casts
        whose connection failed. Never waits for confirms; failures are only logged."""
        self.recent.forget_old()
        link = self.link
        if link is not None:
            try:
                link.drain_pending()
                if heartbeat:
                    link.heartbeat_check()
            except CHANNEL_ERRORS as exc:
                LOG.info("the broker closed an idle send channel (%s); opening another", exc)
                self.reopen_channel()
            except CONNECTION_ERRORS as exc:
                LOG.info("idle send connection to %s lost (%s); reconnecting on next send",
                         link.endpoint.describe(), exc)
                self.abort(exc)
        if self.replay:
            try:
                self.ready_link(deadline)
            except LINK_ERRORS as exc:
                LOG.info("could not send %d unconfirmed cast(s) again yet (%s); trying again "
                         "later", len(self.replay), exc)
                self.abort(exc)
