"""A node of a 3-node cluster is SIGKILLed under load (8 callers, a stream of casts, a stream of
notifications), on both AMQP drivers, with a three-host URL and default options but quorum
queues: once the node leading the topic queue, once the node the clients are connected to.

Held: every cast that returned and every notification is handled exactly once; no call ends
past its deadline, and only calls in flight at the kill may time out (their reply queue died
with the clients' node); the first call, cast and notification issued after the kill get
through within 1 s; the node rejoins and every quorum queue ends with all members online.
See :mod:`.node_loss` for the placement and the measurements.
"""

from __future__ import annotations

import pytest

from msgbus.testing.rabbit_cluster import RabbitCluster

from . import node_loss
from .cluster_helpers import DRIVERS

pytestmark = pytest.mark.timeout(300)


@pytest.mark.parametrize("victim", ["leader", "clients"])
@pytest.mark.parametrize("scheme", DRIVERS)
def test_node_killed_under_load(healthy: RabbitCluster, scheme: str, victim: str) -> None:
    outcome = node_loss.run(healthy, scheme, victim)
    print(outcome.summary())
    if outcome.problems:
        pytest.fail(outcome.summary() + "\n" + "\n".join(f"- {p}" for p in outcome.problems),
                    pytrace=False)
