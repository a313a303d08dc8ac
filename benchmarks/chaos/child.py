"""What the server and load processes share: the contender's library, the stop signal, bounds."""

from __future__ import annotations

import logging
import os
import sys
import threading
import traceback
from collections.abc import Callable
from types import ModuleType
from typing import Any

from benchmarks import contenders

#: A child never outlives this many seconds, whatever happens to the orchestrator.
MAX_LIFETIME = 300.0


def setup_logging(label: str) -> None:
    """Warnings and above to stderr (the orchestrator keeps it in a log file), stamped."""
    logging.basicConfig(level=logging.WARNING,
                        format=f"%(asctime)s {label} %(levelname)s %(name)s: %(message)s")


def open_stack(name: str, url: str) -> tuple[ModuleType, Any]:
    """The library module and a new RPC transport on ``url`` for the benchmark contender
    ``name`` (built by the benchmark's own contender classes, default options)."""
    contender = contenders.get(name)
    reason = contender.unavailable()
    if reason:
        raise RuntimeError(f"{name} cannot run here: {reason}")
    contender.url = url  # type: ignore[attr-defined]  # the private node, not 5672
    return contender.library(), contender.make_transport()  # type: ignore[attr-defined]


def stop_event() -> threading.Event:
    """An event set when stdin reaches end of file or after :data:`MAX_LIFETIME` seconds."""
    stop = threading.Event()

    def watch_stdin() -> None:
        try:
            sys.stdin.buffer.read()
        finally:
            stop.set()

    threading.Thread(target=watch_stdin, name="stdin-watch", daemon=True).start()
    timer = threading.Timer(MAX_LIFETIME, stop.set)
    timer.daemon = True
    timer.start()
    return stop


def say(word: str) -> None:
    """Tell the orchestrator ``word`` (one line on stdout)."""
    sys.stdout.write(word + "\n")
    sys.stdout.flush()


def bounded(func: Callable[[], Any], timeout: float, what: str) -> bool:
    """Run ``func`` in a daemon thread for at most ``timeout`` s; False (logged) if it is late
    or raised, so a hung library call cannot keep the process alive."""
    errors: list[BaseException] = []

    def run() -> None:
        try:
            func()
        except BaseException as exc:  # noqa: BLE001 - logged below
            errors.append(exc)

    thread = threading.Thread(target=run, name=f"bounded-{what}", daemon=True)
    thread.start()
    thread.join(timeout)
    if thread.is_alive():
        logging.getLogger(__name__).warning("%s did not finish within %gs", what, timeout)
        return False
    if errors:
        logging.getLogger(__name__).warning("%s failed: %r", what, errors[0])
        return False
    return True


def run_main(main: Callable[[list[str]], int]) -> None:
    """Run a child's ``main`` and leave with ``os._exit``: after a failure too, library and stdin
    threads must not hang or crash the interpreter's shutdown."""
    try:
        code = main(sys.argv[1:])
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 1
    except BaseException:  # noqa: BLE001 - printed for the orchestrator's log
        traceback.print_exc()
        code = 1
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)
