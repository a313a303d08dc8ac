"""RabbitMQ tools for the test suites of msgbus's AMQP drivers (kombu and pika).

Everything here talks to a real broker on the loopback interface and imports no broker client
library, so any driver's tests can use it:

* :func:`list_queues`, :func:`list_exchanges`, :func:`list_bindings`, :func:`delete_queue`,
  :func:`close_all_connections`: ``rabbitmqctl`` wrappers (the shared node or a private one);
* :func:`wait_for_broker`: wait until a port speaks AMQP 0-9-1;
* :class:`TcpProxy` (:mod:`msgbus.testing.tcp_proxy`, importable from here too): a loopback
  TCP proxy whose connections a test can cut, stall or refuse, to simulate a network failure
  without disturbing other users of the shared broker;
* :func:`private_rabbit_node`: a throw-away RabbitMQ node on its own ports, for tests that stop,
  restart or kill a broker (the shared node at 127.0.0.1:5672 must never be stopped).

Every wait is bounded; failures raise :class:`BrokerToolError` with the command's output.
"""

from __future__ import annotations

import contextlib
import json
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from typing import Any

from msgbus.testing.tcp_proxy import TcpProxy

__all__ = ["BrokerToolError", "RabbitNode", "TcpProxy", "close_all_connections",
           "delete_queue", "free_port", "list_bindings", "list_connections", "list_exchanges",
           "list_queues", "private_rabbit_node", "rabbitmqctl", "wait_for_broker"]

#: Bound for one ``rabbitmqctl`` invocation (seconds).
CTL_TIMEOUT = 60.0
#: The AMQP 0-9-1 protocol header a client sends first.
_AMQP_HEADER = b"AMQP\x00\x00\x09\x01"


class BrokerToolError(RuntimeError):
    """A broker tool failed: ``rabbitmqctl`` exited non-zero, or a wait ran out."""


def rabbitmqctl(*args: str, node: str | None = None, timeout: float = CTL_TIMEOUT) -> str:
    """Run ``rabbitmqctl [-n node] -q ARGS`` and return its standard output.

    Raises BrokerToolError (with stderr) when it fails or takes longer than ``timeout``.
    """
    cmd = ["rabbitmqctl"]
    if node:
        cmd += ["-n", node]
    cmd += ["-q", *args]
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout,
                              stdin=subprocess.DEVNULL, check=False)
    except subprocess.TimeoutExpired:
        raise BrokerToolError(f"{' '.join(cmd)} did not finish in {timeout:g}s") from None
    except OSError as exc:
        raise BrokerToolError(f"cannot run {cmd[0]}: {exc}") from exc
    if done.returncode != 0:
        raise BrokerToolError(f"{' '.join(cmd)} exited {done.returncode}: "
                              f"{(done.stderr or done.stdout).strip()[:2000]}")
    return done.stdout


def _json_rows(text: str) -> list[dict[str, Any]]:
    text = text.strip()
    if not text:
        return []
    start = text.find("[")
    if start < 0:
        raise BrokerToolError(f"unexpected rabbitmqctl output: {text[:500]!r}")
    return json.loads(text[start:])


def _arguments(raw: Any) -> dict[str, Any]:
    """``[[key, type, value], ...]`` (rabbitmqctl's JSON) as ``{key: value}``."""
    if isinstance(raw, dict):
        return dict(raw)
    out: dict[str, Any] = {}
    for item in raw or []:
        if isinstance(item, (list, tuple)) and len(item) >= 2:
            out[item[0]] = item[-1]
    return out


def list_queues(vhost: str = "/", node: str | None = None) -> dict[str, dict[str, Any]]:
    """The queues of ``vhost``: ``{name: {durable, auto_delete, arguments, consumers, messages}}``.

    ``arguments`` is a plain dict (``{"x-expires": 1800000}``); ``messages`` counts ready and
    unacknowledged messages.
    """
    rows = _json_rows(rabbitmqctl("list_queues", "-p", vhost, "--formatter", "json", "name",
                                  "durable", "auto_delete", "arguments", "consumers", "messages",
                                  node=node))
    out = {}
    for row in rows:
        row["arguments"] = _arguments(row.get("arguments"))
        out[row["name"]] = row
    return out


def list_exchanges(vhost: str = "/", node: str | None = None) -> dict[str, dict[str, Any]]:
    """The exchanges of ``vhost``: ``{name: {type, durable, auto_delete, arguments}}``."""
    rows = _json_rows(rabbitmqctl("list_exchanges", "-p", vhost, "--formatter", "json", "name",
                                  "type", "durable", "auto_delete", "arguments", node=node))
    out = {}
    for row in rows:
        row["arguments"] = _arguments(row.get("arguments"))
        out[row["name"]] = row
    return out


def list_bindings(vhost: str = "/", node: str | None = None) -> list[dict[str, Any]]:
    """The bindings of ``vhost``: dicts with ``source_name``, ``destination_name``,
    ``destination_kind`` and ``routing_key``."""
    rows = _json_rows(rabbitmqctl("list_bindings", "-p", vhost, "--formatter", "json",
                                  "source_name", "destination_name", "destination_kind",
                                  "routing_key", node=node))
    return rows


def list_connections(node: str | None = None) -> list[dict[str, Any]]:
    """The node's client connections: dicts with ``name``, ``peer_port``, ``user``, ``vhost``."""
    return _json_rows(rabbitmqctl("list_connections", "--formatter", "json", "name",
                                  "peer_port", "user", "vhost", node=node))


def delete_queue(name: str, vhost: str = "/", node: str | None = None) -> None:
    """Delete queue ``name`` (its messages too); no error when it does not exist."""
    try:
        rabbitmqctl("delete_queue", "-p", vhost, name, node=node)
    except BrokerToolError as exc:
        if "not_found" not in str(exc).lower() and "not found" not in str(exc).lower():
            raise


def close_all_connections(reason: str = "closed by msgbus test", node: str | None = None,
                          vhost: str | None = None) -> None:
    """Make the broker close every client connection (of ``vhost``, or all of them).

    On the shared node this disturbs everyone using it: prefer a :class:`TcpProxy` there and
    keep this for private nodes.
    """
    args = ["close_all_connections"]
    if vhost is not None:
        args += ["-p", vhost]
    else:
        args += ["--global"]
    rabbitmqctl(*args, reason, node=node)


def wait_for_broker(host: str = "127.0.0.1", port: int = 5672, timeout: float = 30.0,
                    interval: float = 0.1) -> None:
    """Block until ``host:port`` answers the AMQP 0-9-1 protocol header with a frame.

    A listening port is not enough: the broker must start the AMQP handshake (Connection.Start).
    It tries every ``interval`` seconds. Raises BrokerToolError after ``timeout`` seconds.
    """
    deadline = time.monotonic() + timeout
    last: Exception | str = "not tried"
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise BrokerToolError(f"no AMQP broker answered on {host}:{port} within "
                                  f"{timeout:g}s (last error: {last})")
        try:
            with socket.create_connection((host, port), timeout=min(2.0, remaining)) as sock:
                sock.settimeout(min(2.0, max(remaining, 0.1)))
                sock.sendall(_AMQP_HEADER)
                first = sock.recv(7)
            if first[:1] == b"\x01":
                return
            last = f"unexpected first bytes {first!r}"
        except OSError as exc:
            last = exc
        time.sleep(min(interval, max(deadline - time.monotonic(), 0)))


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port that is free on ``host`` right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


class RabbitNode:
    """A private RabbitMQ node started by :func:`private_rabbit_node`."""

    def __init__(self, name: str, port: int, dist_port: int, base: str) -> None:
        self.name = name
        self.port = port
        self.dist_port = dist_port
        self.base = base
        self.host = "127.0.0.1"

    @property
    def netloc(self) -> str:
        return f"{self.host}:{self.port}"

    @property
    def url(self) -> str:
        """``rabbit://guest:guest@127.0.0.1:<port>/``."""
        return self.url_for("rabbit")

    def url_for(self, scheme: str) -> str:
        return f"{scheme}://guest:guest@{self.netloc}/"

    def _env(self) -> dict[str, str]:
        env = dict(os.environ)
        env.update({
            "RABBITMQ_NODENAME": self.name,
            "RABBITMQ_NODE_IP_ADDRESS": self.host,
            "RABBITMQ_NODE_PORT": str(self.port),
            "RABBITMQ_DIST_PORT": str(self.dist_port),
            "RABBITMQ_MNESIA_BASE": os.path.join(self.base, "mnesia"),
            "RABBITMQ_LOG_BASE": os.path.join(self.base, "log"),
            "RABBITMQ_PID_FILE": os.path.join(self.base, "node.pid"),
            "RABBITMQ_CONFIG_FILE": os.path.join(self.base, "rabbitmq.conf"),
            "RABBITMQ_ENABLED_PLUGINS_FILE": os.path.join(self.base, "enabled_plugins"),
        })
        return env

    def start(self, timeout: float = 60.0) -> None:
        """Boot the node (``rabbitmq-server -detached``) and wait until it speaks AMQP."""
        try:
            done = subprocess.run(["rabbitmq-server", "-detached"], env=self._env(),
                                  capture_output=True, text=True, timeout=timeout,
                                  stdin=subprocess.DEVNULL, cwd=self.base, check=False)
        except subprocess.TimeoutExpired:
            raise BrokerToolError(f"rabbitmq-server -detached for {self.name} hung") from None
        if done.returncode != 0:
            raise BrokerToolError(f"rabbitmq-server for {self.name} exited {done.returncode}: "
                                  f"{(done.stderr or done.stdout).strip()[:2000]}")
        try:
            wait_for_broker(self.host, self.port, timeout)
        except BrokerToolError as exc:
            raise BrokerToolError(f"{exc}; node log tail:\n{self.log_tail()}") from None

    def stop(self, timeout: float = 60.0) -> None:
        """Halt the node and wait until its port is closed."""
        with contextlib.suppress(BrokerToolError):
            rabbitmqctl("stop", node=self.name, timeout=timeout)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self._port_open():
                break
            time.sleep(0.1)
        else:
            raise BrokerToolError(f"node {self.name} still listens on {self.port} after "
                                  f"{timeout:g}s")
        self._wait_pid_gone(deadline)

    def _wait_pid_gone(self, deadline: float) -> None:
        try:
            with open(os.path.join(self.base, "node.pid"), encoding="ascii") as f:
                pid = int(f.read().strip() or 0)
        except (OSError, ValueError):
            return
        while pid and time.monotonic() < deadline:
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                return
            except PermissionError:
                pass
            time.sleep(0.1)

    def stop_app(self) -> None:
        """Stop the RabbitMQ application (the VM keeps running): every connection drops and
        non-durable queues are lost, as in a broker restart."""
        rabbitmqctl("stop_app", node=self.name)

    def start_app(self, timeout: float = 60.0) -> None:
        """Start the application again after :meth:`stop_app` and wait until it serves."""
        rabbitmqctl("start_app", node=self.name, timeout=timeout)
        wait_for_broker(self.host, self.port, timeout)

    def restart(self, timeout: float = 60.0) -> None:
        """``stop_app`` then ``start_app``: a broker restart as clients see it."""
        self.stop_app()
        self.start_app(timeout)

    def set_max_message_size(self, size: int) -> None:
        """Set the node's ``max_message_size`` (bytes) for the channels opened from now on."""
        rabbitmqctl("eval", f"application:set_env(rabbit, max_message_size, {int(size)}).",
                    node=self.name)

    def list_queues(self, vhost: str = "/") -> dict[str, dict[str, Any]]:
        return list_queues(vhost, node=self.name)

    def close_all_connections(self, reason: str = "closed by msgbus test") -> None:
        close_all_connections(reason, node=self.name)

    def _port_open(self) -> bool:
        try:
            socket.create_connection((self.host, self.port), timeout=0.5).close()
            return True
        except OSError:
            return False

    def log_tail(self, lines: int = 30) -> str:
        path = os.path.join(self.base, "log", f"{self.name}.log")
        try:
            with open(path, encoding="utf-8", errors="replace") as f:
                return "\n".join(f.read().splitlines()[-lines:])
        except OSError as exc:
            return f"(no log: {exc})"


def _chown_to_rabbitmq(path: str) -> None:
    try:
        entry = pwd.getpwnam("rabbitmq")
    except KeyError:
        return
    for root, dirs, files in os.walk(path):
        os.chown(root, entry.pw_uid, entry.pw_gid)
        for name in files:
            os.chown(os.path.join(root, name), entry.pw_uid, entry.pw_gid)


@contextlib.contextmanager
def private_rabbit_node(port: int | None = None, *, name: str | None = None,
                        dist_port: int | None = None, timeout: float = 60.0,
                        config: str = "") -> Iterator[RabbitNode]:
    """Start an own RabbitMQ node on ``port`` (a free one when None), yield it, stop it.

    The node has its own name, ports, data and logs in a temporary folder owned by the
    ``rabbitmq`` user, listens on 127.0.0.1 only and lets guest log in; ``config`` adds lines to
    its rabbitmq.conf. The folder is removed afterwards. Starting takes a few seconds.
    """
    port = port or free_port()
    dist_port = dist_port or free_port()
    name = name or f"msgbus-{uuid.uuid4().hex[:8]}@localhost"
    base = tempfile.mkdtemp(prefix="msgbus-rabbit-")
    os.chmod(base, 0o755)
    with open(os.path.join(base, "rabbitmq.conf"), "w", encoding="utf-8") as f:
        f.write(f"listeners.tcp.local = 127.0.0.1:{port}\nloopback_users = none\n{config}\n")
    with open(os.path.join(base, "enabled_plugins"), "w", encoding="utf-8") as f:
        f.write("[].\n")
    os.makedirs(os.path.join(base, "log"))
    os.makedirs(os.path.join(base, "mnesia"))
    _chown_to_rabbitmq(base)
    node = RabbitNode(name, port, dist_port, base)
    try:
        node.start(timeout)
        yield node
    finally:
        try:
            node.stop(timeout)
        finally:
            shutil.rmtree(base, ignore_errors=True)
