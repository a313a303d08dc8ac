"""Fixtures of the interop tests: msgbus on every driver and oslo.messaging from PyPI, on the
shared RabbitMQ at 127.0.0.1:5672 (guest/guest). A missing broker fails these tests (no skip).
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from msgbus.testing import rabbitmq

from .helpers import HOST, PORT, TOPIC_PREFIX, Oslo


@pytest.fixture(scope="session", autouse=True)
def broker() -> Iterator[None]:
    """The broker must answer; afterwards the queues of these tests' topics are deleted."""
    rabbitmq.wait_for_broker(HOST, PORT, timeout=15)
    yield
    queues = rabbitmq.list_queues()
    for name, info in queues.items():
        if name.startswith(TOPIC_PREFIX) and not info.get("consumers"):
            rabbitmq.delete_queue(name)


@pytest.fixture
def oslo() -> Iterator[Oslo]:
    """oslo.messaging transports and servers, cleaned up after the test."""
    side = Oslo()
    try:
        yield side
    finally:
        side.close()
