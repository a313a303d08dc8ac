"""The suite fails the drivers it should, by the scenario named for the fault, and gates each
scenario by exactly the capability it needs.

Each test runs part of the suite in-process (pytest's ``pytester``) against a driver of
``broken_drivers`` registered under a test-only scheme, and checks every scenario's outcome.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from broken_drivers import register

import msgbus.fake

pytest_plugins = ["pytester"]

DRIVER_LEVEL = ["test_ack_reaches_the_broker", "test_requeue_gives_the_message_back",
                "test_listen_returns_only_once_bound",
                "test_listen_for_notifications_returns_only_once_bound"]
RECOVERY = ["test_calls_and_casts_through_three_connection_drops",
            "test_calls_and_casts_through_a_broker_restart",
            "test_calls_end_by_their_deadline_on_a_frozen_link_and_recover_after_it"]
DEADLINES = ["test_call_to_a_down_broker_times_out_in_time",
             "test_server_start_against_a_down_broker_fails_within_listen_timeout"]
USE_AFTER_CLEANUP = ["test_call_after_cleanup_raises_at_once",
                     "test_cast_after_cleanup_raises_at_once",
                     "test_notify_after_cleanup_raises_at_once",
                     "test_server_start_after_cleanup_raises_at_once"]
RPC_STORE = "test_cast_to_topic_waits_for_a_restarted_server"
NOTIFY_STORE = ["test_sent_before_the_listener_starts", "test_kept_while_the_listener_is_stopped"]


@pytest.fixture
def drivers(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    register(monkeypatch)
    try:
        yield
    finally:
        msgbus.fake.reset()


def run_suite(pytester: pytest.Pytester, module: str, scheme: str, *args: str,
              extra: str = "") -> dict[str, tuple[str, str]]:
    """Run the scenarios of ``module`` on ``scheme://``; ``{test name: (outcome, message)}``
    with outcome passed, failed, xfailed or skipped."""
    pytester.makepyfile(test_inner=f'''
import pytest
from {module} import *  # noqa: F401,F403


@pytest.fixture(scope="session")
def transport_url():
    return "{scheme}://"
{extra}
''')
    recorder = pytester.inline_run("-p", "no:cacheprovider", *args)
    outcomes: dict[str, tuple[str, str]] = {}
    for report in recorder.getreports("pytest_runtest_logreport"):
        name = report.nodeid.rsplit("::", 1)[-1]
        if report.failed:
            outcome = "failed"
        elif report.skipped:
            outcome = "xfailed" if hasattr(report, "wasxfail") else "skipped"
        elif report.when == "call":
            outcome = "passed"
        else:
            continue
        if outcomes.get(name, ("passed", ""))[0] == "passed":
            text = report.wasxfail if outcome == "xfailed" else report.longreprtext
            outcomes[name] = (outcome, text)
    return outcomes


def by_outcome(outcomes: dict[str, tuple[str, str]]) -> dict[str, list[str]]:
    grouped: dict[str, list[str]] = {}
    for name, (outcome, _) in sorted(outcomes.items()):
        grouped.setdefault(outcome, []).append(name)
    return grouped


def test_a_correct_driver_passes_every_driver_level_scenario(pytester: pytest.Pytester,
                                                             drivers: None) -> None:
    outcomes = run_suite(pytester, "msgbus.testing.suite.driverlevel", "settling")
    assert by_outcome(outcomes) == {"passed": sorted(DRIVER_LEVEL)}, outcomes


@pytest.mark.parametrize("scheme, scenario, message", [
    ("noopack", "test_ack_reaches_the_broker", "ack() did not reach the broker"),
    ("nooprequeue", "test_requeue_gives_the_message_back",
     "requeue() did not give the message back"),
    ("earlylisten", "test_listen_returns_only_once_bound",
     "listen() returned before its queues were bound"),
])
def test_a_broken_driver_fails_exactly_the_named_scenario(pytester: pytest.Pytester,
                                                          drivers: None, scheme: str,
                                                          scenario: str, message: str) -> None:
    outcomes = run_suite(pytester, "msgbus.testing.suite.driverlevel", scheme)
    assert by_outcome(outcomes) == {
        "failed": [scenario], "passed": sorted(set(DRIVER_LEVEL) - {scenario})}, outcomes
    assert message in outcomes[scenario][1], outcomes[scenario][1]


def test_fault_scenarios_are_xfail_for_a_driver_without_reconnect(pytester: pytest.Pytester,
                                                                  drivers: None) -> None:
    outcomes = run_suite(pytester, "msgbus.testing.suite.faults", "fake")
    assert by_outcome(outcomes) == {"xfailed": sorted(RECOVERY + DEADLINES),
                                    "passed": sorted(USE_AFTER_CLEANUP)}, outcomes
    for name in RECOVERY:
        assert "does not declare capability 'reconnect'" in outcomes[name][1]
    for name in DEADLINES:
        assert "provides no `fault_injector` fixture" in outcomes[name][1]


def test_fault_scenarios_fail_when_reconnect_is_declared_without_an_injector(
        pytester: pytest.Pytester, drivers: None) -> None:
    outcomes = run_suite(pytester, "msgbus.testing.suite.faults", "reconnecting")
    assert by_outcome(outcomes) == {"failed": sorted(RECOVERY + DEADLINES),
                                    "passed": sorted(USE_AFTER_CLEANUP)}, outcomes
    for name in RECOVERY + DEADLINES:
        assert "declares capability 'reconnect', but its test module provides no " \
               "`fault_injector` fixture" in outcomes[name][1]


def test_a_fault_injector_of_the_wrong_kind_is_a_clear_failure(pytester: pytest.Pytester,
                                                               drivers: None) -> None:
    extra = '''

@pytest.fixture
def fault_injector():
    return object()
'''
    outcomes = run_suite(pytester, "msgbus.testing.suite.faults", "reconnecting",
                         "-k", "BrokerIsDown", extra=extra)
    assert by_outcome(outcomes) == {"failed": sorted(DEADLINES)}, outcomes
    for name in DEADLINES:
        assert "does not have what msgbus.testing.fault_injector.FaultInjector has" in \
            outcomes[name][1]


def test_the_old_store_and_forward_flag_means_both_kinds(pytester: pytest.Pytester,
                                                         drivers: None) -> None:
    outcomes = run_suite(pytester, "msgbus.testing.suite", "oldsaf", "-k",
                         f"{RPC_STORE} or TestNotificationStoreAndForward")
    assert by_outcome(outcomes) == {"passed": sorted([RPC_STORE, *NOTIFY_STORE])}, outcomes


def test_store_and_forward_of_notifications_only(pytester: pytest.Pytester,
                                                 drivers: None) -> None:
    """A driver with durable notifications and RPC without store-and-forward can declare so
    honestly: the RPC scenario is a visible xfail, the notification ones run."""
    outcomes = run_suite(pytester, "msgbus.testing.suite", "notifysaf", "-k",
                         f"{RPC_STORE} or TestNotificationStoreAndForward")
    assert by_outcome(outcomes) == {"xfailed": [RPC_STORE], "passed": sorted(NOTIFY_STORE)}, \
        outcomes
    assert "does not declare capability 'rpc_store_and_forward'" in outcomes[RPC_STORE][1]
