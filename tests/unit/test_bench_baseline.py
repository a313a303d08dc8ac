"""The benchmarks' ``--baseline REV``: NAME@REV contenders and the today/REV table."""

import pathlib
import subprocess

from benchmarks import baseline, contenders, report

ROOT = pathlib.Path(__file__).resolve().parents[2]


def _result(name: str, metrics: dict) -> dict:
    return {"contender": name, "group": "rabbit", "status": "ok", "metrics": metrics,
            "errors": {}}


def test_driver_contenders_get_a_baseline_twin_run_with_the_old_driver_first() -> None:
    names = baseline.with_baselines(["msgbus-rabbit", "oslo-rabbit", "msgbus-pika"], "abc1234")
    assert names == ["msgbus-rabbit", "msgbus-rabbit@abc1234", "oslo-rabbit", "msgbus-pika",
                     "msgbus-pika@abc1234"]
    drivers = {"msgbus-kombu": pathlib.Path("/x/kombu"), "msgbus-pika": pathlib.Path("/x/pika")}
    assert baseline.python_path("msgbus-pika@abc1234", drivers) == "/x/pika"
    assert baseline.python_path("msgbus-rabbit", drivers) is None
    twin = contenders.get("msgbus-rabbit-public@abc1234")
    assert twin.name == "msgbus-rabbit-public@abc1234" and "fast_path=false" in twin.url
    assert contenders.group_of("msgbus-pika@abc1234") == "rabbit"


def test_table_flags_only_rows_more_than_five_percent_worse() -> None:
    results = {
        "msgbus-rabbit": _result("msgbus-rabbit", {"seq_calls_per_s": 960.0,
                                                   "casts_per_s": 900.0,
                                                   "cpu_per_call_us": 420.0}),
        "msgbus-rabbit@abc1234": _result("msgbus-rabbit@abc1234",
                                         {"seq_calls_per_s": 1000.0, "casts_per_s": 1000.0,
                                          "cpu_per_call_us": 390.0}),
    }
    text = report.render(results)
    section = text[text.index("## Against the drivers at abc1234"):]
    assert "| sequential calls/s | 0.96x |" in section  # 4% slower: within the tolerance
    assert "| casts/s, until all processed | 0.9x (>5% worse) |" in section
    assert "| CPU per sequential call, client+server (us) | 1.08x (>5% worse) |" in section
    assert "msgbus-rabbit@abc1234" in text.split("### Ratios")[0]  # its own column too


def test_repeated_runs_show_their_spread_beside_each_ratio() -> None:
    """With --repeat, each row shows how far the runs of one contender landed apart, and a
    flagged row whose shortfall is smaller than that is marked as within it."""
    def runs(name: str, *values: tuple[float, float]) -> dict:
        return report.best_of([_result(name, {"seq_calls_per_s": seq, "casts_per_s": casts})
                               for seq, casts in values])

    assert report.spread([900.0, 1000.0]) == 0.1
    results = {
        "msgbus-rabbit": runs("msgbus-rabbit", (850.0, 800.0), (800.0, 790.0)),
        "msgbus-rabbit@abc1234": runs("msgbus-rabbit@abc1234", (1000.0, 1000.0),
                                      (990.0, 995.0)),
    }
    assert results["msgbus-rabbit"]["metrics"]["seq_calls_per_s"] == 850.0  # the best kept
    section = report.render(results).split("## Against the drivers at abc1234")[1]
    assert "| metric | msgbus-rabbit / msgbus-rabbit@abc1234 | spread |" in section
    # 15% slower, runs 6% apart: a shortfall beyond the noise
    assert "| sequential calls/s | 0.85x (>5% worse) | 6% |" in section
    # 20% slower: flagged plainly (each contender's runs were close)
    assert "| casts/s, until all processed | 0.8x (>5% worse) | 1% |" in section

    noisy = {
        "msgbus-rabbit": runs("msgbus-rabbit", (930.0, 1.0), (700.0, 1.0)),
        "msgbus-rabbit@abc1234": runs("msgbus-rabbit@abc1234", (1000.0, 1.0), (990.0, 1.0)),
    }
    section = report.render(noisy).split("## Against the drivers at abc1234")[1]
    assert "| sequential calls/s | 0.93x (>5% worse, within the spread) | 25% |" in section


def test_export_takes_the_driver_packages_of_the_revision(tmp_path: pathlib.Path) -> None:
    head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, text=True,
                          capture_output=True, check=True).stdout.strip()
    assert baseline.resolve(ROOT, "HEAD") == head
    drivers = baseline.export_drivers(ROOT, head, tmp_path)
    assert (drivers["msgbus-kombu"] / "msgbus_kombu" / "driver.py").is_file()
    assert (drivers["msgbus-pika"] / "msgbus_pika" / "driver.py").is_file()


def test_public_path_is_judged_by_issue_9s_targets_only() -> None:
    """msgbus-rabbit-public gets its own targets (2.5x oslo sequential, 3x at 8 threads) and a
    ratio against raw kombu; the default paths' targets are not applied to it."""
    results = {
        "msgbus-rabbit-public": _result("msgbus-rabbit-public", {"seq_calls_per_s": 1000.0,
                                                                 "conc8_calls_per_s": 1300.0}),
        "oslo-rabbit": _result("oslo-rabbit", {"seq_calls_per_s": 500.0,
                                               "conc8_calls_per_s": 650.0}),
        "raw-kombu": _result("raw-kombu", {"seq_calls_per_s": 1100.0}),
    }
    text = report.render(results)
    assert ("msgbus-rabbit-public: sequential calls/s vs oslo-rabbit: 2x, target >=2.5x: "
            "**MISSED**") in text
    assert "msgbus-rabbit-public: calls/s, 8 client threads vs oslo-rabbit: 2x, target >=3x" \
        in text
    assert "target >=2x" not in text and "vs raw-pika" not in text
    assert "| sequential calls/s | 2x (>=2.5x MISS) | 0.909x |" in text
