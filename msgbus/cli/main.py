"""Argument parsing and sub-command dispatch for the ``msgbus`` console script."""

from __future__ import annotations

import argparse
import logging
import sys
from typing import Sequence

from msgbus.cli import demo


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="msgbus", description="RPC and notifications over "
                                     "message brokers.")
    parser.add_argument("-v", "--verbose", action="store_true", help="log at debug level")
    sub = parser.add_subparsers(dest="command", required=True)
    demo_parser = sub.add_parser("demo", help="start an RPC server and a client and show a call, "
                                 "a cast, a fanout and a remote error")
    demo_parser.add_argument("--url", default="fake://",
                             help="transport URL (default: fake://, no broker needed)")
    demo_parser.add_argument("--async", dest="use_async", action="store_true", help="asyncio")
    demo_parser.set_defaults(func=demo.run)
    drivers_parser = sub.add_parser("drivers", help="list the installed transport drivers")
    drivers_parser.set_defaults(func=_list_drivers)
    return parser


def _list_drivers(args: argparse.Namespace) -> int:
    from msgbus.driver.loader import DRIVER_GROUP, installed
    for name in installed(DRIVER_GROUP):
        print(name)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        return 130
    except Exception as exc:  # a clean one-line error for the user, not a traceback
        if args.verbose:
            raise
        print(f"msgbus: error: {exc}", file=sys.stderr)
        return 1
