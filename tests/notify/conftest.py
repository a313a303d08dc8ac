"""Fixtures of the notification unit tests (all on fake://)."""

from __future__ import annotations

from typing import Iterator

import pytest

import msgbus.fake
from msgbus.notify import get_notification_transport
from msgbus.transport import Transport


@pytest.fixture
def transport() -> Iterator[Transport]:
    """A notification transport on a fresh fake broker."""
    t = get_notification_transport(url="fake://")
    try:
        yield t
    finally:
        t.cleanup()
        msgbus.fake.reset()
