"""The notification scenarios of the conformance suite on the in-process fake:// driver."""

import pytest

from msgbus.testing.suite.notifications import *  # noqa: F401,F403


@pytest.fixture(scope="session")
def transport_url() -> str:
    return "fake://"
