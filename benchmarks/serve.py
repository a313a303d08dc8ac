"""Server process entry: ``python -m benchmarks.serve CONTENDER TOPIC SERVER``.

Prints ``READY`` when it consumes; stops when stdin closes or after :data:`MAX_LIFETIME`.
"""

from __future__ import annotations

import logging
import sys
import threading

from benchmarks import contenders

#: A server never outlives this many seconds, whatever happens to its parent.
MAX_LIFETIME = 900.0


def main(argv: list[str]) -> int:
    if len(argv) != 3:
        print("usage: python -m benchmarks.serve CONTENDER TOPIC SERVER", file=sys.stderr)
        return 2
    name, topic, server = argv
    logging.basicConfig(level=logging.WARNING,
                        format=f"%(asctime)s {server} %(levelname)s %(name)s: %(message)s")
    stop = threading.Event()

    def watch_stdin() -> None:
        sys.stdin.buffer.read()
        stop.set()

    threading.Thread(target=watch_stdin, name="stdin-watch", daemon=True).start()
    lifetime = threading.Timer(MAX_LIFETIME, stop.set)
    lifetime.daemon = True
    lifetime.start()

    def ready() -> None:
        sys.stdout.write("READY\n")
        sys.stdout.flush()

    contenders.get(name).serve(topic, server, ready, stop)
    lifetime.cancel()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
