"""A throw-away 3-node RabbitMQ cluster on the loopback interface, for tests that kill a node.

:func:`rabbit_cluster` boots three private nodes (own names, ports, Erlang cookie and data
folders owned by ``rabbitmq``) in parallel, joins the second and third to the first (one after
the other, a failed join tried again after ``reset``), and removes everything afterwards, also
when the test fails or is interrupted.
:class:`RabbitCluster` kills a node hard (SIGKILL of its Erlang VM), brings it back, says which
node leads a quorum queue and waits until every quorum queue has all its members online.
The shared broker on 5672 is never touched: every ``rabbitmqctl`` here names a cluster node
and carries the cluster's own cookie.
"""

from __future__ import annotations

import atexit
import concurrent.futures
import contextlib
import json
import os
import secrets
import shutil
import signal
import tempfile
import time
import urllib.parse
import uuid
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

from msgbus.testing.rabbitmq import (BrokerToolError, RabbitNode, _arguments, _chown_to_rabbitmq,
                                     _json_rows, free_port, rabbitmqctl, wait_for_broker)

__all__ = ["ClusterNode", "RabbitCluster", "rabbit_cluster"]

#: Bound for booting a node, joining it, or bringing a killed one back (seconds).
BOOT_TIMEOUT = 120.0
#: How often the bounded waits look again (seconds).
POLL = 0.1

_T = TypeVar("_T")


class ClusterNode(RabbitNode):
    """One node of a :class:`RabbitCluster`: a private node that carries the cluster's cookie."""

    def __init__(self, name: str, port: int, dist_port: int, base: str, cookie: str) -> None:
        super().__init__(name, port, dist_port, base)
        self.cookie = cookie

    def _env(self) -> dict[str, str]:
        env = super()._env()
        env["RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS"] = f"-setcookie {self.cookie}"
        return env

    def ctl(self, *args: str, timeout: float = 60.0) -> str:
        """``rabbitmqctl ARGS`` against this node, with the cluster's cookie."""
        return rabbitmqctl("--erlang-cookie", self.cookie, *args, node=self.name,
                           timeout=timeout)

    def pid(self) -> int | None:
        """The OS pid of the node's Erlang VM (from its pid file), None if unknown."""
        try:
            with open(os.path.join(self.base, "node.pid"), encoding="ascii") as f:
                return int(f.read().strip() or 0) or None
        except (OSError, ValueError):
            return None

    def alive(self) -> bool:
        pid = self.pid()
        if pid is None:
            return False
        try:
            with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as f:
                state = f.read().rsplit(")", 1)[-1].split()[0]
        except (OSError, IndexError):
            return False
        return state not in ("Z", "X")  # a zombie waits for init to reap it: it is dead

    def kill(self, timeout: float = 30.0) -> float:
        """SIGKILL the node's Erlang VM and wait until it is gone; returns the instant
        (``time.monotonic()``) of the kill."""
        pid = self.pid()
        if pid is None:
            raise BrokerToolError(f"node {self.name} has no pid file: is it running?")
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
        killed = time.monotonic()
        _wait(lambda: not self.alive(), timeout, f"{self.name} (pid {pid}) to die")
        return killed

    # RabbitNode's helpers, with the cluster's cookie
    def stop_app(self) -> None:
        self.ctl("stop_app")

    def start_app(self, timeout: float = 60.0) -> None:
        self.ctl("start_app", timeout=timeout)
        wait_for_broker(self.host, self.port, timeout)

    def stop(self, timeout: float = 60.0) -> None:
        """Kill the VM (a throw-away node needs no clean shutdown)."""
        if self.alive():
            self.kill(timeout)

    def list_queues(self, vhost: str = "/") -> dict[str, dict[str, Any]]:
        rows = _json_rows(self.ctl("list_queues", "-p", vhost, "--formatter", "json", "name",
                                   "durable", "auto_delete", "arguments", "consumers",
                                   "messages"))
        out = {}
        for row in rows:
            row["arguments"] = _arguments(row.get("arguments"))
            out[row["name"]] = row
        return out

    def close_all_connections(self, reason: str = "closed by msgbus test") -> None:
        self.ctl("close_all_connections", "--global", reason)


def _wait(predicate: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise BrokerToolError(f"gave up waiting for {what} after {timeout:g}s")
        time.sleep(POLL)


def _in_parallel(actions: list[Callable[[], _T]]) -> list[_T]:
    """Run ``actions`` in threads at once; re-raise the first error after all ended."""
    with concurrent.futures.ThreadPoolExecutor(max_workers=len(actions) or 1) as pool:
        futures = [pool.submit(action) for action in actions]
        concurrent.futures.wait(futures)
    return [f.result() for f in futures]


class RabbitCluster:
    """A running cluster made by :func:`rabbit_cluster`; ``nodes[0]`` is the one the others
    joined."""

    def __init__(self, nodes: list[ClusterNode]) -> None:
        self.nodes = nodes

    # addresses
    def url_for(self, scheme: str = "rabbit", order: list[ClusterNode] | None = None,
                vhost: str = "/") -> str:
        """A transport URL naming every node (``order``, or the cluster's order):
        ``rabbit://guest:guest@127.0.0.1:p1,guest:guest@127.0.0.1:p2,.../``."""
        hosts = ",".join(f"guest:guest@{n.netloc}" for n in (order or self.nodes))
        path = "" if vhost == "/" else urllib.parse.quote(vhost, safe="")
        return f"{scheme}://{hosts}/{path}"

    def add_vhost(self, name: str) -> None:
        """Create virtual host ``name`` (if missing) and let guest use all of it."""
        with contextlib.suppress(BrokerToolError):
            self.ctl("add_vhost", name)
        self.ctl("set_permissions", "-p", name, "guest", ".*", ".*", ".*")

    @property
    def url(self) -> str:
        return self.url_for("rabbit")

    def node(self, name: str) -> ClusterNode:
        """The node called ``name`` (e.g. a quorum queue's leader)."""
        for n in self.nodes:
            if n.name == name:
                return n
        raise KeyError(f"no node {name!r} in this cluster ({[n.name for n in self.nodes]})")

    def running(self) -> list[ClusterNode]:
        return [n for n in self.nodes if n.alive()]

    def ctl(self, *args: str, timeout: float = 60.0) -> str:
        """``rabbitmqctl ARGS`` on the first running node."""
        last: Exception | None = None
        for n in self.running():
            try:
                return n.ctl(*args, timeout=timeout)
            except BrokerToolError as exc:
                last = exc
        raise BrokerToolError(f"no cluster node answered rabbitmqctl {' '.join(args)}: {last}")

    # membership
    def running_members(self) -> set[str]:
        """Names of the nodes the cluster sees running (cluster_status, from a live node)."""
        text = self.ctl("cluster_status", "--formatter", "json")
        start = text.find("{")
        if start < 0:
            raise BrokerToolError(f"unexpected cluster_status output: {text[:500]!r}")
        return set(json.loads(text[start:]).get("running_nodes", []))

    def wait_formed(self, timeout: float = BOOT_TIMEOUT) -> None:
        """Wait until every node runs and the cluster sees all three running."""
        want = {n.name for n in self.nodes}
        _wait(lambda: self._members_or_empty() >= want, timeout,
              f"the cluster to see {sorted(want)} running")
        for n in self.nodes:
            wait_for_broker(n.host, n.port, timeout)

    def _members_or_empty(self) -> set[str]:
        try:
            return self.running_members()
        except (BrokerToolError, ValueError):
            return set()

    # faults
    def kill(self, node: ClusterNode) -> float:
        """SIGKILL ``node``'s VM; returns the instant of the kill (``time.monotonic()``)."""
        return node.kill()

    def revive(self, node: ClusterNode, timeout: float = BOOT_TIMEOUT) -> None:
        """Boot a killed node again (same name and data, so it rejoins) and wait until the
        cluster sees it running."""
        node.start(timeout)
        _wait(lambda: node.name in self._members_or_empty(), timeout,
              f"{node.name} to rejoin the cluster")

    # quorum queues
    def quorum_queues(self, vhost: str = "/") -> dict[str, dict[str, Any]]:
        """The quorum queues of ``vhost``: ``{name: {leader, members, online}}`` (node names).
        Another node is asked when one does not answer."""
        rows = _json_rows(self.ctl("list_queues", "-p", vhost, "--formatter", "json", "name",
                                   "type", "leader", "members", "online"))
        return {r["name"]: {"leader": r.get("leader"), "members": list(r.get("members") or []),
                            "online": list(r.get("online") or [])}
                for r in rows if r.get("type") == "quorum"}

    def queue_types(self, vhost: str = "/") -> dict[str, str]:
        """``{queue name: type}`` (``classic``, ``quorum``, ...)."""
        rows = _json_rows(self.ctl("list_queues", "-p", vhost, "--formatter", "json", "name",
                                   "type"))
        return {r["name"]: str(r.get("type")) for r in rows}

    def leader(self, queue: str, vhost: str = "/", timeout: float = 30.0) -> ClusterNode:
        """The node that leads quorum queue ``queue`` (waits until it has a leader)."""
        found: list[ClusterNode] = []

        def has_leader() -> bool:
            info = self.quorum_queues(vhost).get(queue)
            name = info and info.get("leader")
            if name and name in {n.name for n in self.nodes}:
                found[:] = [self.node(name)]
                return True
            return False

        _wait(has_leader, timeout, f"quorum queue {queue!r} to have a leader")
        return found[0]

    def not_in_quorum(self, vhost: str = "/") -> dict[str, dict[str, Any]]:
        """Quorum queues with a member offline, or with fewer members than nodes."""
        return {name: info for name, info in self.quorum_queues(vhost).items()
                if set(info["online"]) != set(info["members"])
                or len(info["members"]) < len(self.nodes) or not info["leader"]}

    def wait_all_in_quorum(self, vhost: str = "/", timeout: float = 60.0) -> None:
        """Wait until every quorum queue has a leader and all of its members online."""
        bad: dict[str, Any] = {}

        def ok() -> bool:
            try:
                bad.clear()
                bad.update(self.not_in_quorum(vhost))
            except BrokerToolError as exc:
                bad["?"] = str(exc)
            return not bad

        try:
            _wait(ok, timeout, "every quorum queue to have all members online")
        except BrokerToolError as exc:
            raise BrokerToolError(f"{exc}: {dict(list(bad.items())[:5])}") from None

    def connections_by_node(self) -> dict[str, int]:
        """How many client connections each node holds (by the AMQP port they reached)."""
        by_port = {n.port: n.name for n in self.nodes}
        rows = _json_rows(self.ctl("list_connections", "--formatter", "json", "port"))
        out = {n.name: 0 for n in self.nodes}
        for row in rows:
            name = by_port.get(int(row.get("port") or 0))
            if name:
                out[name] += 1
        return out

    def delete_queues(self, names: list[str], vhost: str = "/") -> None:
        for name in names:
            with contextlib.suppress(BrokerToolError):
                self.ctl("delete_queue", "-p", vhost, name)

    def destroy(self) -> None:
        """Kill every node and remove its folder (idempotent)."""
        for n in self.nodes:
            if n.alive():
                with contextlib.suppress(OSError, TypeError):
                    os.kill(n.pid(), signal.SIGKILL)  # type: ignore[arg-type]
        for n in self.nodes:
            with contextlib.suppress(BrokerToolError):
                _wait(lambda n=n: not n.alive(), 30.0, f"{n.name} to die")  # type: ignore[misc]
            shutil.rmtree(n.base, ignore_errors=True)


def _make_node(tag: str, index: int, cookie: str, config: str) -> ClusterNode:
    port, dist_port = free_port(), free_port()
    base = tempfile.mkdtemp(prefix=f"msgbus-cluster-{index}-")
    os.chmod(base, 0o755)
    with open(os.path.join(base, "rabbitmq.conf"), "w", encoding="utf-8") as f:
        f.write(f"listeners.tcp.local = 127.0.0.1:{port}\nloopback_users = none\n{config}\n")
    with open(os.path.join(base, "enabled_plugins"), "w", encoding="utf-8") as f:
        f.write("[].\n")
    os.makedirs(os.path.join(base, "log"))
    os.makedirs(os.path.join(base, "mnesia"))
    _chown_to_rabbitmq(base)
    return ClusterNode(f"msgbus-{tag}-{index}@localhost", port, dist_port, base, cookie)


#: Tries of one node's ``join_cluster`` (a failed try is followed by ``reset``).
JOIN_TRIES = 3


def _join(node: ClusterNode, seed: ClusterNode, timeout: float) -> None:
    """Join ``node`` to ``seed``'s cluster within ``timeout``. A join that fails (mnesia can
    abort its schema copy, ``{aborted, ... schema_prepare}``, seen when two nodes joined one
    seed at once) is tried again after ``reset``, which also takes the node out of a half-made
    membership."""
    deadline = time.monotonic() + timeout

    def left() -> float:
        return max(1.0, deadline - time.monotonic())

    node.ctl("stop_app", timeout=left())
    for attempt in range(1, JOIN_TRIES + 1):
        try:
            node.ctl("join_cluster", seed.name, timeout=left())
            break
        except BrokerToolError:
            if attempt == JOIN_TRIES or time.monotonic() >= deadline:
                raise
            node.ctl("reset", timeout=left())
    node.start_app(left())


@contextlib.contextmanager
def _sigterm_interrupts() -> Iterator[None]:
    """While inside, SIGTERM raises KeyboardInterrupt (in the main thread, when nobody else
    handles SIGTERM), so that a terminated test run still removes its cluster."""
    import threading
    if (threading.current_thread() is not threading.main_thread()
            or signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL):
        yield
        return

    def interrupt(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)


@contextlib.contextmanager
def rabbit_cluster(size: int = 3, *, config: str = "",
                   timeout: float = BOOT_TIMEOUT) -> Iterator[RabbitCluster]:
    """Start a ``size``-node cluster of private nodes, yield it, and remove it afterwards.

    The VMs boot in parallel; then every node but the first joins the first, one after the
    other (two joining one seed at once can make mnesia abort a join).
    ``config`` adds lines to every node's rabbitmq.conf. The nodes are killed and their folders
    removed on exit, on error, on KeyboardInterrupt or SIGTERM, and at interpreter exit if the
    context was never left.
    """
    tag = f"c{uuid.uuid4().hex[:6]}"
    cookie = secrets.token_hex(16).upper()
    nodes = [_make_node(tag, i, cookie, config) for i in range(1, size + 1)]
    cluster = RabbitCluster(nodes)
    atexit.register(cluster.destroy)
    try:
        with _sigterm_interrupts():
            _in_parallel([lambda n=n: n.start(timeout) for n in nodes])  # type: ignore[misc]
            for node in nodes[1:]:  # one at a time: see _join
                _join(node, nodes[0], timeout)
            cluster.wait_formed(timeout)
            yield cluster
    finally:
        cluster.destroy()
        atexit.unregister(cluster.destroy)
