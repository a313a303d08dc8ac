"""The cluster tool itself (:mod:`msgbus.testing.rabbit_cluster`): the session's cluster is
formed of three private nodes away from the shared broker, reports quorum leaders, survives a
SIGKILL of a node and takes it back; a cluster left by an error is removed completely."""

from __future__ import annotations

import os

import pytest

import msgbus
from msgbus.testing import rabbitmq
from msgbus.testing.rabbit_cluster import RabbitCluster, rabbit_cluster

from .cluster_helpers import quorum_conf, unique

pytestmark = pytest.mark.timeout(240)


def shared_node_members() -> str:
    return rabbitmq.rabbitmqctl("eval", "lists:sort(rabbit_nodes:all()).").strip()


def test_formed_apart_from_the_shared_broker(cluster: RabbitCluster) -> None:
    assert cluster.running_members() == {n.name for n in cluster.nodes}
    assert len({n.port for n in cluster.nodes}) == 3 and 5672 not in {n.port for n in cluster.nodes}
    assert all(n.cookie == cluster.nodes[0].cookie for n in cluster.nodes)
    assert all(n.name not in shared_node_members() for n in cluster.nodes)
    for node in cluster.nodes:
        rabbitmq.wait_for_broker(node.host, node.port, timeout=5)


def test_kill_revive_and_quorum_leader(healthy: RabbitCluster) -> None:
    a, b, c = healthy.nodes
    topic = unique("tool")
    transport = msgbus.get_rpc_transport(quorum_conf(), url=healthy.url_for("rabbit", [b, c, a]))
    try:
        server = msgbus.get_rpc_server(transport, msgbus.Target(topic=topic, server="s"), [])
        server.start()
        server.stop()
        server.wait()
    finally:
        transport.cleanup()
    assert healthy.leader(topic) is b  # declared through b's connection
    healthy.wait_all_in_quorum()
    healthy.kill(b)
    assert not b.alive()
    assert b.name not in healthy.running_members()
    assert healthy.leader(topic) in (a, c)
    assert topic in healthy.not_in_quorum()
    healthy.revive(b)
    healthy.wait_all_in_quorum()
    assert healthy.running_members() == {n.name for n in healthy.nodes}
    healthy.delete_queues([topic, f"{topic}.s"])


def test_removed_after_an_error() -> None:
    """A one-node "cluster" takes the same way out, at a third of the cost."""
    seen: list[RabbitCluster] = []
    with pytest.raises(RuntimeError, match="on purpose"):
        with rabbit_cluster(size=1) as cluster:
            seen.append(cluster)
            assert all(n.alive() for n in cluster.nodes)
            raise RuntimeError("on purpose")
    (cluster,) = seen
    assert not any(n.alive() for n in cluster.nodes)
    assert not any(os.path.exists(n.base) for n in cluster.nodes)
