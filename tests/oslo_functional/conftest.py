"""Runs oslo.messaging's functional tests per driver: environment, exclusions, the run's vhost.

Each ``test_on_<driver>.py`` module names its driver (``OSLO_DRIVER``); every test of it runs
with the variables oslo's tox sets for a functional run (:func:`.drivers.environment`). Tests in
:mod:`.exclusions` are marked xfail, not run, with their reason.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator

import pytest

from msgbus.testing import rabbitmq

from .drivers import environment
from .exclusions import reason_for
from .ported import ORIGIN, OUTCOME, RELAY
from .subprocess_runs import SubprocessRuns
from .vhost import private_vhost


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        origin = getattr(getattr(item, "cls", None), ORIGIN, None)
        if origin is None:
            continue
        reason = reason_for(origin[0], origin[1], item.name)
        if reason is not None:
            item.add_marker(pytest.mark.xfail(run=False, strict=True, reason=reason))


@pytest.fixture(scope="session")
def oslo_vhost() -> Iterator[str]:
    """This run's vhost on the shared broker (:mod:`.vhost`); fails, never skips, when the
    broker does not answer."""
    rabbitmq.wait_for_broker("127.0.0.1", 5672, timeout=15)
    with private_vhost() as name:
        yield name


@pytest.fixture(scope="session")
def _oslo_workers() -> Iterator[SubprocessRuns]:
    runs = SubprocessRuns()
    yield runs
    runs.close()


def _is_relay(cls: type | None) -> bool:
    return bool(getattr(cls, RELAY, False))


@pytest.fixture(autouse=True)
def _oslo_environment(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch,
                      _oslo_workers: SubprocessRuns) -> Iterator[None]:
    """The driver's URLs in the variables oslo's tests read, for the duration of one test.

    The first test of a module starts the workers of every selected relay
    (:data:`.ported.RELAY`) of that module; a relay gets its worker's outcome.
    """
    driver = getattr(request.module, "OSLO_DRIVER", None)
    if driver is None:  # not one of oslo's tests
        yield
        return
    variables = environment(driver, request.getfixturevalue("oslo_vhost"))
    for name, value in variables.items():
        monkeypatch.setenv(name, value)
    relays = [(item.cls.__name__, item.name) for item in request.session.items
              if isinstance(item, pytest.Function) and item.module is request.module
              and _is_relay(item.cls)]
    _oslo_workers.start(driver, variables, relays)
    if _is_relay(request.cls):
        setattr(request.instance, OUTCOME, functools.partial(
            _oslo_workers.outcome, driver, request.cls.__name__, request.node.name))
    yield
