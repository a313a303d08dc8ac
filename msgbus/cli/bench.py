"""``msgbus bench``: a short call and cast throughput run against a URL.

Its own small loop (one server, one client, one thread each way), not the ``benchmarks``
package: that one compares msgbus with oslo.messaging and needs a source checkout
(``python -m benchmarks``). This gives an operator a quick number for one broker URL.
"""

from __future__ import annotations

import argparse
import threading
import time
import uuid
from typing import Any

import msgbus
from msgbus.cli.exits import Exit
from msgbus.cli.output import show

#: Upper bound on waiting for the casts of the run to arrive (seconds).
CAST_DRAIN = 30.0


class _Sink:
    """The benchmark's endpoint: echoes calls, counts casts."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self.casts = 0
        self.last = 0.0

    def echo(self, ctxt: Any, value: Any) -> Any:
        return value

    def note(self, ctxt: Any, value: Any) -> None:
        with self._cond:
            self.casts += 1
            self.last = time.monotonic()
            self._cond.notify_all()

    def wait_casts(self, n: int, timeout: float) -> bool:
        with self._cond:
            return self._cond.wait_for(lambda: self.casts >= n, timeout)


def run(args: argparse.Namespace) -> int:
    """Calls for ``--duration`` seconds, then casts for as long; prints both rates.

    Calls and casts go to the run's own server (a server name of its own on ``--topic``): a
    server of an application on that topic never gets them, and two runs at once do not share
    a queue."""
    topic = args.topic
    payload = "x" * args.size
    sink = _Sink()
    target = msgbus.Target(topic=topic, server=f"bench-{uuid.uuid4().hex[:12]}")
    with msgbus.get_rpc_transport(url=args.url) as transport:
        server = msgbus.get_rpc_server(transport, target, [sink])
        server.start()
        try:
            client = msgbus.get_rpc_client(transport, target, timeout=args.timeout)
            client.call({}, "echo", value="warm-up")
            calls, call_time = _calls(client, payload, args.duration)
            casts, cast_time, arrived = _casts(client, sink, payload, args.duration)
        finally:
            server.stop()
            server.wait()
        url = transport.url.masked
    data = {"url": url, "code": "msgbus.cli.bench (built in)", "payload_bytes": args.size,
            "calls": calls, "calls_per_second": round(calls / call_time, 1),
            "call_latency_ms": round(call_time / calls * 1000, 3) if calls else None,
            "casts": casts, "casts_arrived": arrived,
            "casts_per_second": round(arrived / cast_time, 1) if cast_time else None}
    show(args, data,
         f"msgbus bench on {url} (built-in loop, one client thread, {args.size}-byte payload)\n"
         f"  calls: {calls} in {call_time:.2f}s = {data['calls_per_second']}/s "
         f"({data['call_latency_ms']} ms each)\n"
         f"  casts: {arrived} of {casts} arrived in {cast_time:.2f}s = "
         f"{data['casts_per_second']}/s")
    return Exit.OK if arrived == casts else Exit.ERROR


def _calls(client: msgbus.RPCClient, payload: str, duration: float) -> tuple[int, float]:
    start = time.monotonic()
    end = start + duration
    count = 0
    while time.monotonic() < end:
        client.call({}, "echo", value=payload)
        count += 1
    return count, time.monotonic() - start


def _casts(client: msgbus.RPCClient, sink: _Sink, payload: str,
           duration: float) -> tuple[int, float, int]:
    start = time.monotonic()
    end = start + duration
    sent = 0
    while time.monotonic() < end:
        client.cast({}, "note", value=payload)
        sent += 1
    sink.wait_casts(sent, CAST_DRAIN)
    last = sink.last or time.monotonic()
    return sent, max(last - start, 1e-9), sink.casts
