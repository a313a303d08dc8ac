"""``python -m benchmarks.chaos``: RPC under broker faults, msgbus and oslo.messaging side by side.

One RPC server process and one load process (N call threads calling ``echo`` with a timeout, one
thread casting numbered ``record`` casts) per contender, one contender after the other, on one
private RabbitMQ node that suffers N x ``close_all_connections`` and then a restart. Default
options everywhere. Prints a table and, for each msgbus contender, whether its contract held.

With ``--cluster``: node kills on a 3-node cluster with quorum queues instead (see
:mod:`benchmarks.chaos.cluster`).
"""

from __future__ import annotations

import argparse
import json
import shutil
import signal
import sys
import tempfile
import time
import warnings
from pathlib import Path
from types import FrameType
from typing import Any

from benchmarks import contenders, environment
from benchmarks.chaos import report
from benchmarks.chaos.load import FAIL_PAUSE
from benchmarks.chaos.run import AFTERMATH, BASELINE, Settings, run_contender
from msgbus.testing.rabbitmq import (BrokerToolError, RabbitNode, private_rabbit_node,
                                     rabbitmqctl)

RESULTS = Path(__file__).resolve().parent.parent / "RESULTS.md"
#: The benchmark contenders on RabbitMQ with oslo.messaging's API, in table order.
DEFAULT_CONTENDERS = ("msgbus-rabbit", "msgbus-pika", "oslo-rabbit")


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.chaos",
                                     description=(__doc__ or "").split("\n\n")[1])
    parser.add_argument("--contender", action="append", choices=DEFAULT_CONTENDERS,
                        help="run only this contender (repeatable); default: all installed")
    parser.add_argument("--threads", type=int, default=32, help="call threads (32)")
    parser.add_argument("--timeout", type=float, default=10.0, help="call timeout, s (10)")
    parser.add_argument("--drops", type=int, default=3,
                        help="close_all_connections before the restart (3)")
    parser.add_argument("--drop-gap", type=float, default=6.0,
                        help="seconds after each drop (6)")
    parser.add_argument("--down", type=float, default=4.5,
                        help="seconds between stop_app returning and start_app; 0: no restart")
    parser.add_argument("--cast-rate", type=float, default=100.0, help="casts per second (100)")
    parser.add_argument("--query", default="",
                        help="URL query options for the msgbus contenders (default: none)")
    parser.add_argument("--write-results", action="store_true",
                        help="write the table as the '## Chaos run' section of RESULTS.md")
    parser.add_argument("--json", metavar="PATH", help="also write the raw results as JSON")
    parser.add_argument("--check", action="store_true",
                        help="exit 1 when a msgbus contender breaks the contract")
    parser.add_argument("--cluster", action="store_true",
                        help="kill nodes of a 3-node cluster with quorum queues instead (msgbus "
                             "contenders only; see benchmarks/chaos/cluster.py)")
    parser.add_argument("--rounds", type=int, default=3,
                        help="with --cluster: rounds of kills, each kills the leader and the "
                             "clients' node for each driver (3)")
    parser.add_argument("--settle", type=float, default=20.0,
                        help="with --cluster: seconds of load after each rejoin (20)")
    parser.add_argument("--keep-logs", action="store_true",
                        help="keep the journals and process logs (kept anyway after an error)")
    return parser.parse_args(argv)


class Interrupts:
    """SIGINT and SIGTERM raise KeyboardInterrupt once, and not at all once :meth:`shield` was
    called; later ones are only counted, so the cleanup that follows (bounded) is not cut short
    and leaves no process or node behind."""

    def __init__(self) -> None:
        self.count = 0
        self.shielded = False
        signal.signal(signal.SIGINT, self._handle)
        signal.signal(signal.SIGTERM, self._handle)

    def shield(self) -> None:
        """From now on, only count interruptions (the node is being stopped)."""
        self.shielded = True

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        self.count += 1
        if self.count == 1 and not self.shielded:
            raise KeyboardInterrupt
        print("chaos: cleaning up (bounded), please wait", file=sys.stderr)


def header(settings: Settings, node_version: str, names: list[str], command: str) -> list[str]:
    """The lines above the table: command, what was done, on what."""
    info = environment.describe(with_broker=False)
    versions = ", ".join(f"{k} {v}" for k, v in info["versions"].items())
    restart = (f"then `stop_app`, {settings.down:g} s down, `start_app`" if settings.down > 0
               else "no restart")
    query = f" (msgbus URL options: `{settings.query}`)" if settings.query else ""
    return [
        f"Made by `{command}` (see README.md, \"Chaos tool\", for what each row means).",
        "",
        f"- date: {info['date']}; msgbus tree at commit {info['revision']}",
        f"- machine: {info['cores']} cores, {info['cpu']}; versions: {versions}, "
        f"RabbitMQ {node_version} (a private node, shared by the contenders in turn: "
        f"{', '.join(names)})",
        f"- experiment: one RPC server process (`threading` executor); one load process with "
        f"{settings.threads} threads calling `echo` (timeout {settings.timeout:g} s) back to "
        f"back on one client ({FAIL_PAUSE:g} s pause after a call that raised), and "
        f"{settings.cast_rate:g} numbered casts/s; {BASELINE:g} s of "
        f"load, then {settings.drops} x `close_all_connections` {settings.drop_gap:g} s apart, "
        f"{restart}; load stopped {AFTERMATH:g} s after; default options{query}",
    ]


def run_all(names: list[str], settings: Settings, work_dir: Path,
            interrupts: Interrupts) -> tuple[list[dict], str]:
    """Every contender on one private node; the results and the node's RabbitMQ version."""
    results: list[dict[str, Any]] = []
    with private_rabbit_node() as node:
        try:
            version = run_on(node, names, settings, work_dir, results)
        finally:
            interrupts.shield()  # stopping the node must not be cut short
    if interrupts.count:
        raise KeyboardInterrupt
    return results, version


def run_on(node: RabbitNode, names: list[str], settings: Settings, work_dir: Path,
           results: list[dict[str, Any]]) -> str:
    """Run each contender in turn on ``node``, appending to ``results``; the node's version."""
    version = rabbitmqctl("eval", "rabbit_misc:version().", node=node.name).strip().strip('"')
    print(f"chaos: private RabbitMQ {version} node {node.name} on port {node.port}; "
          f"work dir {work_dir}", file=sys.stderr)
    for name in names:
        with warnings.catch_warnings():  # e.g. eventlet's deprecation, on importing oslo
            warnings.simplefilter("ignore")
            reason = contenders.get(name).unavailable()
        if reason:
            results.append({"contender": name, "status": "not installed", "reason": reason})
            continue
        print(f"chaos: {name} ...", file=sys.stderr, flush=True)
        started = time.monotonic()
        try:
            result = run_contender(name, node, settings, work_dir)
        except Exception as exc:  # noqa: BLE001 - reported in the table, next contender
            result = {"contender": name, "status": "error",
                      "reason": f"{type(exc).__name__}: {exc}"}
        result["seconds"] = round(time.monotonic() - started, 1)
        print(f"chaos: {name} done in {result['seconds']:.0f} s ({result['status']})",
              file=sys.stderr, flush=True)
        results.append(result)
    return version


def main(argv: list[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    settings = Settings(threads=args.threads, timeout=args.timeout, drops=args.drops,
                        drop_gap=args.drop_gap, down=args.down, cast_rate=args.cast_rate,
                        query=args.query)
    names = list(dict.fromkeys(args.contender or DEFAULT_CONTENDERS))
    if args.cluster:
        Interrupts()  # SIGTERM too ends the run through the cluster's cleanup
        if args.write_results:
            print("chaos: --write-results is not supported with --cluster (use --json)",
                  file=sys.stderr)
            return 2
        from benchmarks.chaos.cluster import run_cluster_mode
        try:
            return run_cluster_mode(names, args.rounds, args.settle, args.json, args.check)
        except KeyboardInterrupt:
            print("chaos: interrupted; cluster removed", file=sys.stderr)
            return 130
    interrupts = Interrupts()
    work_dir = Path(tempfile.mkdtemp(prefix="msgbus-chaos-"))
    try:
        results, version = run_all(names, settings, work_dir, interrupts)
    except KeyboardInterrupt:
        print(f"chaos: interrupted; processes and node stopped (logs in {work_dir})",
              file=sys.stderr)
        return 130
    except BrokerToolError as exc:
        print(f"chaos: the private RabbitMQ node failed: {exc} (logs in {work_dir})",
              file=sys.stderr)
        return 2
    if args.keep_logs or any(r["status"] == "error" for r in results):
        print(f"chaos: logs kept in {work_dir}", file=sys.stderr)
    else:
        shutil.rmtree(work_dir, ignore_errors=True)

    shown = [a for a in (sys.argv[1:] if argv is None else argv) if a != "--keep-logs"]
    if args.json and "--json" in shown:  # where the JSON went is no part of the experiment
        at = shown.index("--json")
        del shown[at:at + 2]
    command = " ".join(["python -m benchmarks.chaos", *shown])
    head = header(settings, version, [r["contender"] for r in results], command)
    print("\n".join([report.table(results), "", *report.notes(results)]))
    if args.json:
        Path(args.json).write_text(json.dumps({"header": head, "settings": vars(settings),
                                               "results": results}, indent=2) + "\n")
    if args.write_results:
        report.replace_section(RESULTS, report.section(results, head))
        print(f"chaos: wrote the '{report.SECTION}' section of {RESULTS}", file=sys.stderr)
    print(report.contract_line(results))
    broken = any(report.verdicts(results).values())
    return 1 if args.check and broken else 0


if __name__ == "__main__":
    sys.exit(main())
