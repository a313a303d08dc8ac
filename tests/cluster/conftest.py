"""Fixtures of the cluster tests: one throw-away 3-node RabbitMQ cluster for the whole session.

The cluster (:func:`msgbus.testing.rabbit_cluster.rabbit_cluster`) boots on first use and is
removed at the end of the session, also when a test fails or the run is interrupted. Both AMQP
drivers and oslo.messaging share it; the shared broker on 5672 is never touched.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from msgbus.testing.rabbit_cluster import RabbitCluster, rabbit_cluster


@pytest.fixture(scope="session")
def cluster() -> Iterator[RabbitCluster]:
    with rabbit_cluster() as c:
        yield c


@pytest.fixture
def healthy(cluster: RabbitCluster) -> Iterator[RabbitCluster]:
    """The cluster, with every node running before and after the test (a node a failed test
    left dead is brought back)."""
    for node in cluster.nodes:
        if not node.alive():
            cluster.revive(node)
    yield cluster
    for node in cluster.nodes:
        if not node.alive():
            cluster.revive(node)
