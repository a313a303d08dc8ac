"""Client process entry: ``python -m benchmarks.worker CONTENDER CONFIG_JSON OUT_JSON``.

Runs every scenario of one contender in this process (the client: its CPU is ours), with the
contender's servers in their own processes, then deletes what it left on the broker and writes
``{"status", "reason", "metrics", "errors", "versions", "elapsed_s"}`` to OUT_JSON.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import time
import traceback
from pathlib import Path
from typing import Any

from benchmarks import broker, contenders, scenarios
from benchmarks.contenders.base import Contender
from benchmarks.profiling import Profile, summarize
from benchmarks.servers import start_server
from benchmarks.stats import CpuMeter

LOG = logging.getLogger("benchmarks.worker")


def delete_leftovers(contender: Contender, topic: str, servers: list[str]) -> list[str]:
    """Delete the queues and exchanges the contender may leave for ``topic``; problems seen."""
    if contender.group != "rabbit":
        return []
    return broker.delete(contender.leftover_queues(topic, servers),
                         contender.leftover_exchanges(topic))


def start_profiles(name: str, servers: list[Any], out_dir: Path) -> list[Profile]:
    """py-spy recordings of this (client) process and of the first server process."""
    out_dir.mkdir(parents=True, exist_ok=True)
    profiles = [Profile(os.getpid(), f"{name}-client", out_dir)]
    profiles += [Profile(srv.pid, f"{name}-server-{srv.name}", out_dir)
                 for srv in servers if srv.pid]
    return profiles


def stop_profiles(profiles: list[Profile]) -> list[str]:
    """Stop the recordings (once) and write their summaries; the summaries' paths."""
    written = []
    while profiles:
        profile = profiles.pop(0)
        profile.stop()
        summary = profile.path.with_suffix(".txt")
        summary.write_text(summarize(profile.path) + "\n")
        written.append(str(summary))
    return written


def run(name: str, config: dict[str, Any]) -> dict[str, Any]:
    """All scenarios of contender ``name``; a failing scenario is recorded and the rest go on."""
    contender = contenders.get(name)
    result: dict[str, Any] = {"contender": name, "group": contender.group, "metrics": {},
                              "errors": {}, "versions": {}}
    reason = contender.unavailable()
    if reason:
        result.update(status="not installed", reason=reason)
        return result
    result["versions"] = contender.versions()
    sizes = scenarios.QUICK if config.get("quick") else scenarios.FULL
    topic = f"bench-{config['run_id']}-{name.replace('@', '-at-')}"
    log_dir = Path(config["log_dir"])
    started: list[str] = []

    def server(server_name: str) -> Any:
        started.append(server_name)
        return start_server(contender, topic, server_name, log_dir)

    servers = []
    session = None
    profiles: list[Profile] = []
    try:
        servers.append(server("s1"))
        session = contender.open_session(topic) if contender.runs_sync else None
        meter = CpuMeter([srv.pid for srv in servers if srv.pid], config.get("broker_pid"))
        bench = scenarios.Bench(contender, session, topic, sizes, meter, server)
        if config.get("profile_dir"):
            profiles = start_profiles(name, servers, Path(config["profile_dir"]))
        only = config.get("scenarios")
        for scenario_name, scenario in scenarios.for_contender(contender):
            if only and scenario_name not in only:
                continue
            began = time.perf_counter()
            try:
                result["metrics"].update(scenario(bench))
            except Exception as exc:  # noqa: BLE001 - recorded, other scenarios go on
                LOG.error("%s: scenario %s failed:\n%s", name, scenario_name,
                          traceback.format_exc())
                result["errors"][scenario_name] = f"{type(exc).__name__}: {exc}"
            LOG.info("%s: %s took %.1fs", name, scenario_name, time.perf_counter() - began)
        result["status"] = "ok"
        result["profiles"] = stop_profiles(profiles)
    except Exception as exc:  # noqa: BLE001 - recorded as this contender's error
        LOG.error("%s failed:\n%s", name, traceback.format_exc())
        result.update(status="error", reason=f"{type(exc).__name__}: {exc}")
    finally:
        stop_profiles(profiles)
        if session is not None:
            try:
                session.close()
            except Exception as exc:  # noqa: BLE001 - recorded in the results
                result["errors"]["close"] = f"{type(exc).__name__}: {exc}"
        for srv in servers:
            srv.stop()
        problems = delete_leftovers(contender, topic, started)
        if problems:
            result["errors"]["cleanup"] = "; ".join(problems)
    return result


def main(argv: list[str]) -> int:
    if len(argv) != 3:
        print("usage: python -m benchmarks.worker CONTENDER CONFIG_JSON OUT_JSON", file=sys.stderr)
        return 2
    name, config_json, out_path = argv
    logging.basicConfig(level=logging.WARNING,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    LOG.setLevel(logging.INFO)
    began = time.perf_counter()
    result = run(name, json.loads(config_json))
    result["elapsed_s"] = time.perf_counter() - began
    Path(out_path).write_text(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
