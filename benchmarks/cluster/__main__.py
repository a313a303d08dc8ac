"""``python -m benchmarks.cluster``: calls, casts and fanout on a throw-away 3-node RabbitMQ
cluster, quorum queues against classic queues, msgbus against oslo.messaging, in one run.

Prints a table and ratios; ``--write-results`` replaces only the ``## Cluster`` section of
benchmarks/RESULTS.md.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

from benchmarks import environment
from benchmarks.chaos.report import replace_section
from benchmarks.cluster.run import SERVERS, measure
from benchmarks.cluster.stacks import STACKS
from msgbus.testing.rabbit_cluster import rabbit_cluster

RESULTS = Path(__file__).resolve().parent.parent / "RESULTS.md"
SECTION = "## Cluster"


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.cluster",
                                     description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=2000, help="calls in all (2000)")
    parser.add_argument("--threads", type=int, default=8, help="calling threads (8)")
    parser.add_argument("--casts", type=int, default=3000, help="casts (3000)")
    parser.add_argument("--fanouts", type=int, default=500, help="fanout casts (500)")
    parser.add_argument("--stack", action="append", choices=[s.name for s in STACKS],
                        help="run only this stack (repeatable); default: all")
    parser.add_argument("--write-results", action="store_true",
                        help=f"write the table as the '{SECTION}' section of RESULTS.md")
    parser.add_argument("--json", metavar="PATH", help="also write the raw results as JSON")
    return parser.parse_args(argv)


def table(results: list[dict[str, Any]]) -> list[str]:
    lines = ["| stack | calls/s | call p50 ms | call p99 ms | casts/s | fanout casts/s |",
             "|---|---:|---:|---:|---:|---:|"]
    for r in results:
        if "error" in r:
            lines.append(f"| {r['stack']} | error: {r['error'][:120]} | | | | |")
            continue
        lines.append(f"| {r['stack']} | {r['calls_per_s']:.0f} | {r['call_p50_ms']:.1f} | "
                     f"{r['call_p99_ms']:.1f} | {r['casts_per_s']:.0f} | "
                     f"{r['fanout_per_s']:.0f} |")
    return lines


def ratios(results: list[dict[str, Any]]) -> list[str]:
    """quorum/classic for each library and driver; msgbus/oslo for each queue kind."""
    by = {r["stack"]: r for r in results if "error" not in r}
    keys = ("calls_per_s", "casts_per_s", "fanout_per_s")
    out = []

    def line(label: str, a: str, b: str) -> None:
        if a in by and b in by:
            shown = ", ".join(f"{k.split('_')[0]} {by[a][k] / by[b][k]:.2f}x" for k in keys)
            out.append(f"- {label}: {shown}")

    for lib in ("msgbus-rabbit", "msgbus-pika", "oslo-rabbit"):
        line(f"{lib} quorum / classic", f"{lib} quorum", f"{lib} classic")
    for kind in ("quorum", "classic"):
        for lib in ("msgbus-rabbit", "msgbus-pika"):
            line(f"{lib} / oslo-rabbit, {kind}", f"{lib} {kind}", f"oslo-rabbit {kind}")
    return out


def main(argv: list[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    stacks = [s for s in STACKS if not args.stack or s.name in args.stack]
    results: list[dict[str, Any]] = []
    started = time.monotonic()
    print("cluster: starting a 3-node cluster ...", file=sys.stderr, flush=True)
    with rabbit_cluster() as cluster:
        version = cluster.ctl("eval", "rabbit_misc:version().").strip().strip('"')
        print(f"cluster: RabbitMQ {version}, up in {time.monotonic() - started:.0f} s",
              file=sys.stderr, flush=True)
        for stack in stacks:
            print(f"cluster: {stack.name} ...", file=sys.stderr, flush=True)
            # a vhost per stack: quorum and classic runs declare the same exchanges with
            # another durability, which RabbitMQ refuses in one vhost
            vhost = f"bench-{stack.name.replace(' ', '-')}"
            try:
                cluster.add_vhost(vhost)
                result = measure(stack, cluster.url_for(vhost=vhost), args.calls, args.casts,
                                 args.fanouts, args.threads)
            except Exception as exc:  # noqa: BLE001 - shown in the table, next stack
                result = {"stack": stack.name, "error": f"{type(exc).__name__}: {exc}"}
            results.append(result)
    info = environment.describe(with_broker=False)
    command = " ".join(["python -m benchmarks.cluster",
                        *(sys.argv[1:] if argv is None else argv)])
    head = [
        f"Made by `{command}`.",
        "",
        f"- date: {info['date']}; msgbus tree at commit {info['revision']}; machine: "
        f"{info['cores']} cores; RabbitMQ {version}, a throw-away 3-node cluster on this "
        "machine (`msgbus.testing.rabbit_cluster`), three-host URL, every connection on the "
        "first node (so it leads the quorum queues; the other two replicate)",
        f"- per stack: {len(SERVERS)} server processes (`threading` executor) on one topic; "
        f"one client in this process: {args.calls} calls of `echo` (100-byte payload) from "
        f"{args.threads} threads, then {args.casts} topic casts timed until both servers "
        f"counted them, then {args.fanouts} fanout casts timed until both counted them all",
        "- each stack in its own vhost; quorum: `rabbit_quorum_queue = true` (topic and "
        "server queues quorum, reply and fanout queues classic); classic: the default; every "
        "other option default",
    ]
    body = [SECTION, "", *head, "", *table(results), "", *ratios(results)]
    print("\n".join(body))
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2) + "\n")
    if args.write_results:
        replace_section(RESULTS, "\n".join(body) + "\n", SECTION)
        print(f"cluster: wrote the '{SECTION}' section of {RESULTS}", file=sys.stderr)
    return 1 if any("error" in r for r in results) else 0


if __name__ == "__main__":
    sys.exit(main())
