"""The RPC server process: ``python -m benchmarks.chaos.server CONTENDER URL TOPIC SERVER OUT``.

It serves ``echo(payload)`` and ``record(n)`` with the ``threading`` executor and appends every
processed cast number to OUT, one line each, flushed at once, so the orchestrator can count lost
and doubled casts even if this process has to be killed. Prints ``READY`` once started; stops
when stdin closes.
"""

from __future__ import annotations

import sys
import threading
from typing import Any

from benchmarks.chaos.child import (bounded, open_stack, run_main, say, setup_logging,
                                    stop_event)
from benchmarks.contenders.rpc_api import BenchEndpoint


class ChaosEndpoint(BenchEndpoint):
    """The benchmark endpoint (``echo``) plus ``record(n)``, which logs each cast number."""

    def __init__(self, out_path: str) -> None:
        super().__init__()
        self._lock = threading.Lock()
        self._out = open(out_path, "a", encoding="ascii", buffering=1)

    def record(self, ctxt: Any, n: int) -> None:
        with self._lock:
            if not self._out.closed:  # a late cast after shutdown is simply not counted
                self._out.write(f"{int(n)}\n")

    def close(self) -> None:
        with self._lock:
            self._out.close()


def main(argv: list[str]) -> int:
    """Serve until stdin closes, then stop the server and the transport (both bounded)."""
    if len(argv) != 5:
        print(__doc__, file=sys.stderr)
        return 2
    name, url, topic, server_name, out_path = argv
    setup_logging(f"server[{name}]")
    stop = stop_event()
    lib, transport = open_stack(name, url)
    endpoint = ChaosEndpoint(out_path)
    server = lib.get_rpc_server(transport, lib.Target(topic=topic, server=server_name),
                                [endpoint], executor="threading")
    server.start()
    say("READY")
    stop.wait()

    def shut_down() -> None:
        server.stop()
        server.wait()

    bounded(shut_down, 15.0, "server stop")
    bounded(transport.cleanup, 10.0, "transport cleanup")
    endpoint.close()
    return 0


if __name__ == "__main__":
    run_main(main)
