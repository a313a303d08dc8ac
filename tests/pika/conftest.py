"""Fixtures of the tests of the ``pika://`` (msgbus-pika) driver.

They run against the real broker at 127.0.0.1:5672 (guest/guest, vhost ``/``). A missing broker
fails the tests (it never skips them): start it with ``rabbitmq-server -detached``.
"""

from __future__ import annotations

import dataclasses
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator

import pytest

from msgbus_pika import select_connection

from msgbus.testing import rabbitmq
from msgbus.testing.harness import capture_logs
from msgbus.testing.rabbit_faults import RabbitFaultInjector, rabbit_fault_injector

from msgbus.testing.fixtures import SUITE_TOPIC_PREFIX

from pika_helpers import HOST, PIKA_URL, PORT, TOPIC_PREFIX, Closer, LogCapture, delete_entities


@pytest.fixture(scope="session", autouse=True)
def broker() -> Iterator[None]:
    """The shared broker must answer AMQP; otherwise every test here fails (no skip).

    Afterwards the shared queues these tests and the conformance suite made (topics
    ``msgbus-pika-*`` and ``msgbus-test-*``, which outlive their servers by design) are deleted,
    unless something still consumes them.
    """
    rabbitmq.wait_for_broker(HOST, PORT, timeout=15)
    yield
    leftovers = [name for name, info in rabbitmq.list_queues().items()
                 if name.startswith((TOPIC_PREFIX, SUITE_TOPIC_PREFIX))
                 and not info.get("consumers")]
    delete_entities(leftovers)


@pytest.fixture(scope="session", params=["fast", "plain"])
def transport_url(request: pytest.FixtureRequest) -> str:
    """The shared broker's URL, once per connection class of the driver: its tuned
    FastSelectConnection (the default) and pika's plain SelectConnection (``fast_path=false``,
    also what a pika release the hooks were not verified against gets: see
    tests/unit/test_pika_select_connection.py and test_fast_path_option.py)."""
    if request.param == "fast":
        # (a pika release the hooks were not verified against gets the plain class here too)
        assert select_connection.connection_class() is select_connection.FastSelectConnection \
            or not select_connection.VERSION_OK
        return PIKA_URL
    return f"{PIKA_URL}?fast_path=false"


@pytest.fixture
def closer() -> Iterator[Closer]:
    """Stops the servers and closes the transports a test made (reverse order)."""
    c = Closer()
    try:
        yield c
    finally:
        c.close()


@pytest.fixture
def logs() -> Iterator[LogCapture]:
    """Every log record emitted during the test."""
    with capture_logs() as handler:
        yield handler


@dataclasses.dataclass(frozen=True)
class TlsFiles:
    """A test CA, a server certificate it signed (127.0.0.1 and localhost), another CA."""

    ca: str
    cert: str
    key: str
    other_ca: str


def _openssl(*args: str, cwd: str) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True, timeout=60)


@pytest.fixture(scope="session")
def tls_files() -> Iterator[TlsFiles]:
    """Certificates made with the openssl command, readable by the broker's user."""
    folder = tempfile.mkdtemp(prefix="msgbus-pika-tls-")
    os.chmod(folder, 0o755)
    try:
        for name, subject in (("ca", "/CN=msgbus test CA"), ("other", "/CN=another CA")):
            _openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", f"{name}.key",
                     "-out", f"{name}.pem", "-days", "2", "-subj", subject, cwd=folder)
        _openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", "server.key", "-out",
                 "server.csr", "-subj", "/CN=localhost", cwd=folder)
        with open(os.path.join(folder, "ext.cnf"), "w", encoding="ascii") as f:
            f.write("subjectAltName=IP:127.0.0.1,DNS:localhost\n")
        _openssl("x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
                 "-CAcreateserial", "-out", "server.pem", "-days", "2", "-extfile", "ext.cnf",
                 cwd=folder)
        for name in os.listdir(folder):
            os.chmod(os.path.join(folder, name), 0o644)
        yield TlsFiles(os.path.join(folder, "ca.pem"), os.path.join(folder, "server.pem"),
                       os.path.join(folder, "server.key"), os.path.join(folder, "other.pem"))
    finally:
        shutil.rmtree(folder, ignore_errors=True)


@dataclasses.dataclass(frozen=True)
class PrivateNode:
    """A private broker (see :func:`msgbus.testing.rabbitmq.private_rabbit_node`) that also
    listens for TLS on ``tls_port``; tests may restart, freeze or disconnect it."""

    node: rabbitmq.RabbitNode
    tls_port: int


@pytest.fixture(scope="session")
def private_node(tls_files: TlsFiles) -> Iterator[PrivateNode]:
    tls_port = rabbitmq.free_port()
    config = "\n".join([
        f"listeners.ssl.default = 127.0.0.1:{tls_port}",
        f"ssl_options.cacertfile = {tls_files.ca}",
        f"ssl_options.certfile = {tls_files.cert}",
        f"ssl_options.keyfile = {tls_files.key}",
        "ssl_options.verify = verify_none",
        "ssl_options.fail_if_no_peer_cert = false",
    ])
    with rabbitmq.private_rabbit_node(config=config) as node:
        yield PrivateNode(node, tls_port)


@pytest.fixture(scope="session")
def pika_faults(private_node: PrivateNode) -> Iterator[RabbitFaultInjector]:
    """The conformance suite's fault injector for ``pika://``, on the session's private node
    (the one test_faults.py uses too: one node per session); every fault scenario leaves it
    running."""
    with rabbit_fault_injector("pika", node=private_node.node) as injector:
        yield injector
