"""msgbus.testing.rabbit_cluster's join rule, without Erlang: a join that fails is tried again
after ``reset``, a bounded number of times, and the node is started only once it joined."""

import pytest

from msgbus.testing.rabbit_cluster import JOIN_TRIES, _join
from msgbus.testing.rabbitmq import BrokerToolError


class _Node:
    """Stands in for a ClusterNode: records rabbitmqctl commands, fails the first joins."""

    name = "msgbus-test-2@localhost"

    def __init__(self, failing_joins: int) -> None:
        self.failing_joins = failing_joins
        self.commands: list[str] = []

    def ctl(self, *args: str, timeout: float) -> str:
        assert timeout > 0
        self.commands.append(args[0])
        if args[0] == "join_cluster" and self.failing_joins:
            self.failing_joins -= 1
            raise BrokerToolError("join_cluster exited 69: {aborted, schema_prepare}")
        return ""

    def start_app(self, timeout: float) -> None:
        self.commands.append("start_app")


class _Seed:
    name = "msgbus-test-1@localhost"


def test_a_failed_join_is_tried_again_after_a_reset() -> None:
    node = _Node(failing_joins=1)
    _join(node, _Seed(), timeout=60.0)  # type: ignore[arg-type]
    assert node.commands == ["stop_app", "join_cluster", "reset", "join_cluster", "start_app"]


def test_joins_that_keep_failing_raise_after_the_last_try() -> None:
    node = _Node(failing_joins=JOIN_TRIES)
    with pytest.raises(BrokerToolError, match="schema_prepare"):
        _join(node, _Seed(), timeout=60.0)  # type: ignore[arg-type]
    assert node.commands.count("join_cluster") == JOIN_TRIES
    assert "start_app" not in node.commands
