"""The load process: ``python -m benchmarks.chaos.load --contender C --url U --topic T --out F``.

``--threads`` call threads call ``echo`` back to back on one shared client (``timeout`` =
``--timeout``); one cast thread casts ``record(n=i)``, i = 0, 1, 2, ..., ``--cast-rate`` times a
second. Every call and cast becomes one JSON list in F with wall-clock (``time.time``) start and
end stamps, which the orchestrator relates to its fault stamps, and its ``time.monotonic``
duration. Prints ``READY`` once a first call succeeded and the load runs; after stdin closes it
lets the running calls finish (bounded), writes the ones still running as open, prints ``DONE``.
"""

from __future__ import annotations

import argparse
import json
import queue
import threading
import time
from typing import Any

from benchmarks.chaos.child import (bounded, open_stack, run_main, say, setup_logging,
                                    stop_event)

#: Pause after a call that raised, so a fast-failing client does not spin (seconds).
FAIL_PAUSE = 0.05
#: How long the first call may take to succeed before the load gives up (seconds).
FIRST_CALL_TIMEOUT = 30.0
#: After stdin closes, running calls get their timeout plus this long to finish (seconds).
FINISH_GRACE = 10.0


class Journal:
    """JSON lines written by one writer thread, so callers never wait on the disk."""

    def __init__(self, path: str) -> None:
        self._queue: queue.SimpleQueue[list[Any] | None] = queue.SimpleQueue()
        self._file = open(path, "w", encoding="utf-8")
        self._thread = threading.Thread(target=self._write, name="journal", daemon=True)
        self._thread.start()

    def put(self, row: list[Any]) -> None:
        self._queue.put(row)

    def _write(self) -> None:
        while True:
            row = self._queue.get()
            while row is not None:
                self._file.write(json.dumps(row) + "\n")
                try:
                    row = self._queue.get_nowait()
                except queue.Empty:
                    break
            self._file.flush()
            if row is None:
                return

    def close(self, timeout: float = 30.0) -> None:
        """Write what is queued, then close the file."""
        self._queue.put(None)
        self._thread.join(timeout)
        self._file.close()


class Worker(threading.Thread):
    """A load thread that journals each operation; one still running can be abandoned at the end
    (journalled as open), after which its late completion is no longer written."""

    kind = "op"

    def __init__(self, name: str, journal: Journal, stop: threading.Event) -> None:
        super().__init__(name=name, daemon=True)
        self.journal = journal
        self.stop = stop
        self._lock = threading.Lock()
        self._current: tuple[Any, float, float] | None = None  # (key, wall start, mono start)
        self._abandoned = False

    def begin(self, key: Any) -> tuple[float, float]:
        stamps = (time.time(), time.monotonic())
        with self._lock:
            self._current = (key, *stamps)
        return stamps

    def finish(self, key: Any, stamps: tuple[float, float], outcome: str) -> None:
        duration = time.monotonic() - stamps[1]
        end = time.time()
        with self._lock:
            self._current = None
            if self._abandoned:
                return
        self.journal.put([self.kind, key, stamps[0], end, duration, outcome])

    def abandon(self) -> None:
        """Journal the operation still running (if any) as open and forget its outcome."""
        with self._lock:
            self._abandoned = True
            current = self._current
        if current is not None:
            key, wall, mono = current
            self.journal.put([self.kind + "-open", key, wall, time.time(),
                              time.monotonic() - mono, "open"])


class Caller(Worker):
    """Calls ``echo`` with a payload unique to the call, and checks the reply is that payload."""

    kind = "call"

    def __init__(self, index: int, client: Any, journal: Journal, stop: threading.Event) -> None:
        super().__init__(f"caller-{index}", journal, stop)
        self.index = index
        self.client = client

    def run(self) -> None:
        seq = 0
        while not self.stop.is_set():
            payload = f"{self.index}-{seq}"
            seq += 1
            stamps = self.begin(self.index)
            try:
                reply = self.client.call({}, "echo", payload=payload)
                outcome = "ok" if reply == payload else "wrong"
            except Exception as exc:  # noqa: BLE001 - every failure is data
                outcome = type(exc).__name__
            self.finish(self.index, stamps, outcome)
            if outcome not in ("ok", "wrong"):
                self.stop.wait(FAIL_PAUSE)


class Caster(Worker):
    """Casts ``record(n=i)`` at a steady rate; a late cast delays the next, never a burst."""

    kind = "cast"

    def __init__(self, client: Any, rate: float, journal: Journal,
                 stop: threading.Event) -> None:
        super().__init__("caster", journal, stop)
        self.client = client
        self.interval = 1.0 / rate if rate > 0 else 0.0

    def run(self) -> None:
        if not self.interval:
            return
        n = 0
        next_at = time.monotonic()
        while not self.stop.wait(max(0.0, next_at - time.monotonic())):
            stamps = self.begin(n)
            try:
                self.client.cast({}, "record", n=n)
                outcome = "ok"
            except Exception as exc:  # noqa: BLE001 - a cast that raised is "not sent"
                outcome = type(exc).__name__
            self.finish(n, stamps, outcome)
            n += 1
            next_at = max(next_at + self.interval, time.monotonic())


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.chaos.load")
    parser.add_argument("--contender", required=True)
    parser.add_argument("--url", required=True)
    parser.add_argument("--topic", required=True)
    parser.add_argument("--out", required=True)
    parser.add_argument("--threads", type=int, default=32)
    parser.add_argument("--timeout", type=float, default=10.0)
    parser.add_argument("--cast-rate", type=float, default=100.0)
    return parser.parse_args(argv)


def first_call(client: Any, stop: threading.Event) -> None:
    """Call ``echo`` until one call succeeds (the server is consuming), bounded."""
    deadline = time.monotonic() + FIRST_CALL_TIMEOUT
    while True:
        try:
            client.call({}, "echo", payload="first")
            return
        except Exception as exc:  # noqa: BLE001 - retried until the deadline
            if time.monotonic() > deadline or stop.is_set():
                raise RuntimeError(f"no call succeeded within {FIRST_CALL_TIMEOUT:g}s; the last "
                                   f"one raised {type(exc).__name__}: {exc}") from exc
            time.sleep(0.5)


def main(argv: list[str]) -> int:
    """Run the load until stdin closes, then complete the journal and exit."""
    args = parse_args(argv)
    setup_logging(f"load[{args.contender}]")
    stop = stop_event()
    lib, transport = open_stack(args.contender, args.url)
    client = lib.get_rpc_client(transport, lib.Target(topic=args.topic), timeout=args.timeout)
    first_call(client, stop)
    journal = Journal(args.out)
    workers: list[Worker] = [Caller(i, client, journal, stop) for i in range(args.threads)]
    workers.append(Caster(client, args.cast_rate, journal, stop))
    journal.put(["start", None, time.time(), None, None, None])
    for worker in workers:
        worker.start()
    say("READY")
    stop.wait()
    journal.put(["stop", None, time.time(), None, None, None])
    deadline = time.monotonic() + args.timeout + FINISH_GRACE
    for worker in workers:
        worker.join(max(0.0, deadline - time.monotonic()))
    for worker in workers:
        worker.abandon()
    journal.close()
    say("DONE")
    bounded(transport.cleanup, 10.0, "transport cleanup")
    return 0


if __name__ == "__main__":
    run_main(main)
