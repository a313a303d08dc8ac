"""The node-loss scenario on a 3-node cluster: load through quorum queues while one node is
SIGKILLed and brought back, with everything measured (shared by the tests and the chaos tool).

Placement (node A, B, C of the cluster): A declares the topic and notification queues, so it
leads them (RabbitMQ puts a quorum queue's leader on the declaring connection's node); then
nobody is connected to A. The clients and the notifier run on B (their three-host URL lists B
first). To kill the leader, the RPC server and the notification listener run on C and A is
killed: only the queues' leader is lost. To kill the clients' node, the server and the listener
run on B too and B is killed: every connection fails over (clients, servers, reply queue), the
leader stays. Options are the defaults but ``rabbit_quorum_queue = true``.
"""

from __future__ import annotations

import collections
import dataclasses
import json
import threading
import time
from typing import Any, Callable

import msgbus
from msgbus.exceptions import MessagingTimeout
from msgbus.notify import Notifier, get_notification_listener, get_notification_transport
from msgbus.testing.fault_load import CALL_TIMEOUT, DEADLINE_SLACK, Load, Tally, brief, probe
from msgbus.testing.rabbit_cluster import ClusterNode, RabbitCluster

from .cluster_helpers import quorum_conf, unique

#: Clients, servers and listeners carry on within this of the kill (seconds).
FAILOVER_BOUND = 1.0
#: Client threads calling through the fault.
CALLERS = 8
#: Pause between two notifications of the notifying thread (seconds).
NOTIFY_PAUSE = 0.01
#: Casts and notifications handled after the kill (and again after the rejoin) before the
#: scenario moves on: the load runs through the fault, not just past it.
PROGRESS = 150
#: Bound for each wait on progress (seconds).
WAIT = 30.0


class StampedTally(Tally):
    """The server's endpoint: counts calls and casts and notes when each cast was handled."""

    def __init__(self) -> None:
        super().__init__()
        self.cast_times: dict[Any, float] = {}

    def note(self, ctxt: Any, value: Any) -> None:
        self.cast_times.setdefault(value, time.monotonic())
        super().note(ctxt, value)


class NoteSink:
    """The notification listener's endpoint: counts each notification and notes when the first
    copy arrived."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.seen: collections.Counter[int] = collections.Counter()
        self.times: dict[int, float] = {}

    def info(self, ctxt: Any, publisher_id: str, event_type: str, payload: Any,
             metadata: Any) -> None:
        n = int(payload["n"])
        with self._lock:
            self.seen[n] += 1
            self.times.setdefault(n, time.monotonic())

    def snapshot(self) -> tuple[collections.Counter[int], dict[int, float]]:
        with self._lock:
            return collections.Counter(self.seen), dict(self.times)


class Notifying:
    """One thread sending ``info(n=0, 1, ...)`` every :data:`NOTIFY_PAUSE` s until stopped;
    it records the numbers whose ``info()`` returned."""

    def __init__(self, notifier: Notifier) -> None:
        self.notifier = notifier
        self.sent: list[int] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True, name="cluster-notifier")

    def _run(self) -> None:
        n = 0
        while not self._stop.is_set():
            self.notifier.info({}, "cluster.tick", {"n": n})
            self.sent.append(n)
            n += 1
            self._stop.wait(NOTIFY_PAUSE)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(WAIT)


@dataclasses.dataclass
class Outcome:
    """What one run measured (``facts``) and what broke the contract (``problems``)."""

    scenario: str
    facts: list[str] = dataclasses.field(default_factory=list)
    problems: list[str] = dataclasses.field(default_factory=list)
    numbers: dict[str, float] = dataclasses.field(default_factory=dict)

    def summary(self) -> str:
        return f"{self.scenario}: " + "; ".join(self.facts)


def _wait_until(predicate: Callable[[], bool], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


class Stack:
    """Transports, servers and listeners of one run; closed newest first."""

    def __init__(self) -> None:
        self._items: list[Callable[[], None]] = []

    def add(self, fn: Callable[[], None]) -> None:
        self._items.append(fn)

    def transport(self, url: str, notifications: bool = False) -> Any:
        make = get_notification_transport if notifications else msgbus.get_rpc_transport
        transport = make(quorum_conf(), url=url)
        self.add(transport.cleanup)
        return transport

    def started(self, server: Any) -> Any:
        def stop() -> None:
            server.stop()
            server.wait()
        server.start()
        self.add(stop)
        return server

    def close(self) -> None:
        errors = []
        for fn in reversed(self._items):
            try:
                fn()
            except Exception as exc:  # noqa: BLE001 - every cleanup runs
                errors.append(exc)
        self._items.clear()
        if errors:
            raise errors[0]


def _declare_on(stack: Stack, url: str, topic: str) -> None:
    """Declare the topic's RPC and notification queues from a node (which becomes their leader),
    then stop consuming there."""
    side = Stack()
    try:
        side.started(msgbus.get_rpc_server(side.transport(url), msgbus.Target(topic=topic,
                                                                             server="seed"),
                                           [Tally()]))
        side.started(get_notification_listener(side.transport(url, notifications=True),
                                               [msgbus.Target(topic=topic)], [NoteSink()]))
    finally:
        side.close()


def run(cluster: RabbitCluster, scheme: str, victim: str, settle: float = 0.0) -> Outcome:
    """Kill ``victim`` ("leader": the node leading the topic queue; "clients": the node the
    clients are connected to) under load on driver ``scheme``, bring it back, and judge.
    ``settle`` adds seconds of load after the rejoin (the chaos tool's longer runs)."""
    a, b, c = cluster.nodes
    topic = unique(f"{scheme}-{victim}")
    what = "the topic queue's leader" if victim == "leader" else "the clients' and servers' node"
    out = Outcome(f"{scheme}, kill {what}")
    stack = Stack()
    try:
        _declare_on(stack, cluster.url_for(scheme, [a, b, c]), topic)
        client_url = cluster.url_for(scheme, [b, c, a])
        server_url = cluster.url_for(scheme, [c, a, b]) if victim == "leader" else client_url
        tally = StampedTally()
        stack.started(msgbus.get_rpc_server(stack.transport(server_url),
                                            msgbus.Target(topic=topic, server="s1"), [tally]))
        sink = NoteSink()
        stack.started(get_notification_listener(stack.transport(server_url, notifications=True),
                                                [msgbus.Target(topic=topic)], [sink]))
        client = msgbus.get_rpc_client(stack.transport(client_url), msgbus.Target(topic=topic))
        notifier = Notifier(stack.transport(client_url, notifications=True), "cluster.test",
                            driver="messagingv2", topics=[topic])
        leaders = {q: cluster.leader(q).name for q in (topic, f"{topic}.info")}
        if set(leaders.values()) != {a.name}:
            out.problems.append(f"the queues were declared from {a.name} but are led by "
                                f"{leaders}: the placement this scenario relies on did not hold")
        target: ClusterNode = a if victim == "leader" else b
        load = Load(client, tally, callers=CALLERS)
        notifying = Notifying(notifier)
        with load:
            notifying.start()
            try:
                _run_fault(cluster, target, load, tally, notifying, sink, out, settle)
            finally:
                notifying.stop()
        _judge(load, tally, notifying, sink, out)
        try:
            cluster.wait_all_in_quorum(timeout=WAIT)
        except Exception as exc:  # noqa: BLE001 - reported
            out.problems.append(f"not every queue is back in quorum: {brief(exc, 600)}")
        else:
            out.facts.append("every quorum queue has all 3 members online at the end")
    finally:
        stack.close()
        cluster.delete_queues([topic, f"{topic}.s1", f"{topic}.seed", f"{topic}.info"])
    return out


def _run_fault(cluster: RabbitCluster, target: ClusterNode, load: Load, tally: StampedTally,
               notifying: Notifying, sink: NoteSink, out: Outcome, settle: float) -> None:
    connections = cluster.connections_by_node()
    if target is cluster.nodes[0] and connections[target.name]:
        out.problems.append(f"{target.name} (the leader) held {connections[target.name]} client "
                            "connections before the kill: it should lead the queues only")
    if target is cluster.nodes[1] and not connections[target.name]:
        out.problems.append(f"the clients were not connected to {target.name}: {connections}")
    cast_before = max(load.returned_casts(), default=-1)
    killed = cluster.kill(target)
    prober = Prober(load.client)
    out.numbers["killed"] = killed
    # what was sent after the kill: a cast or notification numbered past the last one that had
    # returned (the one in flight at the kill may have been sent before it)
    cast_after = cast_before + 2
    note_after = (notifying.sent[-1] if notifying.sent else -1) + 2
    out.facts.append(f"killed {target.name} at {time.time():.3f} (wall clock; connections "
                     f"before: {connections})")

    def casts_after(instant: float) -> int:
        return sum(1 for t in list(tally.cast_times.values()) if t > instant)

    if not _wait_until(lambda: casts_after(killed) >= PROGRESS
                       and sum(1 for t in sink.snapshot()[1].values() if t > killed) >= PROGRESS,
                       WAIT):
        out.problems.append(f"the load made little progress in {WAIT:g}s after the kill: "
                            f"{casts_after(killed)} casts handled")
    prober.stop()
    _failover(prober, tally, sink, killed, cast_after, note_after, out)
    if any(error is not None for _, error in prober.outcomes):
        out.problems.append("reply queues the cluster lists now (name: consumers): "
                            f"{_reply_queues(cluster)} - a reply queue its client consumes but "
                            "the cluster does not list was deleted by RabbitMQ's node-down "
                            "clean-up after the client declared it again (see doc/cluster.md)")
    t0 = time.monotonic()
    cluster.revive(target)
    out.facts.append(f"{target.name} rejoined {time.monotonic() - t0:.1f}s after its restart")
    rejoined = time.monotonic()
    if not _wait_until(lambda: casts_after(rejoined) >= PROGRESS, WAIT):
        out.problems.append(f"the load made little progress in {WAIT:g}s after the rejoin")
    if settle:
        time.sleep(settle)  # the chaos tool's longer run: load keeps going for this long


def _reply_queues(cluster: RabbitCluster) -> dict[str, int]:
    try:
        text = cluster.ctl("list_queues", "name", "consumers", "--formatter", "json")
        rows = json.loads(text[text.find("["):])
    except Exception as exc:  # noqa: BLE001 - a diagnostic only
        return {"?": 0, f"({brief(exc)})": 0}
    return {r["name"]: r["consumers"] for r in rows if str(r["name"]).startswith("reply_")}


class Prober:
    """From the kill on, one thread calling ``echo`` again and again (fault_load.probe, 10 s
    timeout) until a call succeeds: the load's callers may all be waiting on calls that were in
    flight at the kill, so they cannot tell when a new call gets through."""

    def __init__(self, client: Any) -> None:
        self.client = client
        self.outcomes: list[tuple[float, BaseException | None]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True, name="cluster-prober")
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            ended, error = probe(self.client)
            self.outcomes.append((ended, error))
            if error is None:
                return

    def stop(self) -> None:
        """Wait for the probing to end (bounded by one call's timeout)."""
        self._stop.set()
        self._thread.join(CALL_TIMEOUT + DEADLINE_SLACK + 1.0)

    def first_success(self) -> float | None:
        return next((ended for ended, error in self.outcomes if error is None), None)


def _failover(prober: Prober, tally: StampedTally, sink: NoteSink, killed: float,
              cast_after: int, note_after: int, out: Outcome) -> None:
    """How long after the kill the first call issued after it succeeded, and the first cast and
    notification sent after it were handled."""
    failed = [error for _, error in prober.outcomes if error is not None]
    if failed:
        out.problems.append(f"{len(failed)} call(s) issued after the kill failed before one "
                            f"succeeded; the first: {brief(failed[0])}")
    measures = {
        "call": prober.first_success(),
        "cast": min((t for v, t in list(tally.cast_times.items())
                     if isinstance(v, int) and v >= cast_after), default=None),
        "notification": min((t for n, t in sink.snapshot()[1].items() if n >= note_after),
                            default=None),
    }
    shown = []
    for what, at in measures.items():
        if at is None:
            out.problems.append(f"no {what} issued after the kill got through")
            continue
        took = at - killed
        out.numbers[f"failover_{what}"] = took
        shown.append(f"{what} {took * 1000:.0f} ms")
        if took > FAILOVER_BOUND:
            out.problems.append(f"the first {what} issued after the kill got through only "
                                f"{took:.2f}s later (bound {FAILOVER_BOUND:g}s)")
    out.facts.append("first after the kill: " + ", ".join(shown))


def _judge(load: Load, tally: StampedTally, notifying: Notifying, sink: NoteSink,
           out: Outcome) -> None:
    killed = out.numbers["killed"]
    handled, _ = tally.snapshot()
    done = [c for c in load.calls if c.end is not None]
    hung = [c for c in load.calls if c.end is None]
    if hung:
        out.problems.append(f"{len(hung)} call(s) never returned")
    late = [c for c in done if c.took > c.timeout + DEADLINE_SLACK]
    if late:
        out.problems.append(f"{len(late)} call(s) ended past their deadline; the longest took "
                            f"{max(c.took for c in late):.2f}s")
    wrong = [c for c in done if c.error is None and c.result != c.value]
    if wrong:
        out.problems.append(f"{len(wrong)} call(s) got another call's reply")
    failed = [c for c in done if c.error is not None]
    # a call in flight at the kill may lose its reply with the clients' node (its reply queue
    # is not replicated); it then ends with MessagingTimeout by its deadline
    excused = [c for c in failed if isinstance(c.error, MessagingTimeout)
               and c.start <= killed + FAILOVER_BOUND]
    unexcused = [c for c in failed if c not in excused]
    if unexcused:
        kinds = collections.Counter(type(c.error).__name__ for c in unexcused)
        out.problems.append(f"{len(unexcused)} call(s) failed that should have succeeded "
                            f"({dict(kinds)}), e.g. {brief(unexcused[0].error)}")
    twice_calls = [v for v, n in handled.items() if n > 1]
    if twice_calls:
        out.problems.append(f"{len(twice_calls)} call(s) executed more than once")
    out.facts.append(f"{len(done) - len(failed)} calls ok, {len(failed)} timed out "
                     f"({len(excused)} in flight at the kill), longest "
                     f"{max((c.took for c in done), default=0):.2f}s")
    out.numbers["calls_failed"] = len(failed)
    # casts: every one that returned handled exactly once
    if load.casts_failed:
        out.problems.append(f"{len(load.casts_failed)} cast(s) raised: "
                            f"{load.casts_failed[0][1][:300]}")
    returned = load.returned_casts()
    tally.wait_casts(returned, WAIT)
    _, cast_counts = tally.snapshot()
    lost = [v for v in returned if not cast_counts[v]]
    twice = [v for v, n in cast_counts.items() if n > 1]
    if lost:
        out.problems.append(f"{len(lost)} of {len(returned)} casts that returned were never "
                            f"handled, e.g. {lost[:10]}")
    if twice:
        out.problems.append(f"{len(twice)} cast(s) handled more than once, e.g. {twice[:10]}")
    out.facts.append(f"{len(returned)} casts returned, {len(returned) - len(lost)} handled, "
                     f"{len(twice)} twice")
    # notifications: every one sent handled exactly once
    sent = list(notifying.sent)
    _wait_until(lambda: all(sink.snapshot()[0][n] for n in sent), WAIT)
    seen, _ = sink.snapshot()
    n_lost = [n for n in sent if not seen[n]]
    n_twice = [n for n, k in seen.items() if k > 1]
    if n_lost:
        out.problems.append(f"{len(n_lost)} of {len(sent)} notifications never reached the "
                            f"listener, e.g. {n_lost[:10]}")
    if n_twice:
        out.problems.append(f"{len(n_twice)} notification(s) handled more than once, e.g. "
                            f"{n_twice[:10]}")
    out.facts.append(f"{len(sent)} notifications sent, {len(sent) - len(n_lost)} handled, "
                     f"{len(n_twice)} twice")
