"""Fixtures of the tests of the ``pika://`` (msgbus-pika) driver.

They run against the real broker at 127.0.0.1:5672 (guest/guest, vhost ``/``). A missing broker
fails the tests (it never skips them): start it with ``rabbitmq-server -detached``.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest

from msgbus.testing import rabbitmq

from pika_helpers import HOST, PIKA_URL, PORT, Closer, LogCapture


@pytest.fixture(scope="session", autouse=True)
def broker() -> None:
    """The shared broker must answer AMQP; otherwise every test here fails (no skip)."""
    rabbitmq.wait_for_broker(HOST, PORT, timeout=15)


@pytest.fixture(scope="session")
def transport_url() -> str:
    return PIKA_URL


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
    handler = LogCapture()
    root = logging.getLogger()
    old_level = root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    try:
        yield handler
    finally:
        root.removeHandler(handler)
        root.setLevel(old_level)
