"""The benchmark report's asyncio section: its contenders, its ratios and issue 11's targets."""

from benchmarks import contenders, report, scenarios


def _result(name: str, metrics: dict) -> dict:
    return {"contender": name, "group": "rabbit", "status": "ok", "metrics": metrics,
            "errors": {}}


def test_asyncio_section_shows_ratios_and_targets() -> None:
    results = {
        "msgbus-rabbit": _result("msgbus-rabbit", {"seq_calls_per_s": 900.0,
                                                   "async100_calls_per_s": 2000.0,
                                                   "async100_cpu_per_call_us": 300.0}),
        "msgbus-async-rabbit": _result("msgbus-async-rabbit", {"async100_calls_per_s": 4000.0,
                                                               "async100_cpu_per_call_us": 250.0}),
        "faststream-rabbit": _result("faststream-rabbit", {"async100_calls_per_s": 400.0}),
        "aiopika-rabbit": {"contender": "aiopika-rabbit", "group": "rabbit",
                           "status": report.NOT_INSTALLED, "reason": "aio-pika missing"},
    }
    text = report.render(results)
    section = text[text.index("## asyncio clients"):]
    rabbit = text[:text.index("## asyncio clients")]
    assert "msgbus-async-rabbit" not in rabbit.split("### Ratios")[0]  # async-only: own table
    assert "| asyncio calls/s, 100 in flight | 4,000 | 2,000 | 400 | not installed |" in section
    assert ("asyncio calls/s, 100 in flight vs faststream-rabbit: 10x, target >=10x: **met**"
            in section)
    assert "vs msgbus-rabbit: 0.833x, target <=1x: **met**" in section


def test_async_contenders_are_known_and_run_only_the_asyncio_scenarios() -> None:
    for name in ("msgbus-async-rabbit", "faststream-rabbit", "aiopika-rabbit"):
        contender = contenders.get(name)
        assert contender.name == name
        assert [n for n, _ in scenarios.for_contender(contender)] == \
            ["async_1000", "async_100", "async_1"]
    threaded = scenarios.for_contender(contenders.get("msgbus-rabbit"))
    assert [n for n, _ in threaded][-3:] == ["async_1000", "async_100", "async_1"]
    assert "async_1" not in [n for n, _ in scenarios.for_contender(contenders.get("msgbus-fake"))]
