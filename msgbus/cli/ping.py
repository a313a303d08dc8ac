"""``msgbus ping``: ask a server of a topic whether it is alive (oslo's oslo_rpc_server_ping)."""

from __future__ import annotations

import argparse
import time

import msgbus
from msgbus.cli.exits import Exit, code_for
from msgbus.cli.output import show

#: The method oslo.messaging's servers answer with 'pong' when rpc_ping_enabled is set.
PING_METHOD = "oslo_rpc_server_ping"


def _no_such_method(exc: Exception) -> bool:
    if isinstance(exc, msgbus.NoSuchMethod):
        return True
    return isinstance(exc, msgbus.RemoteError) and exc.exc_type == "NoSuchMethod"


def run(args: argparse.Namespace) -> int:
    """Ping a server (any server of the topic without ``--server``); exit 3 if none answers."""
    target = msgbus.Target(topic=args.topic, server=args.server) if args.server \
        else msgbus.Target(topic=args.topic)
    where = f"topic {args.topic!r}" + (f" server {args.server!r}" if args.server else "")
    with msgbus.get_rpc_transport(url=args.url) as transport:
        url = transport.url.masked
        client = msgbus.get_rpc_client(transport, target, timeout=args.timeout, retry=args.retry)
        start = time.monotonic()
        try:
            answer = client.call({}, PING_METHOD)
        except msgbus.MessagingTimeout as exc:
            if code_for(exc) is Exit.UNREACHABLE:
                raise
            show(args, {"alive": False, "url": url, "topic": args.topic, "server": args.server,
                        "error": str(exc)},
                 f"no server answered on {where} within {args.timeout:g}s ({url}): {exc}")
            return Exit.TIMEOUT
        except Exception as exc:  # noqa: BLE001 - one kind answers, without ping support
            if not _no_such_method(exc):
                raise
            show(args, {"alive": True, "ping": False, "url": url, "topic": args.topic,
                        "server": args.server},
                 f"a server on {where} ({url}) answered, but it has no ping support: its "
                 f"{PING_METHOD} method is missing (enable rpc_ping_enabled on the server)")
            return Exit.ERROR
    took = time.monotonic() - start
    show(args, {"alive": True, "ping": True, "answer": answer, "url": url, "topic": args.topic,
                "server": args.server, "seconds": round(took, 6)},
         f"{answer} from {where} ({url}) in {took * 1000:.1f} ms")
    return Exit.OK
