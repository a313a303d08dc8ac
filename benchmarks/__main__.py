"""``python -m benchmarks [--quick] [--only fake|rabbit] [--write-results]``.

Runs each contender in its own client process (``benchmarks.worker``), one after the other,
prints the tables and ratios, and with ``--write-results`` writes ``benchmarks/RESULTS.md``.
Exits 1 if a contender that is installed failed or a scenario errored.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from benchmarks import baseline, broker, contenders, environment, report
from benchmarks.chaos import report as chaos_report

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "RESULTS.md"
#: Bound of one contender's whole run (seconds), full and quick.
WORKER_TIMEOUT = {False: 420.0, True: 120.0}


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__.split(
        "\n\n")[1] if __doc__ else None)
    parser.add_argument("--quick", action="store_true",
                        help="short scenarios (about 0.3 s each): a smoke run")
    parser.add_argument("--only", choices=("fake", "rabbit"),
                        help="run only the in-process fake contenders or only the RabbitMQ ones")
    parser.add_argument("--contender", action="append", metavar="NAME",
                        help="run only this contender (repeatable); one of: "
                             + ", ".join(contenders.names()))
    parser.add_argument("--scenario", action="append", metavar="NAME",
                        help="run only this scenario (repeatable), e.g. sequential, casts")
    parser.add_argument("--repeat", type=int, default=1, metavar="N",
                        help="run every contender N times, in turns, and keep each metric's "
                             "best value (evens out other load on a shared machine)")
    parser.add_argument("--write-results", action="store_true",
                        help=f"write the report to {RESULTS.relative_to(HERE.parent)}")
    parser.add_argument("--profile", metavar="DIR",
                        help="record the client and server processes with py-spy during the "
                             "scenarios and write per-process summaries to DIR")
    parser.add_argument("--json", metavar="PATH", help="also write the raw results as JSON")
    parser.add_argument("--baseline", metavar="REV",
                        help="also run msgbus-rabbit and msgbus-pika with the drivers of git "
                             "revision REV (NAME@REV, same core, same run) and compare")
    return parser.parse_args(argv)


def run_worker(name: str, config: dict[str, Any], log_dir: Path, timeout: float,
               first_on_path: str | None = None) -> dict:
    """One contender's results from its own client process (bounded by ``timeout``);
    ``first_on_path``: a folder searched before everything installed (a baseline's driver)."""
    out = log_dir / f"result-{name}.json"
    log = log_dir / f"client-{name}.log"
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [first_on_path, str(HERE.parent),
                                                      env.get("PYTHONPATH")]))
    group = contenders.group_of(name)
    with open(log, "wb") as log_file:
        try:
            done = subprocess.run(
                [sys.executable, "-m", "benchmarks.worker", name, json.dumps(config), str(out)],
                stdin=subprocess.DEVNULL, stdout=log_file, stderr=subprocess.STDOUT, env=env,
                cwd=str(HERE.parent), timeout=timeout, check=False)
        except subprocess.TimeoutExpired:
            return {"contender": name, "group": group, "status": "error", "metrics": {},
                    "errors": {}, "reason": f"did not finish in {timeout:.0f}s (log: {log})"}
    if done.returncode != 0 or not out.exists():
        tail = "\n".join(log.read_text(errors="replace").splitlines()[-10:])
        return {"contender": name, "group": group, "status": "error", "metrics": {},
                "errors": {}, "reason": f"client process exited {done.returncode}: {tail}"}
    result = json.loads(out.read_text())
    if result.get("errors") or result.get("status") == "error":
        result["log"] = str(log)
    return result


def main(argv: list[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    names = contenders.names(args.only)
    if args.contender:
        unknown = set(args.contender) - set(contenders.names())
        if unknown:
            print(f"unknown contender(s): {', '.join(sorted(unknown))}", file=sys.stderr)
            return 2
        names = [n for n in names if n in args.contender]
    with_broker = any(contenders.group_of(n) == "rabbit" for n in names)
    run_id = uuid.uuid4().hex[:8]
    log_dir = Path(tempfile.mkdtemp(prefix=f"msgbus-bench-{run_id}-"))
    drivers: dict[str, Path] = {}
    if args.baseline:
        try:
            rev = baseline.resolve(HERE.parent, args.baseline)
        except ValueError as exc:
            print(exc, file=sys.stderr)
            return 2
        drivers = baseline.export_drivers(HERE.parent, rev, log_dir / f"baseline-{rev}")
        names = baseline.with_baselines(names, rev)
    config = {"run_id": run_id, "quick": args.quick, "log_dir": str(log_dir),
              "broker_pid": broker.broker_pid() if with_broker else None,
              "scenarios": args.scenario,
              "profile_dir": str(Path(args.profile).resolve()) if args.profile else None}
    print(f"benchmark run {run_id}: {', '.join(names)} "
          f"({'quick' if args.quick else 'full'}; logs in {log_dir})", file=sys.stderr)
    load = os.getloadavg()[0]
    runs: dict[str, list[dict[str, Any]]] = {name: [] for name in names}
    for turn in range(max(1, args.repeat)):
        for name in names:
            if runs[name] and runs[name][-1].get("status") == report.NOT_INSTALLED:
                continue
            began = time.perf_counter()
            result = run_worker(name, config, log_dir, WORKER_TIMEOUT[args.quick],
                                baseline.python_path(name, drivers))
            runs[name].append(result)
            errors = f", {len(result['errors'])} error(s)" if result.get("errors") else ""
            print(f"  {name} (run {turn + 1}): {result['status']}{errors} in "
                  f"{time.perf_counter() - began:.1f}s", file=sys.stderr)
            for path in result.get("profiles", []):
                print(f"    profile: {path}", file=sys.stderr)
    results = {name: report.best_of(done) for name, done in runs.items()}
    if with_broker:
        left = broker.queues_named(run_id)
        if left:
            print(f"  deleting queues left behind: {', '.join(left)}", file=sys.stderr)
            broker.delete(left, [])
            owner = next((n for n in names if n.replace("@", "-at-") in " ".join(left)),
                         names[-1])
            results[owner].setdefault("errors", {})["leftovers"] = (
                f"queues left behind: {', '.join(left)}")
    info = environment.describe(with_broker)
    info.update(load=f"{load:.2f}, after: {os.getloadavg()[0]:.2f}",
                repeat=max(1, args.repeat))
    for result in results.values():
        info["versions"].update(result.get("versions", {}))
    text = report.render(results, info)
    print(text)
    if args.write_results:
        command = "python -m benchmarks" + (" --quick" if args.quick else "") + (
            f" --only {args.only}" if args.only else "") + (
            f" --repeat {args.repeat}" if args.repeat > 1 else "")
        # sections other runs made (python -m benchmarks.chaos, python -m benchmarks.cluster)
        kept = [(heading, chaos_report.current_section(RESULTS, heading))
                for heading in (chaos_report.SECTION, "## Cluster")]
        RESULTS.write_text(f"# msgbus benchmark results\n\nMade by `{command} --write-results`"
                           f" (see README.md for what each scenario measures).\n\n{text}")
        for heading, section in kept:
            if section:
                chaos_report.replace_section(RESULTS, section, heading)
        print(f"wrote {RESULTS}", file=sys.stderr)
    if args.json:
        Path(args.json).write_text(json.dumps({"info": info, "results": results}, indent=1))
    failed = [n for n, r in results.items()
              if r.get("status") == "error" or r.get("errors")]
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
