"""Replies whose reply queue does not exist yet, sent again in the background.

A caller's reply queue can be missing for a while: after a broker restart its non-durable queue
is gone until the caller's transport declares it again. Drivers try a reply once and raise
MessageUndeliverable; the RPC server hands the reply here, so its worker thread is free at once,
and one thread per transport sends it again (every 50 ms at first, backing off to 1 s) until the
queue exists or ``reply_missing_queue_timeout`` passes; then the reply is dropped with an error
log. One rule for every driver.
"""

from __future__ import annotations

import heapq
import itertools
import logging
import threading
import time
from typing import Callable

from msgbus.exceptions import MessageUndeliverable

LOG = logging.getLogger(__name__)

#: First and longest pause between two tries of one reply (seconds).
FIRST_PAUSE = 0.05
MAX_PAUSE = 1.0

SendReply = Callable[[str, bytes], None]


class ReplyRetrier:
    """Keeps undeliverable replies and sends them again until their queue exists."""

    def __init__(self, send_reply: SendReply, give_up_after: float) -> None:
        self._send = send_reply
        self.give_up_after = give_up_after
        self._cond = threading.Condition()
        #: (due, order, reply queue, body, give-up time, pause, message id)
        self._heap: list[tuple[float, int, str, bytes, float, float, str]] = []
        self._order = itertools.count()
        self._closed = False
        self._thread: threading.Thread | None = None

    def __len__(self) -> int:
        return len(self._heap)

    def add(self, reply_q: str, body: bytes, msg_id: str) -> None:
        """Send ``body`` to ``reply_q`` again later (its first try found no such queue)."""
        now = time.monotonic()
        with self._cond:
            if self._closed:
                LOG.error("dropping the reply to message %s: reply queue %s does not exist and "
                          "the transport is closing", msg_id, reply_q)
                return
            heapq.heappush(self._heap, (now + FIRST_PAUSE, next(self._order), reply_q, body,
                                        now + self.give_up_after, FIRST_PAUSE, msg_id))
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="msgbus-reply-retry",
                                                daemon=True)
                self._thread.start()
            self._cond.notify()
        LOG.info("reply queue %s of message %s does not exist (yet); sending the reply again "
                 "for up to %.0fs", reply_q, msg_id, self.give_up_after)

    def _next(self) -> tuple[float, int, str, bytes, float, float, str] | None:
        """The next reply due, waiting for it; None once closed."""
        with self._cond:
            while not self._closed:
                if self._heap:
                    wait = self._heap[0][0] - time.monotonic()
                    if wait <= 0:
                        return heapq.heappop(self._heap)
                    self._cond.wait(wait)
                else:
                    self._cond.wait()
            return None

    def _run(self) -> None:
        while True:
            item = self._next()
            if item is None:
                return
            _, order, reply_q, body, give_up, pause, msg_id = item
            try:
                self._send(reply_q, body)
                LOG.info("reply to message %s delivered to %s after its queue came back",
                         msg_id, reply_q)
                continue
            except MessageUndeliverable:
                now = time.monotonic()
                if now >= give_up:
                    LOG.error("dropping the reply to message %s: reply queue %s did not exist "
                              "for %.0fs (reply_missing_queue_timeout); its caller is gone or "
                              "timed out", msg_id, reply_q, self.give_up_after)
                    continue
                pause = min(MAX_PAUSE, pause * 2)
                with self._cond:
                    heapq.heappush(self._heap, (min(now + pause, give_up), order, reply_q, body,
                                                give_up, pause, msg_id))
            except Exception as exc:  # the broker refused it otherwise: retrying will not help
                LOG.error("dropping the reply to message %s to %s: %s: %s", msg_id, reply_q,
                          type(exc).__name__, exc)

    def close(self) -> None:
        """Stop retrying; replies still waiting are dropped with one error log."""
        with self._cond:
            self._closed = True
            left, self._heap = len(self._heap), []
            self._cond.notify_all()
            thread = self._thread
        if left:
            LOG.error("transport closed with %d reply(ies) still waiting for their reply queue: "
                      "dropped", left)
        if thread is not None and thread is not threading.current_thread():
            thread.join(5.0)
