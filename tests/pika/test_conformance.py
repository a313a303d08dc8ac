"""The shared msgbus conformance suite on ``pika://`` (msgbus-pika) and the real broker.

The fault scenarios run on the session's private node (conftest ``pika_faults``), never on the
shared broker, with the driver's default options; like the rest of the suite they run once on
the tuned FastSelectConnection and once on pika's plain SelectConnection (``fast_path=false``,
conftest ``transport_url``).
"""

import pytest

from msgbus.testing.rabbit_faults import RabbitFaultInjector
from msgbus.testing.suite import *  # noqa: F401,F403

pytestmark = pytest.mark.timeout(120)


class _OnPath:
    """The session's fault injector, its URL carrying the query of the variant under test."""

    def __init__(self, injector: RabbitFaultInjector, query: str) -> None:
        self._injector = injector
        self.url = injector.url + query

    def __getattr__(self, name: str) -> object:
        return getattr(self._injector, name)


@pytest.fixture
def fault_injector(pika_faults: RabbitFaultInjector, transport_url: str) -> object:
    _, mark, query = transport_url.partition("?")
    return _OnPath(pika_faults, mark + query) if query else pika_faults
