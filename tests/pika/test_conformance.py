"""The shared msgbus conformance suite on ``pika://`` (msgbus-pika) and the real broker.

The fault scenarios run on the session's private node (conftest ``pika_faults``), never on the
shared broker, with the driver's default options.
"""

import pytest

from msgbus.testing.rabbit_faults import RabbitFaultInjector
from msgbus.testing.suite import *  # noqa: F401,F403

pytestmark = pytest.mark.timeout(120)


@pytest.fixture
def fault_injector(pika_faults: RabbitFaultInjector) -> RabbitFaultInjector:
    return pika_faults
