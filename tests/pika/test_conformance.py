"""The shared msgbus conformance suite on ``pika://`` (msgbus-pika) and the real broker."""

import pytest

from msgbus.testing.suite import *  # noqa: F401,F403

pytestmark = pytest.mark.timeout(120)
