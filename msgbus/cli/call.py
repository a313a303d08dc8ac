"""``msgbus call`` and ``msgbus cast``: invoke a method of the servers of a topic from the shell."""

from __future__ import annotations

import argparse
import sys
import time

import msgbus
from msgbus.cli.exits import Exit
from msgbus.cli.output import parse_pairs, show


def _client(args: argparse.Namespace, transport: msgbus.Transport,
            mandatory: bool = False) -> msgbus.RPCClient:
    fields = {name: getattr(args, name) for name in ("exchange", "namespace", "version",
                                                     "server") if getattr(args, name, None)}
    if getattr(args, "fanout", False):
        fields["fanout"] = True
    target = msgbus.Target(topic=args.topic, **fields)
    # a cast nobody can receive is an error here, not a silent drop (a call waits for a server
    # until its timeout anyway)
    options = msgbus.TransportOptions(at_least_once=True) if mandatory else None
    return msgbus.get_rpc_client(transport, target, timeout=args.timeout, retry=args.retry,
                                 transport_options=options)


def _where(args: argparse.Namespace) -> str:
    server = f" server {args.server!r}" if args.server else ""
    return f"topic {args.topic!r}{server}"


def run_call(args: argparse.Namespace) -> int:
    """Call ``METHOD(**arguments)`` and print its result (exit 3 when no server answers)."""
    kwargs = parse_pairs(args.arguments)
    context = parse_pairs(args.context, what="context entry")
    with msgbus.get_rpc_transport(url=args.url) as transport:
        start = time.monotonic()
        result = _client(args, transport).call(context, args.method, **kwargs)
        took = time.monotonic() - start
        show(args, {"result": result, "url": transport.url.masked, "method": args.method,
                    "topic": args.topic, "server": args.server, "seconds": round(took, 6)},
             _as_text(result))
    return Exit.OK


def run_cast(args: argparse.Namespace) -> int:
    """Cast ``METHOD(**arguments)`` (to every server of the topic with ``--fanout``)."""
    kwargs = parse_pairs(args.arguments)
    context = parse_pairs(args.context, what="context entry")
    with msgbus.get_rpc_transport(url=args.url) as transport:
        # a fanout reaches the servers listening now, maybe none: not an error
        try:
            _client(args, transport, mandatory=not args.fanout).cast(context, args.method,
                                                                      **kwargs)
        except msgbus.MessageUndeliverable as exc:
            print(f"msgbus: error: cast of {args.method!r} not delivered: no server listens on "
                  f"{_where(args)} ({exc})", file=sys.stderr)
            return Exit.TIMEOUT
        kind = "fanout cast" if args.fanout else "cast"
        show(args, {"sent": True, "url": transport.url.masked, "method": args.method,
                    "topic": args.topic, "server": args.server, "fanout": bool(args.fanout)},
             f"{kind} of {args.method!r} sent to {_where(args)} on {transport.url.masked}")
    return Exit.OK


def _as_text(result: object) -> str:
    from msgbus.cli.output import to_json
    return result if isinstance(result, str) else to_json(result)
