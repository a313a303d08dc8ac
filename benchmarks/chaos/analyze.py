"""The numbers of one contender's run, from the load journal, the server's cast log and the faults.

All cross-process comparisons use wall-clock stamps (``time.time``): the load process stamps each
call and cast, the orchestrator stamps each fault. Durations are the load process's monotonic ones.
Definitions (also in benchmarks/README.md):

* past deadline: a call that lasted longer than its timeout + ``slack`` (or was still running when
  the load stopped and had run that long);
* outage: a drop lasts from ``close_all_connections`` invoked to returned; the restart from
  ``stop_app`` invoked to the first TCP connection the node's port accepted again ("back");
* failed although its timeout outlasted the outage: a call that raised, was alive at some point of
  an outage (started before it ended, ended after it began) and whose deadline (start + timeout)
  came at least ``slack`` after the broker was back, so it had time to succeed;
* first good call: seconds from "back" after the restart to the end of the first successful call
  that was started after ``stop_app`` returned (the broker was surely down when it was issued);
* at the stop: what may have sat in a non-durable queue when the broker stopped, which dies with
  it (the exception doc/faults.md states): a lost cast that returned within ``AT_STOP`` seconds
  before ``stop_app`` was invoked, a failed call that was in flight when it was. They are
  counted and shown apart, and do not break the contract; losses at any other time do.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

#: Allowed lateness of a call past its timeout, and the least time a call must have had after
#: the broker came back for its failure to count against the client (seconds).
SLACK = 0.5
#: Contract: the first good call after the broker is back ends within this many seconds.
RECOVERY_TARGET = 0.5
#: A lost cast that returned this many seconds or less before the broker was stopped may have
#: been sitting in its non-durable queue then (the server takes casts well within it).
AT_STOP = 2.0


def read_journal(path: Path) -> list[list[Any]]:
    """The load journal's rows (``[kind, key, start, end, duration, outcome]``)."""
    rows = []
    with open(path, encoding="utf-8") as journal:
        for line in journal:
            line = line.strip()
            if line:
                rows.append(json.loads(line))
    return rows


def read_processed(path: Path) -> Counter[int]:
    """How many times the server processed each cast number."""
    counts: Counter[int] = Counter()
    if path.exists():
        for line in path.read_text(encoding="ascii").splitlines():
            if line.strip():
                counts[int(line)] += 1
    return counts


def phase_of(stamp: float, events: list[dict[str, Any]]) -> str:
    """``before`` the faults, or the last fault (``drop 2``, ``restart``) begun by ``stamp``."""
    label, drops = "before", 0
    for event in events:
        if event["kind"] == "drop":
            drops += 1
        if event["down"] <= stamp:
            label = f"drop {drops}" if event["kind"] == "drop" else "restart"
    return label


def _by_phase(stamps: list[float], events: list[dict[str, Any]]) -> dict[str, int]:
    return dict(Counter(phase_of(stamp, events) for stamp in stamps))


def analyze(rows: list[list[Any]], processed: Counter[int], events: list[dict[str, Any]],
            timeout: float, slack: float = SLACK) -> dict[str, Any]:
    """Every number of the table for one contender, as a JSON-ready dict."""
    calls = [row for row in rows if row[0] == "call"]
    open_calls = [row for row in rows if row[0] == "call-open"]
    failed = [row for row in calls if row[5] not in ("ok", "wrong")]
    late = [row for row in calls + open_calls if row[4] > timeout + slack]
    outages = [(event["down"], event["back"]) for event in events]
    outlasted = [row for row in failed
                 if any(row[2] <= back and row[3] >= down and row[2] + timeout >= back + slack
                        for down, back in outages)]

    stop = next((event["down"] for event in events if event["kind"] == "restart"), None)
    outlasted_at_stop = [row for row in outlasted
                         if stop is not None and row[2] <= stop <= row[3]]

    casts = [row for row in rows if row[0] == "cast"]
    sent = {row[1]: row for row in casts if row[5] == "ok"}
    cast_raised = {row[1]: row for row in casts if row[5] != "ok"}
    lost = sorted(set(sent) - set(processed))
    doubled = sorted(n for n, count in processed.items() if count > 1)
    known = set(sent) | set(cast_raised) | {row[1] for row in rows if row[0] == "cast-open"}
    lost_at_stop = [n for n in lost if stop is not None and stop - AT_STOP <= sent[n][3] <= stop]

    return {
        "calls": len(calls) + len(open_calls),
        "calls_ok": sum(1 for row in calls if row[5] == "ok"),
        "calls_raised": dict(Counter(row[5] for row in failed).most_common()),
        "calls_raised_by_phase": _by_phase([row[3] for row in failed], events),
        "calls_wrong_reply": sum(1 for row in calls if row[5] == "wrong"),
        "calls_open_at_end": len(open_calls),
        "calls_past_deadline": len(late),
        "longest_call_s": max((row[4] for row in calls + open_calls), default=None),
        "calls_failed_outlasted": dict(Counter(row[5] for row in outlasted).most_common()),
        "calls_failed_outlasted_at_stop": len(outlasted_at_stop),
        "casts_sent": len(sent),
        "casts_raised": dict(Counter(row[5] for row in cast_raised.values()).most_common()),
        "casts_raised_but_processed": len(set(cast_raised) & set(processed)),
        "casts_open_at_end": sum(1 for row in rows if row[0] == "cast-open"),
        "casts_lost": len(lost),
        "casts_lost_at_stop": len(lost_at_stop),
        "casts_lost_by_phase": _by_phase([sent[n][3] for n in lost], events),
        "casts_lost_sent": [sent[n][1:4] for n in lost[:100]],  # [n, start, end] stamps
        "casts_doubled": len(doubled),
        "casts_doubled_extra": sum(processed[n] - 1 for n in doubled),
        "casts_doubled_by_phase": _by_phase([sent[n][3] for n in doubled if n in sent], events),
        "casts_processed_unknown": len(set(processed) - known),
        **_recovery(calls, events),
    }


def _recovery(calls: list[list[Any]], events: list[dict[str, Any]]) -> dict[str, Any]:
    """The first-good-call numbers for the restart (None without a restart or a good call)."""
    restart = next((event for event in events if event["kind"] == "restart"), None)
    if restart is None:
        return {"restart": False, "first_good_call_s": None, "first_good_any_call_s": None}
    back = restart["back"]
    issued_after = [row[3] for row in calls if row[5] == "ok" and row[2] >= restart["stopped"]]
    ended_after = [row[3] for row in calls if row[5] == "ok" and row[3] >= back]
    return {
        "restart": True,
        "first_good_call_s": min(issued_after) - back if issued_after else None,
        # not in the table: the first good call of any start time that ended after "back"
        "first_good_any_call_s": min(ended_after) - back if ended_after else None,
    }


def contract_breaches(metrics: dict[str, Any]) -> list[str]:
    """What breaks msgbus's contract under these faults (empty: it held)."""
    broken = []
    lost = metrics["casts_lost"] - metrics.get("casts_lost_at_stop", 0)
    if lost or metrics["casts_doubled"]:
        broken.append(f"{lost} casts lost (not counting those in a queue at the stop), "
                      f"{metrics['casts_doubled']} doubled")
    if metrics["calls_past_deadline"]:
        broken.append(f"{metrics['calls_past_deadline']} calls past deadline")
    outlasted = (sum(metrics["calls_failed_outlasted"].values())
                 - metrics.get("calls_failed_outlasted_at_stop", 0))
    if outlasted:
        broken.append(f"{outlasted} failed calls whose timeout outlasted the outage")
    first = metrics["first_good_call_s"]
    if not metrics["restart"]:
        pass
    elif first is None:
        broken.append("no good call after the restart")
    elif first > RECOVERY_TARGET:
        broken.append(f"first good call {first:.2f}s after the broker was back")
    if metrics["calls_wrong_reply"]:
        broken.append(f"{metrics['calls_wrong_reply']} wrong replies")
    return broken
