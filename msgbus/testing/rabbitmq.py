"""RabbitMQ tools for the test suites of msgbus's AMQP drivers (kombu and pika).

Everything here talks to a real broker on the loopback interface and imports no broker client
library, so any driver's tests can use it:

* :func:`list_queues`, :func:`list_exchanges`, :func:`list_bindings`, :func:`delete_queue`,
  :func:`close_all_connections`: ``rabbitmqctl`` wrappers (the shared node or a private one);
* :func:`wait_for_broker`: wait until a port speaks AMQP 0-9-1;
* :class:`TcpProxy`: a loopback TCP proxy in front of a broker port whose connections a test can
  cut (:meth:`TcpProxy.drop_all`), stall (:meth:`TcpProxy.pause`) or refuse, to simulate a
  network failure without disturbing other users of the shared broker;
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
import threading
import time
import uuid
from collections.abc import Iterator
from typing import Any

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


#: The "flowing" event of pipes made outside a TcpProxy: always set.
_ALWAYS = threading.Event()
_ALWAYS.set()


class _Pipe:
    """One proxied connection: a client socket, an upstream socket, two pump threads."""

    def __init__(self, client: socket.socket, upstream: socket.socket,
                 on_done: Any, flowing: threading.Event | None = None) -> None:
        self.client = client
        self.upstream = upstream
        self._on_done = on_done
        #: Cleared while the proxy is paused: nothing is read or forwarded, nothing is lost.
        self._flowing = flowing or _ALWAYS
        #: When set, data is read and thrown away in both directions (a hung network path).
        self.frozen = False
        self._closed = threading.Event()
        self._lock = threading.Lock()
        self._threads = [threading.Thread(target=self._pump, args=(client, upstream),
                                          name="tcpproxy-up", daemon=True),
                         threading.Thread(target=self._pump, args=(upstream, client),
                                          name="tcpproxy-down", daemon=True)]
        for thread in self._threads:
            thread.start()

    def _wait_flowing(self) -> bool:
        """Wait while the proxy is paused; False when the pipe was closed meanwhile."""
        while not self._flowing.wait(0.05):
            if self._closed.is_set():
                return False
        return not self._closed.is_set()

    def _pump(self, src: socket.socket, dst: socket.socket) -> None:
        try:
            while self._wait_flowing():
                data = src.recv(65536)
                if not data:
                    break
                if not self._wait_flowing():
                    break
                if not self.frozen:
                    dst.sendall(data)
        except OSError:
            pass
        if self.frozen:
            return  # a hung path: the other side learns nothing until drop_all() or stop()
        self.close(abort=False)

    def close(self, abort: bool = True) -> None:
        """Close both sides; ``abort`` resets them (RST) as a crashed network path would."""
        with self._lock:
            if self._closed.is_set():
                return
            self._closed.set()
        for sock in (self.client, self.upstream):
            try:
                if abort:
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                                    b"\x01\x00\x00\x00\x00\x00\x00\x00")
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            try:
                sock.close()
            except OSError:
                pass
        self._on_done(self)

    def join(self, timeout: float) -> None:
        for thread in self._threads:
            if thread is not threading.current_thread():
                thread.join(timeout)


class TcpProxy:
    """A threaded loopback TCP proxy in front of ``target_host:target_port``.

    Point a client at :attr:`url` (or :attr:`host`/:attr:`port`) and the test controls the
    network path: :meth:`drop_all` cuts every current connection (the client sees a reset, the
    broker a vanished peer), :meth:`freeze_all` silently stops forwarding on them and throws
    their data away (a hung path: only heartbeats can tell), :meth:`pause` stalls every
    connection, current and new, until :meth:`resume` (a link that stops and comes back:
    nothing is lost, the bytes wait), ``accepting = False`` closes new connections at once (a
    broker that is down), and :meth:`stop` ends the proxy. Use it as a context manager.
    """

    def __init__(self, target_port: int = 5672, target_host: str = "127.0.0.1",
                 listen_host: str = "127.0.0.1", listen_port: int = 0,
                 user: str = "guest", password: str = "guest", vhost: str = "") -> None:
        self.target = (target_host, target_port)
        self.user, self.password, self.vhost = user, password, vhost
        self._server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._server.bind((listen_host, listen_port))
        self._server.listen(64)
        self.host, self.port = self._server.getsockname()[:2]
        #: When False, new connections are closed as soon as they are accepted.
        self.accepting = True
        #: How many connections the proxy has accepted and forwarded so far.
        self.connections_made = 0
        #: How many connection attempts reached the proxy (refused ones included).
        self.attempts = 0
        self._pipes: set[_Pipe] = set()
        self._lock = threading.Lock()
        self._stopped = threading.Event()
        self._flowing = threading.Event()
        self._flowing.set()
        self._thread = threading.Thread(target=self._accept_loop, name=f"tcpproxy-{self.port}",
                                        daemon=True)
        self._thread.start()

    @property
    def netloc(self) -> str:
        """``host:port`` of the proxy."""
        return f"{self.host}:{self.port}"

    @property
    def url(self) -> str:
        """A ``rabbit://`` transport URL through the proxy (see :meth:`url_for` for others)."""
        return self.url_for("rabbit")

    def url_for(self, scheme: str) -> str:
        """A transport URL with ``scheme`` through the proxy, with the proxy's credentials."""
        return f"{scheme}://{self.user}:{self.password}@{self.netloc}/{self.vhost}"

    @property
    def active(self) -> int:
        """Connections currently open through the proxy."""
        with self._lock:
            return len(self._pipes)

    def _accept_loop(self) -> None:
        while not self._stopped.is_set():
            try:
                client, _ = self._server.accept()
            except OSError:
                break
            if self._stopped.is_set():
                self._abort(client)
                break
            with self._lock:
                self.attempts += 1
            if not self.accepting:
                self._abort(client)
                continue
            try:
                upstream = socket.create_connection(self.target, timeout=5)
                upstream.settimeout(None)
            except OSError:
                self._abort(client)
                continue
            for sock in (client, upstream):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            with self._lock:
                self.connections_made += 1
                pipe = _Pipe(client, upstream, self._forget, self._flowing)
                self._pipes.add(pipe)

    @staticmethod
    def _abort(sock: socket.socket) -> None:
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                            b"\x01\x00\x00\x00\x00\x00\x00\x00")
            sock.close()
        except OSError:
            pass

    def _forget(self, pipe: _Pipe) -> None:
        with self._lock:
            self._pipes.discard(pipe)

    def drop_all(self) -> int:
        """Cut every current connection (reset both sides); returns how many were cut."""
        with self._lock:
            pipes = list(self._pipes)
        for pipe in pipes:
            pipe.close(abort=True)
        for pipe in pipes:
            pipe.join(5.0)
        return len(pipes)

    def freeze_all(self) -> int:
        """Stop forwarding on every current connection, keeping it open; returns how many.

        Neither side hears anything more, not even a close of the other side, so only
        heartbeats (or a timeout) can tell. New connections are forwarded as usual.
        """
        with self._lock:
            pipes = list(self._pipes)
        for pipe in pipes:
            pipe.frozen = True
        return len(pipes)

    def pause(self) -> int:
        """Stall every connection, current and new, until :meth:`resume`; returns how many
        were open.

        Nothing is read or forwarded meanwhile (the bytes wait in the sockets' buffers, so the
        senders block once those are full); new connections are accepted and connected to the
        target, but their handshake stalls too. Unlike :meth:`freeze_all`, nothing is lost.
        """
        self._flowing.clear()
        return self.active

    def resume(self) -> None:
        """Let every stalled connection flow again (see :meth:`pause`)."""
        self._flowing.set()

    @property
    def paused(self) -> bool:
        return not self._flowing.is_set()

    def wait_for_connections(self, count: int, timeout: float = 30.0) -> bool:
        """Wait until at least ``count`` connections are open; False after ``timeout``."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.active >= count:
                return True
            time.sleep(0.02)
        return self.active >= count

    def wait_until_idle(self, timeout: float = 30.0) -> bool:
        """Wait until no connection is open through the proxy; False after ``timeout``."""
        deadline = time.monotonic() + timeout
        while self.active and time.monotonic() < deadline:
            time.sleep(0.02)
        return not self.active

    def stop(self) -> None:
        """Stop accepting and cut every connection."""
        self._stopped.set()
        try:
            self._server.close()
        except OSError:
            pass
        # Unblock accept() on platforms where close() alone does not.
        with contextlib.suppress(OSError):
            socket.create_connection((self.host, self.port), timeout=0.5).close()
        self.drop_all()
        self._thread.join(5.0)

    def __enter__(self) -> TcpProxy:  # noqa: PYI034 (typing.Self needs 3.11)
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


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
