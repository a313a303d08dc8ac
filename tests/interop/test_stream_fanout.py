"""rabbit_stream_fanout on both AMQP drivers beside oslo.messaging 18 configured the same way:
one stream queue ``<topic>_fanout`` per topic (x-queue-type: stream), read by every server from
its end (x-stream-offset); a fanout cast from either side reaches the servers of both, and a
msgbus listener that stops leaves the shared stream to the others (it is not private).
"""

from __future__ import annotations

import functools
import json
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import urlencode

import oslo_messaging as om
import pytest
from oslo_config import cfg
from oslo_messaging._drivers import impl_rabbit  # its options, to configure oslo's side

import msgbus
from msgbus import options
from msgbus.testing import rabbitmq
from msgbus.testing.tcp_proxy import TcpProxy

from .helpers import URLS, oslo_conf, unique_topic

pytestmark = pytest.mark.timeout(120)

#: What stream fanout needs, on both sides (oslo.messaging refuses it without the other two).
STREAM_OPTIONS = {"rabbit_stream_fanout": True, "rabbit_transient_quorum_queue": True,
                  "rabbit_qos_prefetch_count": 10}


class Notes:
    """An endpoint recording the values of the casts it gets."""

    def __init__(self) -> None:
        self.seen: list[Any] = []
        self._cond = threading.Condition()

    def note(self, ctxt: Any, value: Any) -> None:
        with self._cond:
            self.seen.append(value)
            self._cond.notify_all()

    def wait_for(self, value: Any, timeout: float = 20.0) -> bool:
        with self._cond:
            return self._cond.wait_for(lambda: value in self.seen, timeout)


def _oslo_stream_conf() -> cfg.ConfigOpts:
    conf = oslo_conf()
    conf.register_opts(impl_rabbit.rabbit_opts, group="oslo_messaging_rabbit")
    for key, value in STREAM_OPTIONS.items():
        conf.set_override(key, value, group="oslo_messaging_rabbit")
    return conf


def _wait_until(check: Callable[[], bool], what: str, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"not within {timeout}s: {what}"
        time.sleep(0.2)  # polling the broker's queue list (rabbitmqctl); nothing to wait on


def _consumers(queue: str) -> int:
    return int(rabbitmq.list_queues().get(queue, {}).get("consumers") or 0)


def _stop(server: Any) -> None:
    server.stop()
    server.wait()


@pytest.fixture
def cleanups() -> Iterator[list[Callable[[], Any]]]:
    items: list[Callable[[], Any]] = []
    yield items
    for fn in reversed(items):
        fn()


@pytest.mark.parametrize("scheme", ["rabbit", "pika"])
def test_stream_fanout_interoperates_and_the_stream_outlives_a_listener(
        scheme: str, cleanups: list[Callable[[], Any]]) -> None:
    topic = unique_topic("stream")
    stream = f"{topic}_fanout"
    cleanups.append(lambda: rabbitmq.delete_queue(stream))  # (durable: nobody else deletes it)

    # oslo.messaging's server and client, with stream fanout
    oslo_transport = om.get_rpc_transport(_oslo_stream_conf(), url=URLS["rabbit"])
    cleanups.append(oslo_transport.cleanup)
    oslo_notes = Notes()
    oslo_server = om.get_rpc_server(oslo_transport, om.Target(topic=topic, server="oslo1"),
                                    [oslo_notes], executor="threading")
    oslo_server.start()
    cleanups.append(functools.partial(_stop, oslo_server))
    oslo_client = om.get_rpc_client(oslo_transport, om.Target(topic=topic, fanout=True))
    _wait_until(lambda: _consumers(stream) == 1, f"oslo's server consumes {stream}")
    # a cast before msgbus's server starts: it makes the stream's last chunk, which a consumer
    # starting at x-stream-offset "last" (as oslo's do) reads; with no offset it would not
    oslo_client.cast({}, "note", value="early")
    assert oslo_notes.wait_for("early")

    # msgbus's, configured through the URL
    url = f"{URLS[scheme]}?{urlencode({k: str(v).lower() for k, v in STREAM_OPTIONS.items()})}"
    ours = msgbus.get_rpc_transport(options.new_conf(), url=url)
    cleanups.append(ours.cleanup)
    our_notes = Notes()
    our_server = msgbus.get_rpc_server(ours, msgbus.Target(topic=topic, server="mb1"),
                                       [our_notes])
    our_server.start()
    our_client = msgbus.get_rpc_client(ours, msgbus.Target(topic=topic, fanout=True))

    # one stream, consumed by both servers (oslo's consumes once its poll thread runs)
    info = rabbitmq.list_queues()[stream]
    assert info["arguments"].get("x-queue-type") == "stream" and info["durable"]
    _wait_until(lambda: _consumers(stream) == 2, f"both servers consume {stream}")
    assert not any(name.startswith(f"{topic}_fanout_") for name in rabbitmq.list_queues()), \
        "a per-listener fanout queue was made beside the stream"

    # a fanout cast from oslo reaches both servers, and one from msgbus too
    oslo_client.cast({}, "note", value="from-oslo")
    assert our_notes.wait_for("from-oslo"), "oslo's fanout cast did not reach msgbus"
    assert oslo_notes.wait_for("from-oslo")
    our_client.cast({}, "note", value="from-msgbus")
    assert oslo_notes.wait_for("from-msgbus"), "msgbus's fanout cast did not reach oslo"
    assert our_notes.wait_for("from-msgbus")

    # stopping the msgbus server leaves the shared stream to oslo's server, which still reads it
    our_server.stop()
    our_server.wait()
    assert stream in rabbitmq.list_queues(), "the msgbus listener deleted the shared stream"
    _wait_until(lambda: _consumers(stream) == 1, "the msgbus consumer is cancelled")
    our_client.cast({}, "note", value="after-stop")
    assert oslo_notes.wait_for("after-stop")
    assert our_notes.wait_for("early", timeout=0), "x-stream-offset did not reach the broker"
    assert our_notes.seen.count("from-oslo") == 1 and our_notes.seen.count("from-msgbus") == 1
    assert "after-stop" not in our_notes.seen


class Echo:
    def echo(self, ctxt: Any, value: Any) -> Any:
        return value


@pytest.mark.parametrize("scheme", ["rabbit", "pika"])
def test_cancel_on_failover_consumers_serve_oslo_calls(
        scheme: str, cleanups: list[Callable[[], Any]]) -> None:
    """enable_cancel_on_failover passes x-cancel-on-ha-failover to basic.consume (the broker
    accepts it on every queue it consumes, reply queue included) and servers serve as before."""
    topic = unique_topic("cancel")
    ours = msgbus.get_rpc_transport(options.new_conf(),
                                    url=f"{URLS[scheme]}?enable_cancel_on_failover=true")
    cleanups.append(ours.cleanup)
    server = msgbus.get_rpc_server(ours, msgbus.Target(topic=topic, server="mb1"), [Echo()])
    server.start()
    cleanups.append(functools.partial(_stop, server))
    oslo_transport = om.get_rpc_transport(oslo_conf(), url=URLS["rabbit"])
    cleanups.append(oslo_transport.cleanup)
    assert om.get_rpc_client(oslo_transport, om.Target(topic=topic), timeout=20).call(
        {}, "echo", value=3) == 3
    # and the msgbus side's own reply queue is consumed with it too
    assert msgbus.get_rpc_client(ours, msgbus.Target(topic=topic), timeout=20).call(
        {}, "echo", value=4) == 4
    reply_queue = ours.reply_waiter().address
    arguments = {row["queue_name"]: {a[0]: a[-1] for a in row.get("arguments") or []}
                 for row in json.loads(rabbitmq.rabbitmqctl(
                     "list_consumers", "queue_name", "arguments", "--formatter", "json") or "[]")}
    ours_consumed = [topic, f"{topic}.mb1", reply_queue] + [
        q for q in arguments if q.startswith(f"{topic}_fanout_")]
    assert len(ours_consumed) == 4, arguments.keys()
    for queue in ours_consumed:
        assert arguments[queue].get("x-cancel-on-ha-failover") is True, (queue, arguments[queue])


@pytest.mark.parametrize("scheme", ["rabbit", "pika"])
def test_a_reconnected_stream_consumer_reads_on_where_it_stopped(
        scheme: str, cleanups: list[Callable[[], Any]]) -> None:
    """After a cut, a msgbus server reads the stream on from the delivery after the last one it
    saw (as oslo.messaging does), not from the stream's last chunk: casts sent while it was
    away are not lost."""
    topic = unique_topic("streamcut")
    stream = f"{topic}_fanout"
    cleanups.append(lambda: rabbitmq.delete_queue(stream))
    oslo_transport = om.get_rpc_transport(_oslo_stream_conf(), url=URLS["rabbit"])
    cleanups.append(oslo_transport.cleanup)
    oslo_notes = Notes()
    oslo_server = om.get_rpc_server(oslo_transport, om.Target(topic=topic, server="oslo1"),
                                    [oslo_notes], executor="threading")
    oslo_server.start()
    cleanups.append(functools.partial(_stop, oslo_server))
    oslo_client = om.get_rpc_client(oslo_transport, om.Target(topic=topic, fanout=True))

    proxy = TcpProxy()
    cleanups.append(proxy.stop)
    query = urlencode({k: str(v).lower() for k, v in STREAM_OPTIONS.items()})
    ours = msgbus.get_rpc_transport(options.new_conf(), url=f"{proxy.url_for(scheme)}?{query}")
    cleanups.append(ours.cleanup)
    our_notes = Notes()
    our_server = msgbus.get_rpc_server(ours, msgbus.Target(topic=topic, server="mb1"),
                                       [our_notes])
    our_server.start()
    cleanups.append(functools.partial(_stop, our_server))
    _wait_until(lambda: _consumers(stream) == 2, f"both servers consume {stream}")

    oslo_client.cast({}, "note", value="a")
    assert our_notes.wait_for("a") and oslo_notes.wait_for("a")

    # cut msgbus's server off; two casts reach the stream (each its own chunk) meanwhile
    proxy.accepting = False
    assert proxy.drop_all() >= 1  # (reset both ways: the broker drops that consumer at once;
    # its stream statistics lag, and the stream keeps what comes meanwhile in any case)
    for value in ("b", "c"):
        oslo_client.cast({}, "note", value=value)
        assert oslo_notes.wait_for(value)
    proxy.accepting = True

    assert our_notes.wait_for("c"), "the msgbus server did not consume again"
    assert our_notes.wait_for("b", timeout=5), \
        f"a cast sent during the cut was lost: the consumer started again at 'last' " \
        f"({our_notes.seen})"
    assert our_notes.seen == ["a", "b", "c"]


def _bound(exchange: str, queue: str) -> bool:
    rows = json.loads(rabbitmq.rabbitmqctl("list_bindings", "source_name", "destination_name",
                                           "--formatter", "json") or "[]")
    return any(r.get("source_name") == exchange and r.get("destination_name") == queue
               for r in rows)


@pytest.mark.parametrize("scheme", ["rabbit", "pika"])
def test_a_stream_deleted_under_a_server_is_read_from_its_end_once_made_anew(
        scheme: str, cleanups: list[Callable[[], Any]]) -> None:
    """The broker cancels the consumer of a deleted stream; the server declares it again and
    reads the new stream from its end (as oslo.messaging does), not from the old stream's
    offsets, which the new one has not reached."""
    topic = unique_topic("streamdel")
    stream = f"{topic}_fanout"
    cleanups.append(lambda: rabbitmq.delete_queue(stream))
    query = urlencode({k: str(v).lower() for k, v in STREAM_OPTIONS.items()})
    ours = msgbus.get_rpc_transport(options.new_conf(), url=f"{URLS[scheme]}?{query}")
    cleanups.append(ours.cleanup)
    notes = Notes()
    server = msgbus.get_rpc_server(ours, msgbus.Target(topic=topic, server="mb1"), [notes])
    server.start()
    cleanups.append(functools.partial(_stop, server))
    client = msgbus.get_rpc_client(ours, msgbus.Target(topic=topic, fanout=True))
    for value in ("a", "b", "c"):  # offsets 0 to 2 of the first stream
        client.cast({}, "note", value=value)
        assert notes.wait_for(value)

    rabbitmq.delete_queue(stream)
    _wait_until(lambda: _bound(f"{topic}_fanout", stream), "the server declared the stream anew")
    client.cast({}, "note", value="anew")  # offset 0 of the new stream
    assert notes.wait_for("anew", timeout=10), \
        f"the server waits for the old stream's offsets on the new one ({notes.seen})"
