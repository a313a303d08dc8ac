"""``python -m benchmarks.chaos --cluster``: the longer version of the cluster tests.

On a throw-away 3-node RabbitMQ cluster (:mod:`msgbus.testing.rabbit_cluster`), each round kills
the node leading the topic queue and then the node the clients are connected to, under load,
for each msgbus AMQP driver, with quorum queues and otherwise default options; the load runs on
for ``--settle`` seconds after each rejoin. The scenario is the one ``tests/cluster`` runs
(``tests/cluster/node_loss.py``), so run this from the repository root. oslo.messaging has no
contender here: its loss and failover under a node kill are not measured by this mode.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any

#: msgbus contender name -> URL scheme of its driver.
SCHEMES = {"msgbus-rabbit": "rabbit", "msgbus-pika": "pika"}
VICTIMS = ("leader", "clients")


def run_cluster_mode(names: list[str], rounds: int, settle: float, json_path: str | None,
                     check: bool) -> int:
    """Run every round; print one line per kill and a table; 1 if ``check`` and a kill broke
    the contract."""
    from msgbus.testing.rabbit_cluster import rabbit_cluster
    try:
        from tests.cluster import node_loss
    except ImportError as exc:
        print(f"chaos: --cluster needs the repository's tests/cluster (run from the repository "
              f"root): {exc}", file=sys.stderr)
        return 2
    skipped = [n for n in names if n not in SCHEMES]
    if skipped:
        print(f"chaos: --cluster runs msgbus contenders only; not run: {', '.join(skipped)}",
              file=sys.stderr)
    schemes = [SCHEMES[n] for n in names if n in SCHEMES]
    rows: list[dict[str, Any]] = []
    started = time.monotonic()
    print("chaos: starting a 3-node cluster ...", file=sys.stderr, flush=True)
    with rabbit_cluster() as cluster:
        print(f"chaos: cluster up in {time.monotonic() - started:.0f} s: {cluster.url}",
              file=sys.stderr, flush=True)
        for round_ in range(1, rounds + 1):
            for scheme in schemes:
                for victim in VICTIMS:
                    for node in cluster.nodes:
                        if not node.alive():
                            cluster.revive(node)
                    outcome = node_loss.run(cluster, scheme, victim, settle=settle)
                    print(f"round {round_}: {outcome.summary()}", flush=True)
                    for problem in outcome.problems:
                        print(f"  - {problem}", flush=True)
                    rows.append({"round": round_, "driver": scheme, "victim": victim,
                                 "facts": outcome.facts, "problems": outcome.problems,
                                 **{k: v for k, v in outcome.numbers.items() if k != "killed"}})
    print(table(rows))
    broken = sum(1 for r in rows if r["problems"])
    print(f"contract: {'held' if not broken else 'BROKEN'} in {len(rows) - broken} of "
          f"{len(rows)} kills")
    if json_path:
        Path(json_path).write_text(json.dumps(rows, indent=2) + "\n")
    return 1 if check and broken else 0


def table(rows: list[dict[str, Any]]) -> str:
    """A Markdown table: one row per kill, failover times in ms."""
    def ms(row: dict[str, Any], key: str) -> str:
        value = row.get(f"failover_{key}")
        return "-" if value is None else f"{value * 1000:.0f}"

    lines = ["| round | driver | killed | first call ms | first cast ms | first notification ms "
             "| calls timed out | problems |",
             "|---|---|---|---:|---:|---:|---:|---|"]
    for r in rows:
        lines.append(f"| {r['round']} | {r['driver']} | {r['victim']} | {ms(r, 'call')} | "
                     f"{ms(r, 'cast')} | {ms(r, 'notification')} | "
                     f"{int(r.get('calls_failed', 0))} | {len(r['problems'])} |")
    return "\n".join(lines)
