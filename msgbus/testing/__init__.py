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

RabbitMQ helpers for tests that need real brokers: ``private_rabbit_node`` (one throw-away
node, :mod:`msgbus.testing.rabbitmq`) and ``rabbit_cluster`` (a throw-away 3-node cluster whose
nodes a test can kill and bring back, :mod:`msgbus.testing.rabbit_cluster`).
"""

from msgbus.testing.rabbit_cluster import RabbitCluster, rabbit_cluster
from msgbus.testing.rabbitmq import RabbitNode, private_rabbit_node

__all__ = ["RabbitCluster", "RabbitNode", "private_rabbit_node", "rabbit_cluster"]
