"""A nova-style file asking for TLS (``samples/nova-tls.conf``: ``ssl = true``, a CA,
``ssl_version = TLSv1_2`` in ``[oslo_messaging_rabbit]``) drives oslo.messaging and msgbus (both
AMQP drivers) to the same TLS connections, on a private RabbitMQ node with a TLS listener only.
"""

from __future__ import annotations

import importlib
import json
import pathlib
from collections.abc import Iterator
from typing import Any

import oslo_messaging as om
import pytest
from oslo_config import cfg

import msgbus
from msgbus import options
from msgbus.testing import rabbitmq
from msgbus.testing.harness import InteropEndpoint

from .helpers import unique
from .test_tls import tls  # noqa: F401 - the private TLS node (module fixture)

pytestmark = pytest.mark.timeout(180)

SAMPLE = pathlib.Path(__file__).parents[1] / "interop" / "samples" / "nova-tls.conf"


def service_file(tmp_path: pathlib.Path, port: int, ca: pathlib.Path) -> pathlib.Path:
    """The sample as an operator fills it in: the broker's URL and the CA that signed it."""
    text = SAMPLE.read_text()
    text = text.replace("rabbit://guest:guest@127.0.0.1:5672/",
                        f"rabbit://guest:guest@localhost:{port}/")
    text = text.replace("/etc/ssl/certs/rabbit-ca.pem", str(ca))
    path = tmp_path / "nova.conf"
    path.write_text(text)
    return path


def load(path: pathlib.Path) -> cfg.ConfigOpts:
    conf = cfg.ConfigOpts()
    conf(["--config-file", str(path)], project="msgbus-tls", default_config_files=[],
         default_config_dirs=[])
    # oslo.messaging 18 reads its tracing and metrics groups but registers them on the global
    # CONF only
    for module, group in (("oslo_messaging._tracing.client", "oslo_messaging_tracing"),
                          ("oslo_messaging._metrics.client", "oslo_messaging_metrics")):
        opts = getattr(importlib.import_module(module), group, None)
        if opts is not None:
            conf.register_opts(opts, group=group)
    return conf


@pytest.fixture
def cleanups() -> Iterator[list[Any]]:
    done: list[Any] = []
    yield done
    for fn in reversed(done):
        fn()


@pytest.mark.parametrize("scheme", ["rabbit", "pika"])
def test_one_tls_file_drives_oslo_and_msgbus_over_tls(
        tls: tuple, tmp_path: pathlib.Path, scheme: str,  # noqa: F811
        cleanups: list[Any]) -> None:
    node, port, ca, _ = tls
    path = service_file(tmp_path, port, ca)
    topic = unique("oslo-tls")

    oslo_conf = load(path)
    oslo_transport = om.get_rpc_transport(oslo_conf)  # transport_url from the file
    cleanups.append(oslo_transport.cleanup)
    oslo_server = om.get_rpc_server(oslo_transport, om.Target(topic=topic, server="oslo1"),
                                    [InteropEndpoint("oslo1")], executor="threading")
    oslo_server.start()
    cleanups.append(lambda: (oslo_server.stop(), oslo_server.wait()))

    conf = options.register_opts(load(path))
    url = None if scheme == "rabbit" else f"pika://guest:guest@localhost:{port}/"
    transport = msgbus.get_rpc_transport(conf, url=url)
    cleanups.append(transport.cleanup)
    server = msgbus.get_rpc_server(transport, msgbus.Target(topic=topic, server="msgbus1"),
                                   [InteropEndpoint("msgbus1")])
    server.start()
    cleanups.append(lambda: (server.stop(), server.wait()))

    client = msgbus.get_rpc_client(transport, msgbus.Target(topic=topic), timeout=30)
    oslo_client = om.get_rpc_client(oslo_transport, om.Target(topic=topic), timeout=30)
    for who in ("oslo1", "msgbus1"):
        assert client.prepare(server=who).call({}, "whoami") == who
        assert oslo_client.prepare(server=who).call({}, "whoami") == who

    rows = json.loads(rabbitmq.rabbitmqctl("list_connections", "--formatter", "json", "ssl",
                                           "ssl_protocol", node=node.name) or "[]")
    assert rows and all(row["ssl"] is True for row in rows), rows
    assert {str(row["ssl_protocol"]) for row in rows} == {"tlsv1.2"}, rows
