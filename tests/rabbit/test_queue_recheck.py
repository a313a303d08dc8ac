"""After a reconnect the kombu consumer checks that its queues still exist (msgbus_kombu.recheck):
the check itself, against the real broker."""

import uuid

from msgbus import options
from msgbus.testing.rabbitmq import delete_queue, list_queues
from msgbus.transport_url import TransportURL
from msgbus_kombu.connection import Connector
from msgbus_kombu.options import read_settings
from msgbus_kombu.recheck import missing_queue

URL = "rabbit://guest:guest@127.0.0.1:5672/"


def _connector() -> Connector:
    conf = options.new_conf()
    return Connector(TransportURL.parse(conf, URL), read_settings(conf))


def test_a_missing_queue_is_named_and_existing_ones_pass() -> None:
    import amqp
    name = f"msgbus-test-recheck-{uuid.uuid4().hex[:8]}"
    with amqp.Connection("127.0.0.1:5672") as conn:
        conn.channel().queue_declare(name, auto_delete=False)
    try:
        connector = _connector()
        assert missing_queue(connector, "test", [name]) is None
        gone = f"msgbus-test-recheck-gone-{uuid.uuid4().hex[:8]}"
        assert missing_queue(connector, "test", [name, gone]) == gone
        assert gone not in list_queues()  # asked passively: nothing was declared
    finally:
        delete_queue(name)


def test_an_unreachable_broker_is_not_taken_for_a_missing_queue() -> None:
    conf = options.new_conf()
    url = TransportURL.parse(conf, "rabbit://guest:guest@127.0.0.1:1/")
    connector = Connector(url, read_settings(conf))
    assert missing_queue(connector, "test", ["anything"]) is None
