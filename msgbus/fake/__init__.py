"""The in-process ``fake://`` transport: a real driver for tests and demos, no broker needed."""

from msgbus.fake.broker import REGISTRY, FakeBroker
from msgbus.fake.driver import FakeDriver

__all__ = ["FakeDriver", "FakeBroker", "reset", "broker_for"]


def reset() -> None:
    """Forget every fake broker and its queues, so that nothing leaks from one test to the next."""
    REGISTRY.reset()


def broker_for(transport) -> FakeBroker:  # noqa: ANN001 - any Transport on fake://
    """The fake broker behind a ``fake://`` transport, for inspecting queues in tests."""
    return transport.driver.broker
