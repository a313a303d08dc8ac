"""The reply waiter remembers calls that stopped waiting before their reply came, and asks the
driver to keep the reply queue at close while such a late reply may still come."""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest

import msgbus


class Gate:
    """``held`` returns once the test opens the gate (after the caller timed out)."""

    def __init__(self) -> None:
        self.open = threading.Event()
        self.returned = threading.Event()

    def held(self, ctxt: Any) -> str:
        self.open.wait(10)
        self.returned.set()
        return "late"

    def quick(self, ctxt: Any) -> str:
        return "now"


@pytest.fixture
def setup() -> Any:
    transport = msgbus.get_rpc_transport(url="fake://late-replies/")
    gate = Gate()
    server = msgbus.get_rpc_server(transport, msgbus.Target(topic="t", server="s"), [gate])
    server.start()
    yield transport, gate
    gate.open.set()
    server.stop()
    server.wait()
    transport.cleanup()


def test_a_timed_out_call_makes_a_late_reply_possible_until_it_comes(setup: Any) -> None:
    transport, gate = setup
    client = msgbus.get_rpc_client(transport, msgbus.Target(topic="t"), timeout=0.2)
    assert client.call({}, "quick") == "now"
    waiter = transport.reply_waiter()
    assert not waiter.late_replies_possible  # answered calls leave nothing behind
    with pytest.raises(msgbus.MessagingTimeout):
        client.call({}, "held")
    assert waiter.late_replies_possible
    gate.open.set()
    assert gate.returned.wait(10)
    # the late reply arrives (and is dropped with a log line): nothing more to expect
    deadline = time.monotonic() + 10
    while waiter.late_replies_possible and time.monotonic() < deadline:
        gate.returned.wait(0.01)  # a bounded poll: the waiter has no event for dropped replies
    assert not waiter.late_replies_possible


@pytest.mark.parametrize("late", [True, False])
def test_close_asks_the_driver_to_keep_the_reply_queue_only_when_needed(
        setup: Any, late: bool) -> None:
    transport, gate = setup
    kept: list[bool] = []
    transport.driver.keep_reply_queue = lambda: kept.append(True)  # the driver's hook
    client = msgbus.get_rpc_client(transport, msgbus.Target(topic="t"), timeout=0.2)
    assert client.call({}, "quick") == "now"
    if late:
        with pytest.raises(msgbus.MessagingTimeout):
            client.call({}, "held")
    assert transport.reply_waiter().close() is late
    assert kept == ([True] if late else [])
