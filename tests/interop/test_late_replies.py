"""A msgbus client that timed out on a call to an oslo.messaging server, and then closed its
transport, does not stall that server: the late reply lands in the reply queue the client left
to the broker, which drops the queue ``rabbit_transient_queues_ttl`` seconds later (x-expires).

oslo.messaging retries a reply into a missing reply queue for 60 s, its worker busy all along;
the server here has one worker, so a stall would hold the next call for a minute.
"""

from __future__ import annotations

import threading
import time
from typing import Any

import oslo_messaging as om
import pytest

import msgbus
from msgbus import options
from msgbus.testing import rabbitmq

from .helpers import URLS, Oslo, oslo_conf, unique_topic

pytestmark = pytest.mark.timeout(120)

#: x-expires of the client's reply queue in this test (the option's default is 1800 s)
TTL = 4


class Slow:
    """Answers ``slow`` after ``seconds`` (longer than the caller waits), ``echo`` at once."""

    def __init__(self) -> None:
        self.replied = threading.Event()

    def slow(self, ctxt: Any, seconds: float) -> str:
        time.sleep(seconds)  # the endpoint's own work, longer than the caller's timeout
        return "late"

    def echo(self, ctxt: Any, value: Any) -> Any:
        return value


@pytest.mark.parametrize("scheme", ["rabbit", "pika"])
def test_late_reply_does_not_stall_an_oslo_server(scheme: str, oslo: Oslo) -> None:
    topic = unique_topic("late")
    conf = oslo_conf()
    transport = om.get_rpc_transport(conf, url=URLS["rabbit"])
    server = om.get_rpc_server(transport, om.Target(topic=topic, server="oslo1"), [Slow()],
                               executor="threading")
    conf.set_override("executor_thread_pool_size", 1)  # registered by get_rpc_server
    server.start()
    try:
        msgbus_conf = options.new_conf()
        ours = msgbus.get_rpc_transport(msgbus_conf, url=f"{URLS[scheme]}"
                                        f"?rabbit_transient_queues_ttl={TTL}")
        client = msgbus.get_rpc_client(ours, msgbus.Target(topic=topic), timeout=0.5)
        with pytest.raises(msgbus.MessagingTimeout):
            client.call({}, "slow", seconds=1.5)
        reply_queue = ours.reply_waiter().address
        assert ours.reply_waiter().late_replies_possible
        ours.cleanup()
        closed = time.monotonic()

        # the oslo server's only worker answers the next call as soon as the slow one is done
        other = om.get_rpc_client(oslo.transport(), om.Target(topic=topic), timeout=10)
        assert other.call({}, "echo", value=7) == 7  # a stalled worker: MessagingTimeout
        assert time.monotonic() - closed < 10, "the oslo server's worker was stalled"

        # the reply queue is gone within its x-expires once the transport closed
        deadline = closed + TTL + 15
        while reply_queue in rabbitmq.list_queues():
            assert time.monotonic() < deadline, f"{reply_queue} outlived its x-expires"
            time.sleep(0.5)  # polling the broker's queue list; nothing to wait on
    finally:
        server.stop()
        server.wait()
        transport.cleanup()
