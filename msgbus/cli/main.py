"""Argument parsing and sub-command dispatch for the ``msgbus`` console script.

Each sub-command lives in its own module (``msgbus/cli/<name>.py``); this one only builds the
parser and maps what a command raised to an exit code (:mod:`msgbus.cli.exits`, doc/cli.md).
"""

from __future__ import annotations

import argparse
import importlib.metadata
import logging
import sys
from typing import Any, Callable, Sequence

from msgbus.cli import bench, call, check, demo, drivers, listen, notify, ping
from msgbus.cli.exits import Exit, code_for


def _version() -> str:
    try:
        return importlib.metadata.version("msgbus")
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


def _common() -> argparse.ArgumentParser:
    """-v and --json, accepted before the sub-command and after it (SUPPRESS: a sub-parser
    does not reset what the main parser already read)."""
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("-v", "--verbose", action="store_true", default=argparse.SUPPRESS,
                        help="log at debug level; show tracebacks")
    common.add_argument("--json", action="store_true", default=argparse.SUPPRESS,
                        help="print JSON (one document per line)")
    return common


def _rpc_options(p: argparse.ArgumentParser, *, method: bool = True) -> None:
    p.add_argument("url", metavar="URL", help="transport URL, e.g. rabbit://user:pass@host:5672/")
    p.add_argument("topic", metavar="TOPIC")
    if method:
        p.add_argument("method", metavar="METHOD")
        p.add_argument("arguments", metavar="key=value", nargs="*",
                       help="the method's arguments; a value is JSON when it parses "
                            "(n=3, ok=true, l=[1,2]), else a string")
        p.add_argument("--exchange", help="target exchange (default: control_exchange)")
        p.add_argument("--version", dest="version", help="target API version, e.g. 1.2")
        p.add_argument("--namespace", help="target namespace")
        p.add_argument("--context", action="append", default=[], metavar="key=value",
                       help="a request context entry (repeatable)")
    p.add_argument("--server", help="one server of the topic (default: any)")
    p.add_argument("--timeout", type=float, default=30.0,
                   help="seconds to wait for the reply (default 30)")
    p.add_argument("--retry", type=int, default=2,
                   help="connection retries per send (default 2; -1: forever)")


def build_parser() -> argparse.ArgumentParser:
    common = _common()
    parser = argparse.ArgumentParser(prog="msgbus", parents=[common],
                                     description="RPC and notifications over message brokers. "
                                     "Exit codes: 0 ok, 1 error, 2 usage, 3 timeout or no "
                                     "server, 4 broker unreachable, 130 interrupted.")
    parser.add_argument("--version", action="version", version=f"msgbus {_version()}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def add(name: str, func: Callable[[argparse.Namespace], int], help: str) -> Any:
        p = sub.add_parser(name, parents=[common], help=help, description=help)
        p.set_defaults(func=func)
        return p

    # the demo sub-parser (msgbus/cli/demo.py)
    demo_parser = sub.add_parser("demo", parents=[common], help="start an RPC server and a "
                                 "client and show a call, a cast, a fanout and a remote error")
    demo_parser.add_argument("--url", default="fake://",
                             help="transport URL (default: fake://, no broker needed)")
    demo_parser.add_argument("--async", dest="use_async", action="store_true",
                             help="run the asyncio variant: async servers and endpoints, "
                                  "awaited calls")
    demo_parser.set_defaults(func=demo.run)

    _rpc_options(add("call", call.run_call, "call METHOD on a server of TOPIC and print the "
                     "result"))
    cast = add("cast", call.run_cast, "cast METHOD to TOPIC (no reply)")
    _rpc_options(cast)
    cast.add_argument("--fanout", action="store_true", help="to every server of the topic")

    n = add("notify", notify.run, "send one notification")
    n.add_argument("url", metavar="URL")
    n.add_argument("event", metavar="EVENT", help="event type, e.g. compute.instance.create")
    n.add_argument("payload", metavar="key=value", nargs="*", help="payload entries (JSON "
                   "values when they parse)")
    n.add_argument("--publisher-id", default="msgbus-cli", help="default msgbus-cli")
    n.add_argument("--priority", default="info", help="audit, debug, info (default), warn, "
                   "error, critical or sample")
    n.add_argument("--topic", default="notifications", help="default notifications")
    n.add_argument("--context", action="append", default=[], metavar="key=value")
    n.add_argument("--retry", type=int, default=2, help="connection retries (default 2)")

    ls = add("listen", listen.run, "print notifications as they arrive")
    ls.add_argument("url", metavar="URL")
    ls.add_argument("--topic", action="append", help="topic (repeatable; default notifications)")
    ls.add_argument("--exchange", help="exchange (default: control_exchange)")
    ls.add_argument("--pool", help="listener pool (share the notifications with its members)")
    ls.add_argument("--count", type=int, help="exit after this many notifications")
    ls.add_argument("--duration", type=float, help="exit after this many seconds")

    pg = add("ping", ping.run, "ask a server whether it answers (oslo_rpc_server_ping)")
    _rpc_options(pg, method=False)
    pg.set_defaults(timeout=10.0)

    ck = add("check", check.run, "run the conformance suite against URL")
    ck.add_argument("url", metavar="URL")
    ck.add_argument("--faults", action="store_true", help="add the fault scenarios (needs a "
                    "fault injector for the URL's driver)")
    ck.add_argument("-k", dest="pytest_k", action="append", metavar="EXPR",
                    help="only the scenarios matching this pytest -k expression")
    ck.add_argument("-x", "--exitfirst", action="store_true", help="stop at the first failure")

    b = add("bench", bench.run, "a short call/cast throughput run against URL")
    b.add_argument("url", metavar="URL")
    b.add_argument("--duration", type=float, default=2.0, help="seconds per phase (default 2)")
    b.add_argument("--size", type=int, default=100, help="payload bytes (default 100)")
    b.add_argument("--topic", default="msgbus-bench", help="default msgbus-bench")
    b.add_argument("--timeout", type=float, default=30.0, help="call timeout (default 30)")

    add("drivers", drivers.run, "list the installed transport drivers")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``msgbus`` command; returns its exit code."""
    args = build_parser().parse_args(argv)
    args.verbose = getattr(args, "verbose", False)
    args.json = getattr(args, "json", False)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        return int(Exit.INTERRUPTED)
    except BrokenPipeError:  # the reader went away (| head): nothing more to say
        sys.stderr.close()
        return int(Exit.ERROR)
    except Exception as exc:  # a clean one-line error for the user, not a traceback
        if args.verbose:
            logging.getLogger("msgbus.cli").exception("command failed")
        print(f"msgbus: error: {exc}", file=sys.stderr)
        return int(code_for(exc))
