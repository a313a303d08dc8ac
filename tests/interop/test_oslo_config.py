"""One nova-style configuration file drives oslo.messaging (from PyPI) and msgbus alike.

oslo.messaging and msgbus (rabbit:// and pika://) read ``samples/nova-quorum.conf`` unchanged
(only transport_url, control_exchange and the notification topics point at fresh names of the
test broker) and serve, call, cast fanout and notify each other on the shared RabbitMQ: the
queues both declare (quorum with a delivery limit and in-memory bounds, durable, quorum reply
and fanout queues with x-expires, durable fanout exchanges) must be identical, or the broker
refuses the second declaration. The arguments are then checked on the broker.
A configuration that asks for TLS with a broker that cannot speak it fails with a clear error,
never falling back to plain AMQP.
"""

from __future__ import annotations

import pathlib
import re
import ssl
import time
from collections.abc import Iterator
from typing import Any

import oslo_messaging as om
import pytest
from oslo_config import cfg

import msgbus
from msgbus import options
from msgbus.notify import Notifier, get_notification_transport
from msgbus.testing import rabbitmq
from msgbus.testing.fixtures import Recorder
from msgbus.testing.harness import Closer, InteropEndpoint

from .helpers import URLS, oslo_conf, unique_topic

pytestmark = pytest.mark.timeout(180)

SAMPLES = pathlib.Path(__file__).parent / "samples"
NOVA = SAMPLES / "nova-quorum.conf"
#: What the file's [oslo_messaging_rabbit] makes of a shared (topic, server, notification) queue
SHARED_ARGUMENTS = {"x-queue-type": "quorum", "x-delivery-limit": 5,
                    "x-max-in-memory-length": 10000, "x-max-in-memory-bytes": 10485760}
#: ... and of a reply or fanout queue (rabbit_transient_quorum_queue, ttl 600 s)
TRANSIENT_ARGUMENTS = {**SHARED_ARGUMENTS, "x-expires": 600_000}
WAIT = 30.0


def with_file(conf: cfg.ConfigOpts, path: pathlib.Path) -> cfg.ConfigOpts:
    """``conf`` (already called once) reading ``path`` as a service's --config-file."""
    conf(["--config-file", str(path)], project="msgbus-interop", default_config_files=[],
         default_config_dirs=[])
    return conf


def point_at_test_names(conf: cfg.ConfigOpts, exchange: str, topics: list[str],
                        notify_group: str) -> None:
    """The only overrides: the test broker's URL, a fresh exchange and notification topics."""
    conf.set_override("transport_url", URLS["rabbit"])
    conf.set_override("control_exchange", exchange)
    conf.set_override("topics", topics, group=notify_group)


@pytest.fixture
def names() -> Iterator[dict[str, Any]]:
    """Fresh topic, exchange and notification topic; their durable leftovers go afterwards."""
    made = {"topic": unique_topic("cfg"), "exchange": unique_topic("cfg-exchange"),
            "notify": unique_topic("cfg-notify")}
    yield made
    # oslo.messaging never deletes its reply queues: those made from this file (quorum, 600 s
    # x-expires: no other test declares that shape) go too, so that tests counting the
    # broker's reply queues do not see them
    queues = [name for name, info in rabbitmq.list_queues().items()
              if name.startswith((made["topic"], made["notify"]))
              or (name.startswith("reply_") and not info.get("consumers")
                  and info["arguments"] == TRANSIENT_ARGUMENTS)]
    exchanges = [made["exchange"], f"{made['topic']}_fanout"]
    _delete(queues, exchanges)


def _delete(queues: list[str], exchanges: list[str]) -> None:
    import amqp
    conn = amqp.Connection("127.0.0.1:5672", userid="guest", password="guest")
    conn.connect()
    try:
        channel = conn.channel()
        for name in queues:
            channel.queue_delete(name)
        for name in exchanges:
            channel.exchange_delete(name)
    finally:
        conn.close()


@pytest.fixture
def closer() -> Iterator[list[Any]]:
    """Cleanups run after the test, newest first."""
    done: list[Any] = []
    yield done
    for fn in reversed(done):
        fn()


def oslo_side(names: dict[str, Any], closer: list[Any]) -> tuple[Any, cfg.ConfigOpts]:
    conf = with_file(oslo_conf(), NOVA)
    transport = om.get_rpc_transport(conf)  # registers oslo's options, then overrides apply
    transport.cleanup()
    om.get_notification_transport(conf).cleanup()
    point_at_test_names(conf, names["exchange"], [names["notify"]],
                        "oslo_messaging_notifications")
    transport = om.get_rpc_transport(conf)
    closer.append(transport.cleanup)
    return transport, conf


def msgbus_conf(names: dict[str, Any]) -> cfg.ConfigOpts:
    conf = cfg.ConfigOpts()
    with_file(conf, NOVA)
    options.register_opts(conf)
    from msgbus.notify.options import NOTIFIER_GROUP, register_notifier_opts
    register_notifier_opts(conf)
    point_at_test_names(conf, names["exchange"], [names["notify"]], NOTIFIER_GROUP)
    return conf


@pytest.mark.parametrize("scheme", ["rabbit", "pika"])
def test_one_nova_file_drives_both_libraries_to_the_same_queues(
        scheme: str, names: dict[str, Any], closer: list[Any]) -> None:
    topic = names["topic"]
    oslo_transport, _ = oslo_side(names, closer)
    recorder = Recorder()
    oslo_server = om.get_rpc_server(oslo_transport, om.Target(topic=topic, server="oslo1"),
                                    [InteropEndpoint("oslo1", recorder)], executor="threading")
    oslo_server.start()
    closer.append(lambda: (oslo_server.stop(), oslo_server.wait()))

    conf = msgbus_conf(names)
    harness = Closer(URLS[scheme], lambda: conf)
    closer.append(harness.close)
    # the msgbus server declares the same topic queue, fanout exchange and its own quorum
    # fanout queue: any difference in flags or arguments is a 406 from the broker
    transport = harness.transport(URLS[scheme], conf)
    # rpc_ping_enabled = true in the file: get_rpc_server adds the ping endpoint itself
    endpoints = [InteropEndpoint("msgbus1", recorder)]
    harness.server(transport, topic, endpoints, server="msgbus1")

    oslo_client = om.get_rpc_client(oslo_transport, om.Target(topic=topic), timeout=WAIT)
    client = msgbus.get_rpc_client(transport, msgbus.Target(topic=topic), timeout=WAIT)
    for server in ("oslo1", "msgbus1"):
        assert oslo_client.prepare(server=server).call({}, "whoami") == server
        assert client.prepare(server=server).call({}, "whoami") == server
    # oslo's tools ping a msgbus server (oslo itself reads rpc_ping_enabled from the global
    # cfg.CONF only, so its server here has no ping endpoint)
    assert oslo_client.prepare(server="msgbus1").call({}, "oslo_rpc_server_ping") == "pong"

    client.prepare(fanout=True).cast({}, "note", value="from-msgbus")
    oslo_client.prepare(fanout=True).cast({}, "note", value="from-oslo")
    expected = {(server, value) for server in ("oslo1", "msgbus1")
                for value in ("from-msgbus", "from-oslo")}
    assert recorder.wait_for(lambda seen: expected <= set(seen), WAIT), recorder

    queues = rabbitmq.list_queues()
    for name in (topic, f"{topic}.oslo1", f"{topic}.msgbus1"):
        assert queues[name]["arguments"] == SHARED_ARGUMENTS, name
        assert queues[name]["durable"] is True
    fanouts = [info for name, info in queues.items() if name.startswith(f"{topic}_fanout_")]
    assert len(fanouts) == 2
    for info in fanouts:
        assert info["arguments"] == TRANSIENT_ARGUMENTS
        assert info["durable"] is True
    exchanges = rabbitmq.list_exchanges()
    assert exchanges[f"{topic}_fanout"]["durable"] is True
    assert exchanges[names["exchange"]]["durable"] is True


@pytest.mark.parametrize("scheme", ["rabbit", "pika"])
def test_messagingv2_notifications_from_the_file_reach_an_oslo_listener(
        scheme: str, names: dict[str, Any], closer: list[Any]) -> None:
    oslo_side(names, closer)
    oslo_conf_ = with_file(oslo_conf(), NOVA)
    om.get_notification_transport(oslo_conf_).cleanup()
    point_at_test_names(oslo_conf_, names["exchange"], [names["notify"]],
                        "oslo_messaging_notifications")
    oslo_transport = om.get_notification_transport(oslo_conf_)
    closer.append(oslo_transport.cleanup)
    recorder = Recorder()

    class Info:
        def info(self, ctxt: Any, publisher_id: str, event_type: str, payload: Any,
                 metadata: Any) -> None:
            recorder.add((publisher_id, event_type, payload))

    listener = om.get_notification_listener(oslo_transport, [om.Target(topic=names["notify"])],
                                            [Info()], executor="threading")
    listener.start()
    closer.append(lambda: (listener.stop(), listener.wait()))

    conf = msgbus_conf(names)
    transport = get_notification_transport(conf, url=URLS[scheme])
    closer.append(transport.cleanup)
    notifier = Notifier(transport, publisher_id="compute.host1")  # driver from the file
    notifier.info({}, "compute.instance.create.end", {"uuid": "abc"})
    assert recorder.wait_for(lambda seen: len(seen) == 1, WAIT)
    assert recorder.wait_count(1)[0] == ("compute.host1", "compute.instance.create.end",
                                         {"uuid": "abc"})
    queue = rabbitmq.list_queues()[f"{names['notify']}.info"]
    assert queue["arguments"] == SHARED_ARGUMENTS and queue["durable"] is True


@pytest.mark.parametrize("scheme", ["rabbit", "pika"])
def test_tls_asked_for_but_impossible_fails_clearly_never_plain(scheme: str) -> None:
    """``ssl = true`` in [oslo_messaging_rabbit] (nova-tls.conf) against the plain listener
    at 5672: the call fails by its deadline with the TLS error, and nothing was declared (a
    plain connection would have declared the reply queue the error names)."""
    conf = cfg.ConfigOpts()
    with_file(conf, SAMPLES / "nova-tls.conf")
    options.register_opts(conf)
    ca = ssl.get_default_verify_paths()
    url = f"{URLS[scheme]}?ssl_ca_file={ca.cafile or ca.openssl_cafile}"
    started = time.monotonic()
    with pytest.raises(msgbus.MessagingTimeout) as caught:
        transport = msgbus.get_rpc_transport(conf, url=url)
        try:
            client = msgbus.get_rpc_client(transport, msgbus.Target(topic=unique_topic("tls")),
                                           timeout=3)
            client.call({}, "echo", value=1)
        finally:
            transport.cleanup()
    assert time.monotonic() - started < 20
    text = str(caught.value)
    assert "SSLError" in text, text
    reply_queue = re.search(r"reply_[0-9a-f]{32}", text)
    assert reply_queue is not None, text
    assert reply_queue.group(0) not in rabbitmq.list_queues()
