"""The chaos table (Markdown), the contract verdicts, and the RESULTS.md section."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from benchmarks.chaos.analyze import RECOVERY_TARGET, SLACK, contract_breaches

SECTION = "## Chaos run"


def _counts(counts: dict[str, int]) -> str:
    return ", ".join(f"{key} {value:,}" for key, value in counts.items())


def _with(total: int, detail: dict[str, int]) -> str:
    return f"{total:,} ({_counts(detail)})" if total and detail else f"{total:,}"


def _seconds(value: float | None) -> str:
    return "none" if value is None else f"{value:.2f} s"


def _timing(events: list[dict[str, Any]]) -> str:
    """How long each fault really took: the drop commands, and the broker's down time."""
    drops = [f"{e['back'] - e['down']:.1f}" for e in events if e["kind"] == "drop"]
    parts = [f"drops {', '.join(drops)} s"] if drops else []
    restart = next((e for e in events if e["kind"] == "restart"), None)
    if restart is not None:
        parts.append(f"down {restart['back'] - restart['down']:.1f} s (start_app to port open "
                     f"{restart['back'] - restart['start_app']:.1f} s)")
    return "; ".join(parts) or "no faults"


def _cells(result: dict[str, Any]) -> list[str]:
    """One contender's column, in the order of :data:`ROWS`."""
    m = result["metrics"]
    raised = sum(m["calls_raised"].values())
    late = f"{m['calls_past_deadline']:,}"
    if m["longest_call_s"] is not None:
        late += f" (longest {m['longest_call_s']:.1f} s)"
    if m["calls_open_at_end"]:
        late += f"; {m['calls_open_at_end']} still running at the end"
    sent = f"{m['casts_sent']:,}"
    cast_raised = sum(m["casts_raised"].values())
    if cast_raised or m["casts_open_at_end"]:
        sent += (f" ({cast_raised} raised: {_counts(m['casts_raised']) or '-'}; "
                 f"{m['casts_raised_but_processed']} of them processed anyway")
        sent += f"; {m['casts_open_at_end']} unfinished)" if m["casts_open_at_end"] else ")"
    lost = _with(m["casts_lost"], m["casts_lost_by_phase"])
    if m.get("casts_lost_at_stop"):
        lost += f"; {m['casts_lost_at_stop']} returned just before the stop (in its queue)"
    queued = sum(result.get("queued_at_end", {}).values())
    if queued:
        lost += f"; {queued:,} messages still in the topic's queues at the end"
    doubled = _with(m["casts_doubled"], m["casts_doubled_by_phase"])
    if m["casts_doubled_extra"] > m["casts_doubled"]:
        doubled += f", {m['casts_doubled_extra']} extra deliveries"
    return [
        f"{m['calls']:,} ({m['calls_ok']:,} ok)",
        _with(raised, m["calls_raised"]),
        f"{m['calls_wrong_reply']:,}",
        late,
        _with(sum(m["calls_failed_outlasted"].values()), m["calls_failed_outlasted"])
        + (f"; {m['calls_failed_outlasted_at_stop']} in flight at the stop"
           if m.get("calls_failed_outlasted_at_stop") else ""),
        sent,
        lost,
        doubled,
        _seconds(m["first_good_call_s"]),
        _timing(result["events"]),
    ]


def rows(slack: float = SLACK) -> list[str]:
    """Row labels of the table."""
    return [
        "calls made",
        "calls that raised (by exception type)",
        "calls answered with another call's reply",
        f"calls longer than timeout + {slack:g} s (longest call)",
        "failed calls whose timeout outlasted the outage",
        "casts sent (returned without error)",
        "casts lost (sent, never processed; by fault)",
        "casts doubled (processed more than once; by fault)",
        "first good call after the broker is back",
        "faults as they happened (command durations; stop_app invoked to port open)",
    ]


def table(results: list[dict[str, Any]]) -> str:
    """The Markdown table: one row per metric, one column per contender."""
    names = [r["contender"] for r in results]
    columns = []
    for result in results:
        if result["status"] == "ok":
            columns.append(_cells(result))
        else:
            columns.append([result["status"]] + [""] * (len(rows()) - 1))
    lines = ["| | " + " | ".join(names) + " |", "|---|" + "---:|" * len(names)]
    for index, label in enumerate(rows()):
        lines.append(f"| {label} | " + " | ".join(col[index] for col in columns) + " |")
    return "\n".join(lines)


def notes(results: list[dict[str, Any]]) -> list[str]:
    """Why a contender did not run, and where its logs are."""
    out = []
    for result in results:
        if result["status"] != "ok":
            lines = [line.strip() for line in result.get("reason", "").splitlines()
                     if line.strip()]
            cause = [line for line in lines[1:] if "Error" in line or "Exception" in line]
            text = " ... ".join(lines[:1] + cause[-1:])
            out.append(f"- {result['contender']}: {result['status']}: {text}")
    return out


def verdicts(results: list[dict[str, Any]]) -> dict[str, list[str]]:
    """For each msgbus contender, what broke the contract (empty list: it held)."""
    out = {}
    for result in results:
        if not result["contender"].startswith("msgbus-") or result["status"] == "not installed":
            continue
        if result["status"] != "ok":
            out[result["contender"]] = [f"did not run ({result['status']})"]
        else:
            out[result["contender"]] = contract_breaches(result["metrics"])
    return out


def contract_line(results: list[dict[str, Any]]) -> str:
    """One line: for each msgbus contender whether the contract held, and if not, why."""
    parts = []
    for name, broken in verdicts(results).items():
        parts.append(f"{name} held" if not broken else f"{name} BROKEN ({'; '.join(broken)})")
    rule = (f"0 casts lost or doubled, 0 calls past timeout + {SLACK:g} s, 0 failed calls whose "
            f"timeout outlasted the outage, 0 wrong replies, first good call <= "
            f"{RECOVERY_TARGET:g} s")
    return f"contract ({rule}): " + ("; ".join(parts) if parts else "no msgbus contender ran")


def section(results: list[dict[str, Any]], header: list[str]) -> str:
    """The ``## Chaos run`` section of RESULTS.md."""
    body = [SECTION, "", *header, "", table(results), "", *notes(results)]
    if notes(results):
        body.append("")
    body += [contract_line(results), ""]
    return "\n".join(body)


def current_section(path: Path, heading: str = SECTION) -> str | None:
    """The ``## Chaos run`` section now in ``path`` (None when there is none), so that the
    speed benchmarks, which rewrite the file, can keep it."""
    if not path.exists():
        return None
    lines = path.read_text(encoding="utf-8").splitlines()
    start = next((i for i, line in enumerate(lines) if line.strip() == heading), None)
    if start is None:
        return None
    end = next((i for i in range(start + 1, len(lines))
                if lines[i].startswith("## ") or lines[i].startswith("# ")), len(lines))
    return "\n".join(lines[start:end]).rstrip("\n") + "\n"


def replace_section(path: Path, text: str, heading: str = SECTION) -> None:
    """Write ``text`` as the ``heading`` section (default ``## Chaos run``) of ``path``,
    keeping everything else."""
    old = path.read_text(encoding="utf-8") if path.exists() else ""
    lines = old.splitlines()
    start = next((i for i, line in enumerate(lines) if line.strip() == heading), None)
    if start is None:
        kept = old.rstrip("\n")
        path.write_text((kept + "\n\n" if kept else "") + text.rstrip("\n") + "\n",
                        encoding="utf-8")
        return
    end = next((i for i in range(start + 1, len(lines))
                if lines[i].startswith("## ") or lines[i].startswith("# ")), len(lines))
    before = "\n".join(lines[:start]).rstrip("\n")
    after = "\n".join(lines[end:]).strip("\n")
    parts = [before, text.rstrip("\n")] + ([after] if after else [])
    path.write_text("\n\n".join(p for p in parts if p) + "\n", encoding="utf-8")
