"""A sending thread waiting for its publish's outcome, never past the send's deadline.

Everything a send waits for happens in the I/O thread: connecting (or reconnecting), opening the
channel in confirm mode, declaring the exchange, publishing, the broker's confirm. The sending
thread waits on the job alone, so one bound covers all of them: at the deadline the job is
abandoned (the I/O thread will not publish it any more, if it has not yet) and the caller gets
MessagingTimeout naming the broker, the exchange and the routing key, and why nothing came.
"""

from __future__ import annotations

import time

from msgbus.exceptions import MessageDeliveryFailure, MessagingTimeout
from msgbus_pika.io_connection import IoConnection, State
from msgbus_pika.publish_job import PublishJob

#: How often a waiting sender checks that the connection was not closed under it (seconds).
LIVENESS_CHECK = 5.0


def _why(conn: IoConnection) -> str:
    """What kept the send from completing, for the timeout's message."""
    if conn.state is State.OPEN:
        return "the broker did not confirm it"
    reason = f" (last error: {conn.last_error})" if conn.last_error else ""
    return f"no connection to the broker{reason}"


def deadline_passed(job: PublishJob, conn: IoConnection, deadline: float,
                    started: float | None = None) -> MessagingTimeout:
    """The error of a send whose deadline passed (``started``: when the send began)."""
    took = "" if started is None else f" after {time.monotonic() - started:.3g}s"
    return MessagingTimeout(f"could not send the message to {job.describe()} via "
                            f"{conn.address} before its deadline{took}: {_why(conn)}")


def await_job(job: PublishJob, conn: IoConnection, deadline: float | None,
              closing_grace: float) -> None:
    """Wait until the I/O thread settled ``job`` and raise its error, or raise MessagingTimeout
    at ``deadline`` (a :func:`time.monotonic` instant; None: no bound).

    ``closing_grace``: how long to keep waiting once the connection was closed under us (the
    I/O thread settles pending jobs when it closes, so this is only a safety net)."""
    started = time.monotonic()
    while True:
        wait = LIVENESS_CHECK
        if deadline is not None:
            wait = min(wait, deadline - time.monotonic())
        if job.wait(wait):
            break
        if deadline is not None and time.monotonic() >= deadline:
            job.abandoned = True
            if job.wait(0):  # settled in the meantime after all
                break
            raise deadline_passed(job, conn, deadline, started)
        if conn.closed and not conn.in_loop_thread():
            if not job.wait(closing_grace):
                job.abandoned = True
                raise MessageDeliveryFailure(f"transport to {conn.address} closed while sending "
                                             f"to {job.describe()}")
    if job.error is not None:
        raise job.error
