"""The pytest plugin: msgbus_* fixtures with no setup on fake://, --msgbus-url, no ``bus``
fixture in other projects' tests, the suite's fixtures where the suite is imported, and one
message when the driver under test is not installed."""

from __future__ import annotations

import pytest

pytest_plugins = ["pytester"]

USER_TESTS = '''
import msgbus


class Calc:
    def add(self, ctxt, a, b):
        return a + b


def test_call_on_the_bus(msgbus_bus, msgbus_recorder):
    topic = msgbus_bus.topic("calc")
    msgbus_bus.server(topic, [Calc()])
    assert msgbus_bus.client(topic).call({}, "add", a=2, b=3) == 5


def test_transport(msgbus_transport, msgbus_url):
    assert str(msgbus_transport.url).startswith(msgbus_url.split(":")[0])
    server = msgbus.get_rpc_server(msgbus_transport, msgbus.Target(topic="t", server="s"),
                                   [Calc()])
    server.start()
    try:
        client = msgbus.get_rpc_client(msgbus_transport, msgbus.Target(topic="t"), timeout=10)
        assert client.call({}, "add", a=1, b=1) == 2
    finally:
        server.stop()
        server.wait()


def test_recorder(msgbus_recorder):
    msgbus_recorder.add(1)
    assert msgbus_recorder.wait_count(1) == [1]


def test_url(msgbus_url, request):
    print("URL=" + msgbus_url)
'''


def test_the_msgbus_fixtures_need_no_setup_on_fake(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_user=USER_TESTS)
    result = pytester.runpytest("-p", "no:cacheprovider", "-s")
    result.assert_outcomes(passed=4)
    result.stdout.fnmatch_lines(["*URL=fake://*"])


def test_msgbus_url_option_reaches_the_fixtures(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_user=USER_TESTS)
    result = pytester.runpytest("-p", "no:cacheprovider", "-s", "--msgbus-url", "fake://other/")
    result.assert_outcomes(passed=4)
    result.stdout.fnmatch_lines(["*URL=fake://other/*"])


def test_msgbus_url_ini_option(pytester: pytest.Pytester) -> None:
    pytester.makeini("[pytest]\nmsgbus_url = fake://from-ini/\n")
    pytester.makepyfile(test_user=USER_TESTS)
    result = pytester.runpytest("-p", "no:cacheprovider", "-s")
    result.assert_outcomes(passed=4)
    result.stdout.fnmatch_lines(["*URL=fake://from-ini/*"])


def test_a_msgbus_url_without_its_driver_is_a_usage_error(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_user=USER_TESTS)
    result = pytester.runpytest("-p", "no:cacheprovider", "--msgbus-url", "nosuch://host/")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*--msgbus-url*no transport driver named 'nosuch'*"])


def test_no_fixture_named_bus_outside_the_suite(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_user='''
def test_wants_bus(bus):
    pass


def test_wants_recorder(recorder):
    pass
''')
    result = pytester.runpytest("-p", "no:cacheprovider")
    result.assert_outcomes(errors=2)
    result.stdout.fnmatch_lines(["*fixture 'bus' not found*"])
    assert "available fixtures" in result.stdout.str()
    assert "msgbus_bus" in result.stdout.str()


def test_a_third_party_module_gets_the_suite_fixtures_from_the_import(
        pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_thirdparty='''
import pytest
from msgbus.testing.suite import *  # noqa: F401,F403


@pytest.fixture(scope="session")
def transport_url():
    return "fake://"
''', test_other='''
def test_no_bus_here(bus):
    pass
''')
    result = pytester.runpytest("-p", "no:cacheprovider", "-k",
                                "TestCallSemantics or TestNotificationDelivery or no_bus_here")
    outcomes = result.parseoutcomes()
    assert outcomes.get("passed", 0) >= 5, result.stdout.str()
    assert outcomes.get("failed", 0) == 0, result.stdout.str()
    # the suite's fixtures reach the module that imports it, not its neighbour
    assert outcomes.get("errors", outcomes.get("error", 0)) == 1, result.stdout.str()


def test_a_module_may_keep_its_own_recorder_fixture(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_thirdparty='''
import pytest
from msgbus.testing.suite.rpc import *  # noqa: F401,F403
from msgbus.testing.fixtures import Recorder


class Mine(Recorder):
    pass


@pytest.fixture
def recorder():
    return Mine()


@pytest.fixture(scope="session")
def transport_url():
    return "fake://"


def test_mine(recorder):
    assert isinstance(recorder, Mine)
''')
    result = pytester.runpytest("-p", "no:cacheprovider", "-k", "test_mine")
    result.assert_outcomes(passed=1)


def test_the_suite_on_a_driver_that_is_not_installed_gives_one_message(
        pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_thirdparty='''
import pytest
from msgbus.testing.suite import *  # noqa: F401,F403


@pytest.fixture(scope="session")
def transport_url():
    return "nosuchdriver://u:secret@h/"
''')
    result = pytester.runpytest("-p", "no:cacheprovider")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    out = result.stdout.str()
    assert out.count("no transport driver named 'nosuchdriver'") == 1, out
    outcomes = result.parseoutcomes()
    assert outcomes.get("failed", 0) == 0 and outcomes.get("errors", 0) == 0, out
    assert "secret" not in out
