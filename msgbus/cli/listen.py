"""``msgbus listen``: print the notifications sent to some topics as they arrive (tail -f)."""

from __future__ import annotations

import argparse
import queue
import sys
import time
from typing import Any

import msgbus
from msgbus.cli.exits import Exit
from msgbus.cli.output import to_json
from msgbus.notify import get_notification_listener, get_notification_transport
from msgbus.notify.message import PRIORITIES


class _Tail:
    """An endpoint for every priority: hands each notification to the printing thread."""

    def __init__(self, out: "queue.Queue[dict[str, Any]]") -> None:
        self._out = out
        for priority in PRIORITIES:
            setattr(self, priority, self._receiver(priority))

    def _receiver(self, priority: str) -> Any:
        def receive(ctxt: Any, publisher_id: str, event_type: str, payload: Any,
                    metadata: Any) -> None:
            self._out.put({"priority": priority, "publisher_id": publisher_id,
                           "event_type": event_type, "payload": payload,
                           "metadata": dict(metadata or {}), "ctxt": ctxt})
        return receive


def _line(args: argparse.Namespace, note: dict[str, Any]) -> str:
    if args.json:
        return to_json(note)
    stamp = note["metadata"].get("timestamp", "")
    return (f"{stamp} {note['priority'].upper()} {note['publisher_id']} {note['event_type']} "
            f"{to_json(note['payload'])}").lstrip()


def run(args: argparse.Namespace) -> int:
    """Print notifications until ``--count`` arrived, ``--duration`` passed, or Ctrl-C."""
    topics = args.topic or ["notifications"]
    targets = [msgbus.Target(topic=t, exchange=args.exchange) if args.exchange
               else msgbus.Target(topic=t) for t in topics]
    received: "queue.Queue[dict[str, Any]]" = queue.Queue()
    with get_notification_transport(url=args.url) as transport:
        listener = get_notification_listener(transport, targets, [_Tail(received)],
                                             pool=args.pool)
        listener.start()
        try:
            # on stderr even with --json: stdout holds only notifications
            print(f"listening on {', '.join(topics)} at {transport.url.masked} "
                  f"(Ctrl-C to stop)", file=sys.stderr, flush=True)
            _print_until_done(args, received)
        finally:
            listener.stop()
            listener.wait()
    return Exit.OK


def _print_until_done(args: argparse.Namespace, received: "queue.Queue[dict[str, Any]]") -> None:
    end = None if args.duration is None else time.monotonic() + args.duration
    printed = 0
    while args.count is None or printed < args.count:
        left = None if end is None else end - time.monotonic()
        if left is not None and left <= 0:
            return
        try:
            note = received.get(timeout=left if left is not None else 0.5)
        except queue.Empty:
            continue
        print(_line(args, note), flush=True)
        printed += 1
