"""Fixtures of the RabbitMQ tests of the ``rabbit://`` (msgbus-kombu) driver.

They run against the real broker at 127.0.0.1:5672 (guest/guest, vhost ``/``). A missing broker
fails the tests (it never skips them): start it with ``rabbitmq-server -detached``.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from msgbus.testing import rabbitmq
from msgbus.testing.fixtures import SUITE_TOPIC_PREFIX
from msgbus.testing.harness import capture_logs
from msgbus.testing.rabbit_faults import RabbitFaultInjector, rabbit_fault_injector

from .helpers import HOST, PORT, RABBIT_URL, TOPIC_PREFIX, Closer, LogCapture, delete_entities


@pytest.fixture(scope="session", autouse=True)
def broker() -> Iterator[None]:
    """The shared broker must answer AMQP (otherwise every test here fails, no skip).

    Afterwards the shared queues these tests and the conformance suite made (topics
    ``msgbus-kombu-*`` and ``msgbus-test-*``, which outlive their servers by design) are deleted,
    unless something still consumes them.
    """
    rabbitmq.wait_for_broker(HOST, PORT, timeout=15)
    yield
    leftovers = [name for name, info in rabbitmq.list_queues().items()
                 if name.startswith((TOPIC_PREFIX, SUITE_TOPIC_PREFIX))
                 and not info.get("consumers")]
    delete_entities(leftovers)


#: The driver's two paths: its fast path (the default) and py-amqp's public API alone.
PATHS = {"fast": "", "public": "?fast_path=false"}


@pytest.fixture(scope="session", params=list(PATHS))
def transport_url(request: pytest.FixtureRequest) -> str:
    """The shared broker's URL, once per path of the driver (the conformance suite runs on
    both)."""
    return RABBIT_URL + PATHS[request.param]


@pytest.fixture(scope="session")
def rabbit_faults() -> Iterator[RabbitFaultInjector]:
    """The conformance suite's fault injector for ``rabbit://``: one private node for the whole
    session (started on first use), behind a proxy; every fault scenario leaves it running."""
    with rabbit_fault_injector("rabbit") as injector:
        yield injector


@pytest.fixture
def closer() -> Iterator[Closer]:
    """Stops the servers and closes the transports a test made (reverse order)."""
    c = Closer()
    try:
        yield c
    finally:
        c.close()


@pytest.fixture
def logs() -> Iterator[LogCapture]:
    """Every log record emitted during the test."""
    with capture_logs() as handler:
        yield handler
