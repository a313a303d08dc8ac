"""Testing support shipped with msgbus: the driver conformance suite and its fixtures.

A driver's test module runs the whole suite against its broker::

    import pytest
    from msgbus.testing.suite import *  # noqa: F401,F403

    @pytest.fixture(scope="session")
    def transport_url():
        return "mydriver://localhost/"

    @pytest.fixture(scope="session")
    def fault_injector():  # for the fault scenarios; see msgbus.testing.fault_injector
        ...

Scenarios a driver cannot honour are declared by its ``capabilities`` and show up as xfail with
the missing capability named, never as silent skips. A driver that declares RECONNECT must
provide ``fault_injector`` (AMQP drivers on RabbitMQ: :mod:`msgbus.testing.rabbit_faults`).
"""
