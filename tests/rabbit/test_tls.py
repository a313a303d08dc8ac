"""rabbit:// over TLS, on a private RabbitMQ node with a TLS listener and a test CA.

The broker's certificate is verified against ``ssl_ca_file`` (and its host name checked): a
certificate from another CA is refused with a clear error unless ``ssl_verify`` is off.
"""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import msgbus
from msgbus.testing import rabbitmq
from msgbus.testing.rabbitmq import RabbitNode

from .helpers import Closer, Echo, make_conf, unique

pytestmark = pytest.mark.timeout(120)


def _openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True, timeout=60)


def make_ca(folder: Path, name: str) -> tuple[Path, Path]:
    """A self-signed CA (certificate, key) named ``name`` in ``folder``."""
    key, cert = folder / f"{name}.key", folder / f"{name}.pem"
    _openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj",
             f"/CN={name}", "-keyout", str(key), "-out", str(cert), cwd=folder)
    return cert, key


def make_server_cert(folder: Path, ca: tuple[Path, Path]) -> tuple[Path, Path]:
    """A certificate for the name localhost (only) signed by ``ca``."""
    key, csr, cert = folder / "server.key", folder / "server.csr", folder / "server.pem"
    ext = folder / "server.ext"
    ext.write_text("subjectAltName=DNS:localhost\n")
    _openssl("req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=localhost", "-keyout",
             str(key), "-out", str(csr), cwd=folder)
    _openssl("x509", "-req", "-in", str(csr), "-CA", str(ca[0]), "-CAkey", str(ca[1]),
             "-CAcreateserial", "-days", "2", "-extfile", str(ext), "-out", str(cert),
             cwd=folder)
    return cert, key


@pytest.fixture(scope="module")
def tls() -> Iterator[tuple[RabbitNode, int, Path, Path]]:
    """(node, TLS port, the CA that signed the broker, an unrelated CA)."""
    # the broker (user rabbitmq) must read the files: a folder of its own, outside pytest's
    # private temporary tree
    folder = Path(tempfile.mkdtemp(prefix="msgbus-tls-"))
    os.chmod(folder, 0o755)
    ca = make_ca(folder, "test-ca")
    other_ca = make_ca(folder, "other-ca")
    cert, key = make_server_cert(folder, ca)
    entry = pwd.getpwnam("rabbitmq")
    for path in folder.iterdir():
        os.chown(path, entry.pw_uid, entry.pw_gid)
    port = rabbitmq.free_port()
    config = "\n".join([
        f"listeners.ssl.default = 127.0.0.1:{port}",
        f"ssl_options.cacertfile = {ca[0]}",
        f"ssl_options.certfile = {cert}",
        f"ssl_options.keyfile = {key}",
        "ssl_options.verify = verify_none",
        "ssl_options.fail_if_no_peer_cert = false",
    ])
    try:
        with rabbitmq.private_rabbit_node(config=config) as node:
            yield node, port, ca[0], other_ca[0]
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def tls_url(port: int, ca: Path, host: str = "localhost", **options: str) -> str:
    query = "&".join([f"ssl=true&ssl_ca_file={ca}"] + [f"{k}={v}" for k, v in options.items()])
    return f"rabbit://guest:guest@{host}:{port}/?{query}"


def test_call_over_tls_with_verified_broker(tls: tuple, closer: Closer) -> None:
    node, port, ca, _ = tls
    topic = unique("tls")
    url = tls_url(port, ca)
    closer.server(closer.transport(url=url), topic, [Echo()])
    client = msgbus.get_rpc_client(closer.transport(url=url), msgbus.Target(topic=topic),
                                   timeout=30)
    assert client.call({}, "echo", value="secret stuff") == "secret stuff"
    assert topic in node.list_queues()


def test_broker_certificate_from_another_ca_is_refused(tls: tuple, closer: Closer) -> None:
    _, port, _, other_ca = tls
    transport = closer.transport(url=tls_url(port, other_ca), conf=make_conf())
    client = msgbus.get_rpc_client(transport, msgbus.Target(topic=unique("tls-bad")), retry=0)
    with pytest.raises(msgbus.MessageDeliveryFailure, match="CERTIFICATE_VERIFY_FAILED"):
        client.cast({}, "note", value=1)


def test_host_name_is_checked(tls: tuple, closer: Closer) -> None:
    _, port, ca, _ = tls
    # the certificate names localhost, not 127.0.0.1 (the same broker)
    transport = closer.transport(url=tls_url(port, ca, host="127.0.0.1"))
    client = msgbus.get_rpc_client(transport, msgbus.Target(topic=unique("tls-host")), retry=0)
    with pytest.raises(msgbus.MessageDeliveryFailure, match="CERTIFICATE_VERIFY_FAILED|match"):
        client.cast({}, "note", value=1)


def test_verification_can_be_turned_off(tls: tuple, closer: Closer) -> None:
    _, port, _, other_ca = tls
    topic = unique("tls-noverify")
    url = tls_url(port, other_ca, ssl_verify="false")
    echo = Echo()
    closer.server(closer.transport(url=url), topic, [echo])
    client = msgbus.get_rpc_client(closer.transport(url=url), msgbus.Target(topic=topic),
                                   timeout=30)
    assert client.call({}, "echo", value=1) == 1


@pytest.mark.parametrize("options", [
    {"ssl_version": "TLSv1_2"},
    {"ssl_version": "TLSv1_2", "rabbit_login_method": "PLAIN", "fast_path": "false"},
])
def test_pinned_tls_version_and_login_method(tls: tuple, closer: Closer,
                                             options: dict[str, str]) -> None:
    """oslo.messaging's ssl_version and rabbit_login_method reach py-amqp (on both paths)."""
    _, port, ca, _ = tls
    topic = unique("tls-pinned")
    url = tls_url(port, ca, **options)
    closer.server(closer.transport(url=url), topic, [Echo()])
    client = msgbus.get_rpc_client(closer.transport(url=url), msgbus.Target(topic=topic),
                                   timeout=30)
    assert client.call({}, "echo", value="pinned") == "pinned"


@pytest.mark.parametrize(("query", "error"), [
    ("?ssl_version=SSLv2", "unknown TLS version"),
    ("?rabbit_login_method=EXTERNAL", "ssl_cert_file"),
    ("?rabbit_login_method=RABBIT-CR-DEMO", "AMQPLAIN, PLAIN or EXTERNAL"),
])
def test_tls_and_login_settings_it_cannot_use_are_refused(closer: Closer, query: str,
                                                          error: str) -> None:
    with pytest.raises((msgbus.ConfigurationError, msgbus.DriverLoadFailure), match=error):
        transport = closer.transport(url=f"rabbit://guest:guest@localhost:5672/{query}")
        msgbus.get_rpc_client(transport, msgbus.Target(topic=unique("tls-refused")),
                              retry=0).cast({}, "note", value=1)


@pytest.mark.parametrize(("netloc", "query", "port"), [
    ("localhost", "?ssl=true", 5672),  # oslo.messaging's default, over TLS too
    ("localhost", "", 5672),
    ("localhost:6000", "?ssl=true", 6000),  # a port the URL names is kept
    ("a,b:7000", "?ssl=true", "5672,b:7000"),
])
def test_default_port_is_oslo_messagings(closer: Closer, netloc: str, query: str,
                                         port: Any) -> None:
    """A host without a port gets 5672, over TLS too, as with oslo.messaging (an operator's
    URLs reach the same port); no connection is made."""
    transport = closer.transport(url=f"rabbit://guest:guest@{netloc}/{query}", conf=make_conf())
    first = netloc.split(",")[0].split(":")[0]
    assert transport.driver.describe()["brokers"] == f"{first}:{port}"
