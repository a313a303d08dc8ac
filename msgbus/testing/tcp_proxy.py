"""A loopback TCP proxy in front of a broker port, for fault tests: a test can cut every
connection through it (:meth:`TcpProxy.drop_all`), freeze them (:meth:`TcpProxy.freeze_all`),
stall them with bytes kept (:meth:`TcpProxy.pause`) or refuse new ones, to simulate a network
failure without disturbing other users of the broker. It knows nothing of AMQP.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from typing import Any

__all__ = ["TcpProxy"]


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
