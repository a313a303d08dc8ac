"""Both AMQP drivers in a process that ran ``eventlet.monkey_patch()`` first, as many OpenStack
services still do (there ``select.poll`` is gone and sockets, pipes and threads are green).

Each case runs a call, a cast and a notification in a fresh subprocess (monkey-patching cannot
be undone in this one) against the shared broker: msgbus-kombu on both of its paths, and
msgbus-pika.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
import uuid

import pytest

from .helpers import RABBIT_URL

pytestmark = pytest.mark.timeout(180)

_CHILD = textwrap.dedent('''
    import eventlet
    eventlet.monkey_patch()

    import select
    import sys
    import threading

    from oslo_config import cfg

    import msgbus

    assert not hasattr(select, "poll"), "eventlet left select.poll in place"
    url, topic = sys.argv[1], sys.argv[2]
    conf = cfg.ConfigOpts()
    transport = msgbus.get_rpc_transport(conf, url)
    notify_transport = msgbus.get_notification_transport(conf, url)
    cast_seen, note_seen = threading.Event(), threading.Event()

    class Endpoint:
        def echo(self, ctx, value):
            return value

        def poke(self, ctx, value):
            if value == "cast":
                cast_seen.set()

    class Notes:
        def info(self, ctx, publisher_id, event_type, payload, metadata):
            if payload == {"n": 1}:
                note_seen.set()

    server = msgbus.get_rpc_server(transport, msgbus.Target(topic=topic, server="s1"),
                                   [Endpoint()], executor="threading")
    server.start()
    listener = msgbus.get_notification_listener(
        notify_transport, [msgbus.Target(topic=topic + "-notes")], [Notes()],
        executor="threading")
    listener.start()
    client = msgbus.get_rpc_client(transport, msgbus.Target(topic=topic), timeout=30)
    assert client.call({}, "echo", value=[1, "two", 3.5]) == [1, "two", 3.5]
    client.cast({}, "poke", value="cast")
    assert cast_seen.wait(30), "the cast did not arrive"
    msgbus.Notifier(notify_transport, publisher_id="eventlet-test", driver="messaging",
                    topics=[topic + "-notes"]).info({}, "eventlet.test", {"n": 1})
    assert note_seen.wait(30), "the notification did not arrive"
    server.stop()
    server.wait()
    listener.stop()
    listener.wait()
    transport.cleanup()
    notify_transport.cleanup()
    print("call, cast and notification done")
''')

CASES = {
    "kombu-fast": RABBIT_URL,
    "kombu-public": RABBIT_URL + "?fast_path=false",
    "pika": RABBIT_URL.replace("rabbit://", "pika://", 1),
}


@pytest.mark.parametrize("case", list(CASES))
def test_call_cast_and_notification_after_monkey_patch(case: str) -> None:
    topic = f"msgbus-kombu-eventlet-{uuid.uuid4().hex[:10]}"
    done = subprocess.run([sys.executable, "-c", _CHILD, CASES[case], topic],
                          capture_output=True, text=True, timeout=150)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "call, cast and notification done" in done.stdout
