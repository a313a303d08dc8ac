"""Sending: a pool of confirm-mode connections (:class:`~msgbus_kombu.slot.PublishSlot`), one
sending thread per connection at a time; concurrent senders use different slots (up to
``rpc_conn_pool_size``).

:meth:`PublisherPool.send` retries by the ``retry`` rule (None: forever, 0: never, N: at most N)
with :func:`msgbus.driver.amqp.reconnect_delays` between tries, and ends every wait it takes (a
free slot, connecting, declaring, a confirm, the pause before the next try) by the send's
``deadline``: then it raises MessagingTimeout naming the broker, the exchange and the key.

Casts to topic and server queues are published mandatory; one the broker returns (no queue yet)
is accepted all the same and kept in :attr:`PublisherPool.held`, from which the
:class:`~msgbus_kombu.keeper.SlotKeeper` thread sends it again until a queue takes it or
``cast_hold_timeout`` passes. The keeper also answers heartbeats on idle slots and reads the
confirms (and returns) that reach a slot nobody is using.
"""

from __future__ import annotations

import collections
import logging
import threading
import time
from typing import Callable

from msgbus.driver.amqp import ExchangeSpec, QueueSpec
from msgbus.driver.held_casts import Held, HeldCasts
from msgbus.exceptions import MessageDeliveryFailure, MessageUndeliverable, MessagingTimeout
from msgbus_kombu.connection import (LINK_ERRORS, ConnectFailed, Connector, RetryBudget,
                                     Stopped)
from msgbus_kombu.link import CHANNEL_ERRORS, CONNECTION_ERRORS, Link, Properties
from msgbus_kombu.keeper import SlotKeeper
from msgbus_kombu.options import Settings
from msgbus_kombu.copies import InFlight
from msgbus_kombu.slot import Nacked, PublishSlot, Returned

LOG = logging.getLogger(__name__)

_NOT_FOUND = 404
#: Seconds that closing a transport waits for casts' last confirms (and held casts' last try).
_FLUSH_TIMEOUT = 10.0
#: Seconds that closing a transport lets sends still running finish before cutting their link.
_BUSY_GRACE = 1.0
#: Seconds a send waits for a slot the keeper borrowed before it opens another connection.
_KEEPER_GRACE = 0.1


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
        self._properties: dict[str | None, Properties] = {}
        self._warming = 0
        self._keeping = 0
        #: Returned casts waiting to be sent again (see the module docstring).
        self.held = HeldCasts(settings.amqp.cast_hold_timeout, settings.amqp.cast_hold_max_bytes)
        #: Set once closing gave held casts their last try: later returns are only logged.
        self._held_closed = False
        self.keeper = SlotKeeper(self, settings.heartbeat_interval, stop)

    # the pool
    def _new_slot(self) -> PublishSlot:
        slot = PublishSlot(self._connector, len(self._slots) + 1, self._window,
                           self._on_returned, remember=False)
        self._slots.append(slot)
        return slot

    def _acquire(self, deadline: float | None = None) -> PublishSlot | None:
        """A free slot (a new one while the pool is not full); None when ``deadline`` passed
        first."""
        try:
            return self._idle.pop()
        except IndexError:
            pass
        grace_over = False
        with self._cond:
            while True:
                if self._closed:
                    raise MessageDeliveryFailure("the transport is closed: nothing can be sent")
                try:
                    return self._idle.pop()
                except IndexError:
                    pass
                left = 1.0 if deadline is None else deadline - time.monotonic()
                if left <= 0:
                    return None
                if self._warming or (self._keeping and not grace_over):
                    # a slot comes back soon (the first connection, or one the keeper reads)
                    grace_over = not self._warming
                    self._cond.wait(min(left, 0.5 if self._warming else _KEEPER_GRACE))
                    continue
                if len(self._slots) < self._size:
                    slot = self._new_slot()
                    self.keeper.start()
                    return slot
                self._cond.wait(min(left, 1.0))

    def _release(self, slot: PublishSlot) -> None:
        with self._cond:
            if not self._closed:
                self._idle.append(slot)
                self._cond.notify()
                if slot.replay or slot._unconfirmed or slot.recent:
                    self.keeper.want_sweep()
                return
        self._flush_and_close(slot)

    def borrow_idle(self, wanted: Callable[[PublishSlot], bool]) -> list[PublishSlot]:
        """For the keeper: take the idle slots ``wanted`` picks (give each back with
        :meth:`give_back`)."""
        with self._cond:
            if self._closed:
                return []
            taken = [slot for slot in self._idle if wanted(slot)]
            for slot in taken:
                self._idle.remove(slot)
            self._keeping += len(taken)
        return taken

    def give_back(self, slot: PublishSlot) -> None:
        with self._cond:
            self._keeping -= 1
            if not self._closed:
                self._idle.appendleft(slot)  # least recently used end
                self._cond.notify()
                return
        self._flush_and_close(slot)

    def slots(self) -> list[PublishSlot]:
        return list(self._slots)

    def _flush_and_close(self, slot: PublishSlot) -> None:
        if slot.outstanding:
            left = slot.flush(_FLUSH_TIMEOUT)
            if left:
                LOG.error("%d cast(s) were not confirmed by the broker before the transport "
                          "closed: they may be lost", left)
        slot.close()
        with self._cond:
            slot.finished = True
            self._cond.notify_all()

    def warm_up(self, exchange: ExchangeSpec | None = None) -> None:
        """Open the first send connection now (while a first call sets up its reply queue);
        a send that needs a connection meanwhile waits for this one. Errors are only logged:
        the send retries by its own rules."""
        with self._cond:
            if self._slots or self._closed:
                return
            slot = self._new_slot()
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
                self._cond.notify_all()
            self.keeper.start()
            self._release(slot)

    def start_warm_up(self, exchange: ExchangeSpec | None = None) -> None:
        """Run :meth:`warm_up` on a short-lived thread when the pool is still empty."""
        if self._slots or self._closed:
            return
        threading.Thread(target=self.warm_up, args=(exchange,), name="msgbus-kombu-warm-up",
                         daemon=True).start()

    # held casts
    def _on_returned(self, copy: InFlight) -> None:
        """A cast the broker returned as unroutable: keep it to send again (see module doc)."""
        if self._held_closed:
            LOG.error("dropping a cast to %s: the broker had no queue for it and the transport "
                      "is closed", copy.where())
            return
        self.held.hold(copy, copy.where(), len(copy.body), copy.held)
        self.keeper.wake()

    def send_held(self, items: list[Held], deadline: float) -> None:
        """For the keeper: publish held casts again, pipelined and mandatory (a return holds
        them again); what cannot be written by ``deadline`` is held again at once."""
        slot = None
        if not self._closed:
            try:
                slot = self._acquire(deadline)
            except MessageDeliveryFailure:  # closed meanwhile
                slot = None
        todo = collections.deque(items)
        try:
            while slot is not None and todo:
                item = todo[0]
                copy: InFlight = item.payload
                try:
                    slot.publish(copy.exchange, copy.routing_key, copy.body, copy.properties,
                                 False, None, deadline, pipelined=True, hold=True, held=item)
                except LINK_ERRORS + (Nacked, Returned) as exc:
                    LOG.info("could not send %d held cast(s) again yet: %s", len(todo), exc)
                    slot.abort(exc)
                    break
                todo.popleft()
        finally:
            if slot is not None:
                self._release(slot)
            for item in todo:
                copy = item.payload
                self.held.hold(copy, copy.where(), len(copy.body), item)

    def _last_try_of_held(self, slot: PublishSlot, until: float) -> int:
        """Closing: send each held cast once more, waiting for its confirm; returns how many no
        queue took (or could not be sent)."""
        unrouted = 0
        for item in self.held.take_all():
            copy: InFlight = item.payload
            if time.monotonic() >= until:
                unrouted += 1
                continue
            try:
                slot.publish(copy.exchange, copy.routing_key, copy.body, copy.properties, True,
                             None, until)
            except (Returned, Nacked) + LINK_ERRORS:
                unrouted += 1
        return unrouted

    # sending
    def send(self, exchange: ExchangeSpec | None, routing_key: str, body: bytes, *,
             expiration: str | None = None, mandatory: bool = False,
             retry: int | None = None, deadline: float | None = None,
             declare: QueueSpec | None = None, pipelined: bool = False,
             hold: bool = False) -> None:
        """Publish ``body`` and return once the broker confirmed it (``pipelined``: once it is
        written, within the slot's window of unconfirmed casts; see :class:`PublishSlot`).

        ``hold``: publish mandatory, and keep a returned message to send again rather than
        raise (see :func:`msgbus.driver.amqp.holds_when_unroutable`).
        Raises MessageUndeliverable (mandatory, no queue), MessageDeliveryFailure (the retries
        are spent or the broker refused), MessagingTimeout (``deadline`` passed first).
        """
        if not isinstance(body, (bytes, bytearray, memoryview)):
            raise TypeError(f"a message body must be bytes, not {type(body).__name__}")
        body = bytes(body)
        properties = self._properties.get(expiration)
        if properties is None:
            properties = Link.message_properties(self._settings.fast_path, expiration)
            if len(self._properties) < 256:
                self._properties[expiration] = properties
        slot = self._acquire(deadline)
        if slot is None:
            raise MessagingTimeout(
                f"could not send to exchange {self._exchange_name(exchange)!r} with routing key "
                f"{routing_key!r} before the timeout: all {self._size} send connections to the "
                f"AMQP broker at {self._connector.describe()} stayed busy")
        budget = RetryBudget(self._settings, retry, deadline, self._stop)
        try:
            refreshed = False
            while True:
                try:
                    slot.publish(exchange, routing_key, body, properties, mandatory, declare,
                                 deadline, pipelined, hold)
                    return
                except Returned as ret:
                    if hold:  # accepted: kept and sent again until a queue takes it
                        self._on_returned(InFlight(exchange, routing_key, body, properties,
                                                   1, True))
                        return
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
                    slot.abort(exc)
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
        if again:  # (the first failure of a send is a warning; its retries are not news)
            LOG.log(logging.WARNING if budget.failures == 1 else logging.DEBUG,
                    "sending to %s failed (%s); try %d, retrying", where, exc,
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
        """Flush and close every idle connection (busy ones close when their sender is done);
        held casts get one last try, and those no queue takes are counted in an error log."""
        with self._cond:
            self._closed = True
            idle = list(self._idle)
            self._idle.clear()
            self._cond.notify_all()
        self.keeper.stop()
        until = time.monotonic() + _FLUSH_TIMEOUT
        for slot in idle:
            if slot.outstanding:
                slot.flush(max(0.1, until - time.monotonic()))
        unrouted = 0
        if len(self.held):
            if not idle:
                idle.append(self._new_slot())
            unrouted = self._last_try_of_held(idle[0], until)
        self._held_closed = True
        unrouted += len(self.held.take_all())  # (returned while the last ones were sent)
        if unrouted:
            LOG.error("%d cast(s) were dropped as the transport closed: the broker had no "
                      "queue for them (no server listened on their topic) within "
                      "cast_hold_timeout or before closing", unrouted)
        for slot in idle:
            self._flush_and_close(slot)
        self._release_busy()

    def _release_busy(self) -> None:
        """Sends still running when the transport closes get :data:`_BUSY_GRACE` to finish;
        then the connections of those still waiting for the broker (e.g. a frozen one) are
        cut, so that they fail at once instead of waiting for their deadline."""
        with self._cond:
            busy = [slot for slot in self._slots if not slot.finished]
            if not busy:
                return
            self._cond.wait_for(lambda: all(slot.finished for slot in busy), _BUSY_GRACE)
            stuck = [slot for slot in busy if not slot.finished]
        for slot in stuck:
            slot.interrupt()
        if stuck:
            LOG.info("closing: cut %d send connection(s) whose sender still waited for the "
                     "broker", len(stuck))
