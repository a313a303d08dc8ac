"""The send pool's one background thread: what must happen while no send happens.

* Held casts (returned by the broker as unroutable, see :mod:`msgbus.driver.held_casts`) are
  sent again when due, pipelined and mandatory, until a queue takes them or they time out.
* Slots left idle with casts unconfirmed (or messages confirmed lately) are read soon after
  (:data:`SWEEP_DELAY`): their confirms settle the copies, a return hands a cast to the held
  ones, copies whose connection failed are published again, and a broker that closes the
  connection because it shuts down is noticed at once (see :mod:`msgbus_kombu.slot`).
* Slots idle for a heartbeat interval answer and send heartbeats, and notice a broker that
  closed them, so the next send does not trip over a dead connection.

The thread sleeps until the soonest of these is due; with nothing held, nothing unconfirmed and
heartbeats off it sleeps until woken. It borrows idle slots only, never waits for a confirm,
and bounds every connect by :data:`RESEND_TIMEOUT`.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import TYPE_CHECKING, Callable

if TYPE_CHECKING:
    from msgbus_kombu.publisher import PublisherPool
    from msgbus_kombu.slot import PublishSlot

LOG = logging.getLogger(__name__)

#: Seconds a slot with unconfirmed casts stays idle before the keeper reads its confirms.
SWEEP_DELAY = 0.2
#: Seconds the keeper may spend connecting to send held or unconfirmed casts again.
RESEND_TIMEOUT = 1.0


class SlotKeeper:
    """The background thread of a :class:`~msgbus_kombu.publisher.PublisherPool`."""

    def __init__(self, pool: PublisherPool, heartbeat_interval: float | None,
                 stop: threading.Event) -> None:
        self._pool = pool
        self._interval = heartbeat_interval
        self._stop = stop
        self._wake = threading.Event()
        self._sweep = False
        self._stopped = False
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """Start the thread (once; the pool calls this when it opens its first slot)."""
        if self._thread is not None:
            return
        with self._lock:
            if self._thread is not None or self._stopped:
                return
            thread = threading.Thread(target=self._run, name="msgbus-kombu-send-keeper",
                                      daemon=True)
            thread.start()
            self._thread = thread

    def wake(self) -> None:
        """Something is due now (a cast was held)."""
        self._wake.set()

    def want_sweep(self) -> None:
        """An idle slot has casts unconfirmed: read it soon if nobody uses it."""
        if not self._sweep:
            self._sweep = True
            self._wake.set()

    def stop(self) -> None:
        with self._lock:
            self._stopped = True
            thread = self._thread
        self._wake.set()
        if thread is not None and thread is not threading.current_thread():
            thread.join(RESEND_TIMEOUT + 5.0)

    def _done(self) -> bool:
        return self._stopped or self._stop.is_set()

    def _run(self) -> None:
        interval = self._interval
        next_beat = time.monotonic() + interval if interval else None
        held = self._pool.held
        while not self._done():
            self._wake.clear()
            waits = []
            if next_beat is not None:
                waits.append(next_beat - time.monotonic())
            due = held.next_due()
            if due is not None:
                waits.append(due)
            if self._sweep:
                waits.append(SWEEP_DELAY)
            if not waits or min(waits) > 0:
                self._wake.wait(min(waits) if waits else None)
            if self._done():
                return
            try:
                if held.next_due() == 0.0:
                    self._pool.send_held(held.take_due(), time.monotonic() + RESEND_TIMEOUT)
                if self._sweep:
                    self._sweep_slots()
                if interval and next_beat is not None and time.monotonic() >= next_beat:
                    idle_for = interval
                    self._service(lambda slot, now: now - slot.last_used >= idle_for, True)
                    next_beat = time.monotonic() + interval
            except Exception:  # noqa: BLE001 - the keeper must live on
                LOG.exception("the send pool's keeper failed; going on")

    def _sweep_slots(self) -> None:
        self._sweep = False  # before looking, so a slot released meanwhile sets it again
        self._service(lambda slot, now: bool(slot.replay or slot._unconfirmed or slot.recent)
                      and now - slot.last_used >= SWEEP_DELAY, False)
        if any(slot.replay or slot._unconfirmed or slot.recent for slot in self._pool.slots()):
            self._sweep = True

    def _service(self, wanted: Callable[[PublishSlot, float], bool], heartbeat: bool) -> None:
        now = time.monotonic()
        for slot in self._pool.borrow_idle(lambda slot: wanted(slot, now)):
            try:
                slot.service(heartbeat, time.monotonic() + RESEND_TIMEOUT)
            finally:
                self._pool.give_back(slot)
