"""The pytest plugin msgbus installs (entry point ``pytest11``).

It registers the ``msgbus_``-prefixed fixtures (:mod:`msgbus.testing.fixtures`, documented in
doc/testing.md) and the ``--msgbus-url`` option that runs the tests using them on a real broker.
The conformance suite's own ``bus`` and ``recorder`` fixtures are made visible only in test
modules that import the suite's scenario classes, so no other project's tests see a fixture named
``bus``.
"""

from __future__ import annotations

import types
from typing import Any

import pytest

from msgbus.testing import fixtures
from msgbus.testing.fixtures import (msgbus_bus, msgbus_notification_transport,  # noqa: F401
                                     msgbus_recorder, msgbus_transport, msgbus_url)

#: The package whose test classes use the suite's fixtures.
SUITE_PACKAGE = "msgbus.testing.suite"
_SUITE_FIXTURES_ADDED = pytest.StashKey[bool]()


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("msgbus")
    group.addoption("--msgbus-url", dest="msgbus_url", default=None, metavar="URL",
                    help="transport URL of the msgbus_* fixtures (default fake://), for example "
                         "rabbit://guest:guest@127.0.0.1:5672/ to run fake:// tests on a broker")
    parser.addini("msgbus_url", "transport URL of the msgbus_* fixtures (default fake://)",
                  default="")


def pytest_configure(config: pytest.Config) -> None:
    url = config.getoption("msgbus_url", None)
    if url:
        from msgbus.driver import loader
        from msgbus.exceptions import DriverLoadFailure
        try:
            loader.load_driver_class(url.split(":", 1)[0])
        except DriverLoadFailure as exc:
            raise pytest.UsageError(f"--msgbus-url: {exc}") from exc


def _is_suite_class(obj: Any) -> bool:
    return isinstance(obj, type) and (obj.__module__ == SUITE_PACKAGE or
                                      obj.__module__.startswith(SUITE_PACKAGE + "."))


@pytest.hookimpl(tryfirst=True)
def pytest_pycollect_makeitem(collector: pytest.Collector, name: str, obj: Any) -> None:
    """When a module holds a suite scenario class, make the suite's fixtures visible in that
    module (once), before the class's tests are collected. Collection itself is unchanged."""
    if not _is_suite_class(obj) or not isinstance(collector, pytest.Module):
        return
    if collector.stash.get(_SUITE_FIXTURES_ADDED, False):
        return
    collector.stash[_SUITE_FIXTURES_ADDED] = True
    holder = types.ModuleType(f"{SUITE_PACKAGE}.fixtures_for_{collector.nodeid}")
    for fixture_name in ("bus", "recorder"):
        if not hasattr(collector.obj, fixture_name):  # a module's own fixture of that name wins
            setattr(holder, fixture_name, getattr(fixtures, fixture_name))
    # pytest has no public call for this: _fixturemanager.parsefactories is what pytest itself
    # and plugins such as pytest-asyncio use to register fixtures for one node
    collector.session._fixturemanager.parsefactories(holder, collector.nodeid)
