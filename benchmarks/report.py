"""The results as Markdown: one table per group, ratios against the baselines, target checks.

A ratio is always msgbus's value divided by the baseline's; whether bigger is better depends on
the metric (calls/s: bigger; milliseconds and CPU: smaller), which each target's operator says.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

NOT_INSTALLED = "not installed"


@dataclass(frozen=True)
class Metric:
    key: str
    label: str
    groups: tuple[str, ...] = ("rabbit",)


METRICS: tuple[Metric, ...] = (
    Metric("seq_calls_per_s", "sequential calls/s", ("fake", "rabbit")),
    Metric("seq_p50_ms", "sequential call latency p50 (ms)", ("fake", "rabbit")),
    Metric("seq_p99_ms", "sequential call latency p99 (ms)", ("fake", "rabbit")),
    Metric("conc1_calls_per_s", "calls/s, 1 client thread"),
    Metric("conc8_calls_per_s", "calls/s, 8 client threads", ("fake", "rabbit")),
    Metric("conc32_calls_per_s", "calls/s, 32 client threads"),
    Metric("p1k_calls_per_s", "1 KiB echo calls/s"),
    Metric("p64k_calls_per_s", "64 KiB echo calls/s"),
    Metric("p1m_calls_per_s", "1 MiB echo calls/s"),
    Metric("casts_per_s", "casts/s, until all processed", ("fake", "rabbit")),
    Metric("fanout_per_s", "fanout casts/s to 3 servers, all processed"),
    Metric("cpu_per_call_us", "CPU per sequential call, client+server (us)", ("fake", "rabbit")),
    Metric("client_cpu_per_call_us", "  of which client process (us)"),
    Metric("server_cpu_per_call_us", "  of which server process (us)"),
    Metric("broker_cpu_per_call_us", "RabbitMQ (beam.smp) CPU per call (us)"),
    Metric("first_call_ms", "first call on a fresh transport (ms)"),
) + tuple(
    metric for n in (1, 100, 1000) for metric in (
        Metric(f"async{n}_calls_per_s", f"asyncio calls/s, {n} in flight", ("async",)),
        Metric(f"async{n}_p50_ms", f"  latency p50 (ms), {n} in flight", ("async",)),
        Metric(f"async{n}_p99_ms", f"  latency p99 (ms), {n} in flight", ("async",)),
        Metric(f"async{n}_cpu_per_call_us", f"  CPU per call, client+server (us), {n} in flight",
               ("async",)),
        Metric(f"async{n}_server_cpu_per_call_us", f"  of which server (us), {n} in flight",
               ("async",)),
        Metric(f"async{n}_broker_cpu_per_call_us",
               f"  RabbitMQ (beam.smp) CPU per call (us), {n} in flight", ("async",)),
    )
) + (Metric("async1000_kb_per_inflight", "client memory per call in flight (KiB), 1000 in "
            "flight", ("async",)),)

#: Contenders measured by the asyncio scenarios only (left out of the thread-based tables).
ASYNC_ONLY = ("msgbus-async-rabbit", "faststream-rabbit", "aiopika-rabbit")
#: Contenders shown in the asyncio table, in column order.
ASYNC_NAMES = ("msgbus-async-rabbit", "msgbus-rabbit", "msgbus-pika", "faststream-rabbit",
               "aiopika-rabbit")


@dataclass(frozen=True)
class Target:
    """``msgbus value / baseline value`` must be ``op`` (">=" or "<=") ``bound``."""

    key: str
    baseline: str  # a role of GROUPS[group]["baselines"]: "oslo", "raw", "faststream", ...
    op: str
    bound: float
    #: The msgbus contenders it applies to (empty: every msgbus contender of the group).
    only: tuple[str, ...] = ()

    def applies(self, name: str) -> bool:
        return not self.only or name in self.only

    def met(self, ratio: float) -> bool:
        return ratio >= self.bound if self.op == ">=" else ratio <= self.bound

    def text(self) -> str:
        return f"{self.op}{self.bound:g}x"


#: The drivers' default paths (the general RabbitMQ targets are theirs).
DEFAULT_PATHS = ("msgbus-rabbit", "msgbus-pika")

TARGETS: dict[str, tuple[Target, ...]] = {
    "fake": (
        # the issue's bar: oslo's fake polls every 50 ms, so it manages ~20 sequential calls/s
        Target("seq_calls_per_s", "oslo", ">=", 100.0),
    ),
    "rabbit": (
        Target("seq_calls_per_s", "oslo", ">=", 2.0, DEFAULT_PATHS),
        Target("seq_calls_per_s", "raw", ">=", 0.6, DEFAULT_PATHS),
        Target("conc8_calls_per_s", "oslo", ">=", 2.5, DEFAULT_PATHS),
        Target("conc32_calls_per_s", "oslo", ">=", 2.5, DEFAULT_PATHS),
        Target("casts_per_s", "oslo", ">=", 3.0, DEFAULT_PATHS),
        Target("fanout_per_s", "oslo", ">=", 2.0, DEFAULT_PATHS),
        Target("p1m_calls_per_s", "oslo", ">=", 2.0, DEFAULT_PATHS),
        Target("cpu_per_call_us", "oslo", "<=", 0.5, DEFAULT_PATHS),
        Target("first_call_ms", "oslo", "<=", 1.0, DEFAULT_PATHS),
        # issue 9: msgbus-kombu on py-amqp's public API alone
        Target("seq_calls_per_s", "oslo", ">=", 2.5, ("msgbus-rabbit-public",)),
        Target("conc8_calls_per_s", "oslo", ">=", 3.0, ("msgbus-rabbit-public",)),
    ),
    "async": (
        # issue 11: the asyncio server with async endpoints, 10x FastStream at 100 and 1,000 in
        # flight, and no slower nor costlier per call than the threaded server on that load
        Target("async100_calls_per_s", "faststream", ">=", 10.0),
        Target("async1000_calls_per_s", "faststream", ">=", 10.0),
        Target("async100_calls_per_s", "threaded", ">=", 1.0),
        Target("async1000_calls_per_s", "threaded", ">=", 1.0),
        Target("async100_cpu_per_call_us", "threaded", "<=", 1.0),
        Target("async1000_cpu_per_call_us", "threaded", "<=", 1.0),
    ),
}

#: Per group: the msgbus contenders, and the baselines by role.
GROUPS: dict[str, dict[str, Any]] = {
    "fake": {"msgbus": ("msgbus-fake",), "baselines": {"oslo": "oslo-fake"}},
    "rabbit": {"msgbus": ("msgbus-rabbit", "msgbus-rabbit-public", "msgbus-pika"),
               "baselines": {"oslo": "oslo-rabbit", "raw": "raw-pika", "kombu": "raw-kombu"}},
    "async": {"msgbus": ("msgbus-async-rabbit",),
              "baselines": {"faststream": "faststream-rabbit", "aiopika": "aiopika-rabbit",
                            "threaded": "msgbus-rabbit"}},
}


def lower_is_better(key: str) -> bool:
    """Whether a smaller value of metric ``key`` is better (times and CPU; not rates)."""
    return key.endswith(("_ms", "_us"))


def best_of(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """One contender's repeated runs merged: each metric's best value, all errors kept."""
    ok = [run for run in runs if run.get("status") == "ok"]
    if not ok:
        return runs[-1]
    merged = dict(ok[-1])
    merged["metrics"] = {}
    merged["errors"] = {}
    for run in runs:
        merged["errors"].update(run.get("errors", {}))
    keys = {key for run in ok for key in run["metrics"]}
    for key in keys:
        values = [run["metrics"][key] for run in ok
                  if run["metrics"].get(key) is not None
                  and not math.isnan(run["metrics"][key])]
        if values:
            merged["metrics"][key] = min(values) if lower_is_better(key) else max(values)
            if len(values) > 1:
                merged.setdefault("spread", {})[key] = spread(values)
    merged["runs"] = len(runs)
    return merged


def spread(values: list[float]) -> float:
    """How far apart repeated runs of one contender landed on one metric: (largest -
    smallest) / largest, for rates and times alike (0.12: 12%); the machine's noise."""
    low, high = min(values), max(values)
    return (high - low) / high if high > 0 else 0.0


def fmt(value: float | None) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    if abs(value) >= 100:
        return f"{value:,.0f}"
    if abs(value) >= 10:
        return f"{value:.1f}"
    return f"{value:.2f}"


def _value(results: dict[str, Any], name: str, key: str) -> float | None:
    result = results.get(name)
    if not result or result.get("status") != "ok":
        return None
    value = result["metrics"].get(key)
    return None if value is None or math.isnan(value) else float(value)


def _cell(results: dict[str, Any], name: str, key: str) -> str:
    result = results.get(name)
    if result is None:
        return "not run"
    if result.get("status") == NOT_INSTALLED:
        return NOT_INSTALLED
    if result.get("status") != "ok":
        return "error"
    value = _value(results, name, key)
    if value is None and key in _scenario_keys(result):
        return "error"
    return fmt(value)


def _scenario_keys(result: dict[str, Any]) -> set[str]:
    """Metric keys whose scenario failed (so a missing value reads 'error', not '-')."""
    failed = set(result.get("errors", {}))
    by_scenario = {
        "sequential": ("seq_calls_per_s", "seq_p50_ms", "seq_p99_ms", "cpu_per_call_us",
                       "client_cpu_per_call_us", "server_cpu_per_call_us",
                       "broker_cpu_per_call_us"),
        "concurrent_1": ("conc1_calls_per_s",), "concurrent_8": ("conc8_calls_per_s",),
        "concurrent_32": ("conc32_calls_per_s",), "payload_1k": ("p1k_calls_per_s",),
        "payload_64k": ("p64k_calls_per_s",), "payload_1m": ("p1m_calls_per_s",),
        "casts": ("casts_per_s",), "fanout": ("fanout_per_s",),
        "first_call": ("first_call_ms",),
    }
    for n in (1, 100, 1000):
        by_scenario[f"async_{n}"] = tuple(m.key for m in METRICS
                                          if m.key.startswith(f"async{n}_"))
    return {key for scenario in failed for key in by_scenario.get(scenario, ())}


def _table(header: list[str], rows: Iterable[list[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |",
             "|" + "|".join("---" if i == 0 else "---:" for i in range(len(header))) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return lines


def ratio(results: dict[str, Any], name: str, baseline: str, key: str) -> float | None:
    mine, theirs = _value(results, name, key), _value(results, baseline, key)
    if mine is None or not theirs:
        return None
    return mine / theirs


def _ratio_cell(results: dict[str, Any], group: str, name: str, role: str, key: str) -> str:
    baseline = GROUPS[group]["baselines"][role]
    for who in (name, baseline):
        if results.get(who, {}).get("status") == NOT_INSTALLED:
            return f"{who} {NOT_INSTALLED}"
    value = ratio(results, name, baseline, key)
    targets = [t for t in TARGETS[group]
               if t.key == key and t.baseline == role and t.applies(name)]
    if value is None:
        text = "-"
    else:
        text = f"{value:.3g}x"
    for target in targets:
        verdict = "n/a" if value is None else ("ok" if target.met(value) else "MISS")
        text += f" ({target.text()} {verdict})"
    return text


def metric_table(results: dict[str, Any], group: str, names: list[str]) -> list[str]:
    """Values: one row per metric, one column per contender."""
    rows = [[m.label] + [_cell(results, n, m.key) for n in names]
            for m in METRICS if group in m.groups]
    return _table(["metric"] + names, rows)


def ratio_table(results: dict[str, Any], group: str) -> list[str]:
    """msgbus / baseline for each msgbus contender and baseline, with targets."""
    spec = GROUPS[group]
    columns = [(name, role) for name in spec["msgbus"] for role in spec["baselines"]
               if name in results and spec["baselines"][role] in results]
    header = ["metric"] + [f"{name} / {spec['baselines'][role]}" for name, role in columns]
    rows = [[m.label] + [_ratio_cell(results, group, name, role, m.key)
                         for name, role in columns]
            for m in METRICS if group in m.groups]
    return _table(header, rows)


def target_summary(results: dict[str, Any], group: str) -> list[str]:
    """One line per msgbus contender and target: met, missed, or not measurable."""
    spec = GROUPS[group]
    lines = []
    for name in spec["msgbus"]:
        status = results.get(name, {}).get("status")
        if status != "ok":
            reason = results.get(name, {}).get("reason")
            lines.append(f"- {name}: {status or 'not run'}" + (f" ({reason})" if reason else ""))
            continue
        for target in TARGETS[group]:
            if not target.applies(name):
                continue
            baseline = spec["baselines"][target.baseline]
            value = ratio(results, name, baseline, target.key)
            label = next(m.label for m in METRICS if m.key == target.key)
            verdict = ("not measured" if value is None
                       else ("met" if target.met(value) else "MISSED"))
            shown = "-" if value is None else f"{value:.3g}x"
            lines.append(f"- {name}: {label} vs {baseline}: {shown}, target "
                         f"{target.text()}: **{verdict}**")
    return lines


def _base(name: str) -> str:
    """The contender of ``name`` without a baseline revision (``msgbus-rabbit@abc1234``)."""
    return name.partition("@")[0]


#: How much worse than the baseline revision a metric may be before the table flags it.
BASELINE_TOLERANCE = 0.05


def baseline_section(results: dict[str, Any]) -> list[str]:
    """Today's drivers against those of ``--baseline REV`` in the same run: one column per
    pair, each metric's ratio, flagged when more than 5% worse."""
    pairs = [(_base(n), n) for n in results if "@" in n and _base(n) in results]
    if not pairs:
        return []
    revs = sorted({n.partition("@")[2] for _, n in pairs})
    repeated = any(results[name].get("spread") for pair in pairs for name in pair)
    rows = []
    for metric in METRICS:
        cells = []
        for mine, before in pairs:
            value = ratio(results, mine, before, metric.key)
            if value is None:
                cells += ["-", "-"] if repeated else ["-"]
                continue
            shortfall = (value - 1 if lower_is_better(metric.key) else 1 - value)
            noise = max(results[name].get("spread", {}).get(metric.key, 0.0)
                        for name in (mine, before))
            flag = ""
            if shortfall > BASELINE_TOLERANCE:
                flag = " (>5% worse, within the spread)" if shortfall <= noise else \
                    " (>5% worse)"
            cells.append(f"{value:.3g}x{flag}")
            if repeated:
                cells.append(f"{noise:.0%}" if noise else "-")
        if any(cell != "-" for cell in cells):
            rows.append([metric.label] + cells)
    header = ["metric"]
    for mine, before in pairs:
        header.append(f"{mine} / {before}")
        if repeated:
            header.append("spread")
    intro = ("Each msgbus driver contender beside the same contender run with the driver "
             "packages of that revision (`--baseline`); for times and CPU smaller is better.")
    if repeated:
        intro += (" *spread*: how far apart the repeated runs of the same contender landed on "
                  "that row, (largest - smallest) / largest, the larger of the two contenders': "
                  "the machine's noise. A row more than 5% worse by less than its spread is "
                  "marked *within the spread*: a second run may well not show it.")
    return ([f"## Against the drivers at {', '.join(revs)} (same run, same core)", "",
             intro, ""] + _table(header, rows) + [""])


def problems(results: dict[str, Any]) -> list[str]:
    lines = []
    for name, result in results.items():
        if result.get("status") == NOT_INSTALLED:
            lines.append(f"- {name}: not installed: {result.get('reason', '')}")
        elif result.get("status") != "ok":
            lines.append(f"- {name}: ERROR: {result.get('reason', '')}")
        for scenario, error in result.get("errors", {}).items():
            lines.append(f"- {name}: {scenario}: {error}")
    return lines


def render(results: dict[str, Any], info: dict[str, Any] | None = None) -> str:
    """The whole report (Markdown) for the contenders in ``results``."""
    out: list[str] = []
    if info:
        versions = ", ".join(f"{k} {v}" for k, v in info["versions"].items())
        out += [f"- date: {info['date']}; msgbus tree at commit {info.get('revision', '?')}",
                f"- machine: {info['cores']} cores, {info['cpu']}, {info['memory']}, {info['os']}",
                f"- load average (1 min) before the run: {info.get('load', '?')} (other work "
                f"on the machine skews the numbers); each contender run "
                f"{info.get('repeat', 1)} time(s), best value of each metric kept",
                f"- versions: {versions}", ""]
    titles = (("fake", "In-process fake driver (`fake://`), client and server in one process"),
              ("rabbit", "RabbitMQ at 127.0.0.1:5672, client and server(s) in separate processes"),
              ("async", "asyncio clients on RabbitMQ: N tasks in one process, each awaiting "
                        "calls one after the other (msgbus-rabbit and msgbus-pika: call_async "
                        "against the threaded server)"))
    for group, title in titles:
        if group == "async":
            names = [n for base in ASYNC_NAMES for n in results if _base(n) == base
                     and (base in ASYNC_ONLY or any(k.startswith("async")
                                                    for k in results[n].get("metrics", {})))]
        else:
            names = [n for n, r in results.items()
                     if r.get("group") == group and _base(n) not in ASYNC_ONLY]
        if not names:
            continue
        out += [f"## {title}", ""] + metric_table(results, group, names) + [""]
        out += ["### Ratios (msgbus value / baseline value)", ""]
        out += ratio_table(results, group) + [""]
        out += ["### Targets", ""] + target_summary(results, group) + [""]
    out += baseline_section(results)
    issues = problems(results)
    if issues:
        out += ["## Not installed, errors", ""] + issues + [""]
    return "\n".join(out)
