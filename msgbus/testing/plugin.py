"""The pytest plugin msgbus installs (entry point ``pytest11``): makes the suite's fixtures
available to any test that defines ``transport_url``."""

from msgbus.testing.fixtures import bus, recorder  # noqa: F401
