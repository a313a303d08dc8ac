"""Fault scenarios: the fault contract, held against every driver that can be broken.

They break the broker or the path to it through a ``fault_injector`` fixture that the driver's
test module provides (:class:`msgbus.testing.fault_injector.FaultInjector`; the RabbitMQ one is
:mod:`msgbus.testing.rabbit_faults`). Every transport they make uses the injector's URL, which
carries no options: drivers are held to the contract with their DEFAULT settings. The recovery
scenarios run under concurrent load: ``CALLERS`` threads calling ``echo`` with a timeout of
``CALL_TIMEOUT`` seconds and one thread sending numbered casts, every outcome counted.

What they hold a driver to (the numbers are constants of :mod:`msgbus.testing.fault_load`
and of this module):

* **Deadlines.** Every call returns, or raises MessagingTimeout, within its timeout plus
  ``DEADLINE_SLACK`` (0.5 s: thread wake-ups and a loaded CI machine), whatever the broker
  does. A server start against a broker that is down fails within the core's ``listen_timeout``
  option plus the same slack.
* **Outages shorter than a call's timeout are invisible.** A call fails only if its deadline
  fell inside the fault or within ``RECOVERY_BOUND + DEADLINE_SLACK`` after it ended; through
  plain connection drops no call fails at all.
* **Quick recovery.** The first call issued once the broker accepts connections again (after a
  drop, a restart or a thaw) succeeds within ``RECOVERY_BOUND`` (0.5 s, the contract's
  figure; measured and shown in every scenario's summary).
* **A cast that returned is processed, once.** Every cast that returned without error is
  handled by the server exactly once; with the default ``retry`` (forever) no cast raises.
  The one honest exception (what sits in a non-durable queue when the broker stops dies with
  it) is kept out of the counts by design: see the restart scenario.

Gating, by exactly what each needs:

* :class:`TestRecoveryFromFaults` needs ``Capability.RECONNECT`` (a visible xfail without it).
  A driver that declares it must come with a ``fault_injector``: without one these scenarios
  fail (never skip), saying so.
* :class:`TestDeadlinesWhileTheBrokerIsDown` needs no capability, only a ``fault_injector``:
  without one they are a visible xfail, unless the driver declares RECONNECT (then they fail).
* :class:`TestUseAfterCleanup` needs nothing and applies to every driver, fake:// included.

A failure lists every problem found with the counts and timings, not only the first one.
"""

from __future__ import annotations

import time
from typing import Any, Callable, ClassVar, Iterator

import pytest

import msgbus
from msgbus import envelope
from msgbus import options as msgbus_options
from msgbus.driver.base import Capability
from msgbus.exceptions import MessagingException, MessagingTimeout
from msgbus.notify import Notifier, get_notification_listener
from msgbus.rpc.client import RPCClient
from msgbus.testing.fault_injector import FaultInjector
from msgbus.testing.fault_load import (CALL_TIMEOUT, DEADLINE_SLACK, RECOVERY_BOUND, Load, Tally,
                                       Verdict, brief, fail_unless_all_failed_in_time, probe,
                                       run_timed)
from msgbus.testing.fixtures import WAIT, Bus, require

__all__ = ["TestRecoveryFromFaults", "TestDeadlinesWhileTheBrokerIsDown", "TestUseAfterCleanup"]

#: Connection drops in the drop scenario, and the time between two of them (seconds).
DROPS = 3
DROP_INTERVAL = 1.5
#: How long the broker stays down in the restart scenario (seconds, from the stop command).
DOWN_SECONDS = 4.0
#: How long the link stays frozen, and the calls' timeout meanwhile (shorter: some must end
#: during the freeze, by their deadline).
FREEZE_SECONDS = 4.0
FREEZE_CALL_TIMEOUT = 3.0
#: How long the load runs before a fault, and after the last one (seconds).
RUN_BEFORE = 1.0
RUN_AFTER = 2.0
#: The timeout of the calls made while the broker is down (seconds).
DOWN_CALL_TIMEOUT = 2.0
#: The ``listen_timeout`` option set for the server start against a broker that is down.
LISTEN_TIMEOUT = 2.0
#: A closed transport must raise within this (seconds).
AT_ONCE = 0.5


def _fault_injector(request: pytest.FixtureRequest, bus: Bus, reconnect: bool) -> FaultInjector:
    declared = Capability.RECONNECT in bus.capabilities
    if reconnect:
        require(bus, Capability.RECONNECT)
    try:
        injector = request.getfixturevalue("fault_injector")
    except pytest.FixtureLookupError:
        if declared:
            pytest.fail(f"the driver for {bus.scheme}:// declares capability 'reconnect', but "
                        "its test module provides no `fault_injector` fixture, so the fault "
                        "scenarios cannot hold it to that: provide one (see "
                        "msgbus.testing.fault_injector; for RabbitMQ, "
                        "msgbus.testing.rabbit_faults.rabbit_fault_injector) or do not declare "
                        "RECONNECT", pytrace=False)
        pytest.xfail(f"the test module of {bus.scheme}:// provides no `fault_injector` fixture "
                     "(these scenarios need one to make the broker unreachable)")
    if not isinstance(injector, FaultInjector):
        pytest.fail(f"the `fault_injector` fixture gave {injector!r}, which does not have what "
                    "msgbus.testing.fault_injector.FaultInjector has (url, drop_connections, "
                    "freeze, thaw, stop, start, heal)", pytrace=False)
    return injector


class Faults:
    """A scenario's injector and a :class:`Bus` on the injector's URL."""

    def __init__(self, injector: FaultInjector, bus: Bus) -> None:
        self.injector = injector
        self.bus = bus

    def loaded(self, name: str, call_timeout: float = CALL_TIMEOUT) -> Load:
        """A server (a :class:`Tally`) on a new topic and a :class:`Load` on it, not started."""
        topic = self.bus.topic(name)
        tally = Tally()
        self.bus.server(topic, [tally])
        return Load(self.bus.client(topic, timeout=call_timeout), tally,
                    call_timeout=call_timeout)


class FaultScenarios:
    """Base of the fault scenario classes: the ``faults`` fixture, which heals the broker after
    each scenario (before the scenario's transports are closed)."""

    #: Whether the scenarios of the class need Capability.RECONNECT.
    needs_reconnect: ClassVar[bool] = True

    @pytest.fixture
    def faults(self, request: pytest.FixtureRequest, bus: Bus) -> Iterator[Faults]:
        injector = _fault_injector(request, bus, self.needs_reconnect)
        fault_bus = Bus(injector.url)
        try:
            yield Faults(injector, fault_bus)
        finally:
            try:
                injector.heal()
            finally:
                fault_bus.close()


class TestRecoveryFromFaults(FaultScenarios):
    """Connection drops, a broker restart and a frozen link, under load (RECONNECT)."""

    def test_calls_and_casts_through_three_connection_drops(self, faults: Faults) -> None:
        """Every connection is dropped 3 times, DROP_INTERVAL apart: no call fails or ends past
        its deadline, every returned cast is handled once, and the first call after each drop
        succeeds within RECOVERY_BOUND."""
        verdict = Verdict(f"through {DROPS} connection drops")
        with faults.loaded("drops") as load:
            for n in range(1, DROPS + 1):
                time.sleep(DROP_INTERVAL)
                dropped = faults.injector.drop_connections()
                dropped_at = time.monotonic()
                verdict.facts.append(f"drop {n} ({dropped} connections) done at "
                                     f"{verdict.at(dropped_at)}")
                if not dropped:
                    verdict.problems.append(f"drop {n}: the fault injector found no connection "
                                            "to drop")
                verdict.recovery(f"drop {n}", dropped_at, probe(load.client))
            time.sleep(RUN_AFTER)
        verdict.calls(load, may_fail=lambda call: False)
        verdict.casts(load)
        verdict.conclude()

    def test_calls_and_casts_through_a_broker_restart(self, faults: Faults) -> None:
        """The broker stops for DOWN_SECONDS and starts again, under load.

        Calls whose timeout outlasts the outage succeed, no call ends past its deadline, every
        cast that returned is handled exactly once, and the first call issued once the broker
        accepts connections again succeeds within RECOVERY_BOUND.

        The one honest exception of the contract, what sits in a non-durable queue when the
        broker stops dies with it, must not blur the counts: so just before the stop the load
        pauses until every call has returned and every cast returned so far has been handled
        (the server consumes promptly: nothing is left in a queue), and it resumes as soon as
        the broker is down. Every call and cast made during the outage, and after it, is then
        one the contract covers in full.
        """
        verdict = Verdict(f"through a broker restart ({DOWN_SECONDS:g}s down)")
        with faults.loaded("restart") as load:
            time.sleep(RUN_BEFORE)
            if not load.pause(CALL_TIMEOUT + DEADLINE_SLACK + 5.0):
                verdict.problems.append("before the restart, some calls or casts did not return "
                                        "(no fault yet)")
            if not load.tally.wait_casts(load.returned_casts(), WAIT):
                verdict.problems.append("before the restart, some returned casts were not "
                                        f"handled within {WAIT:g}s (no fault yet)")
            stopped_at = time.monotonic()
            faults.injector.stop()
            load.resume()
            time.sleep(max(0.0, stopped_at + DOWN_SECONDS - time.monotonic()))
            back_at = faults.injector.start()
            verdict.recovery("the broker accepted connections again", back_at,
                             probe(load.client))
            verdict.facts.append(f"broker down from {verdict.at(stopped_at)} to "
                                 f"{verdict.at(back_at)}")
            time.sleep(RUN_AFTER)
        excused_until = back_at + RECOVERY_BOUND + DEADLINE_SLACK
        verdict.calls(load, may_fail=lambda call: stopped_at <= call.deadline <= excused_until)
        verdict.casts(load)
        verdict.conclude()

    def test_calls_end_by_their_deadline_on_a_frozen_link_and_recover_after_it(
            self, faults: Faults) -> None:
        """The link stalls for FREEZE_SECONDS (nothing moves, nobody is told) while callers use
        a FREEZE_CALL_TIMEOUT timeout: calls end by their deadline; after the thaw the first
        call succeeds within RECOVERY_BOUND, calls whose deadline comes later than that
        succeed, and every cast that returned is handled exactly once."""
        verdict = Verdict(f"through a frozen link ({FREEZE_SECONDS:g}s, call timeout "
                          f"{FREEZE_CALL_TIMEOUT:g}s)")
        with faults.loaded("freeze", call_timeout=FREEZE_CALL_TIMEOUT) as load:
            time.sleep(RUN_BEFORE)
            frozen_at = time.monotonic()
            faults.injector.freeze()
            time.sleep(FREEZE_SECONDS)
            faults.injector.thaw()
            thawed_at = time.monotonic()
            verdict.recovery("the thaw", thawed_at, probe(load.client))
            time.sleep(RUN_AFTER)
        excused_until = thawed_at + RECOVERY_BOUND + DEADLINE_SLACK
        verdict.calls(load, may_fail=lambda call: frozen_at <= call.deadline <= excused_until)
        verdict.casts(load)
        verdict.conclude()


class TestDeadlinesWhileTheBrokerIsDown(FaultScenarios):
    """A broker that stays down: calls and server starts end in time (any driver with a
    ``fault_injector``; no capability needed)."""

    needs_reconnect = False

    def test_call_to_a_down_broker_times_out_in_time(self, faults: Faults) -> None:
        """With the broker down for longer than their timeout, a call on a transport that was
        connected and one on a new transport raise MessagingTimeout within the timeout +
        DEADLINE_SLACK (connecting and the first reply-queue setup included)."""
        topic = faults.bus.topic("down")
        faults.bus.server(topic, [Tally()])
        connected = faults.bus.client(topic, timeout=DOWN_CALL_TIMEOUT)
        assert connected.prepare(timeout=CALL_TIMEOUT).call({}, "echo", value="up") == "up"
        faults.injector.stop()
        fresh = faults.bus.client(topic, timeout=DOWN_CALL_TIMEOUT)
        outcomes = run_timed({
            "a call on a transport that was connected":
                lambda: connected.call({}, "echo", value="down"),
            "a call on a new transport": lambda: fresh.call({}, "echo", value="down"),
        }, bound=DOWN_CALL_TIMEOUT + WAIT)
        fail_unless_all_failed_in_time(outcomes, MessagingTimeout, DOWN_CALL_TIMEOUT,
                                       f"timeout {DOWN_CALL_TIMEOUT:g}s",
                                       DOWN_CALL_TIMEOUT + WAIT)

    def test_server_start_against_a_down_broker_fails_within_listen_timeout(
            self, faults: Faults) -> None:
        """With the broker down, starting an RPC server or a notification listener fails with
        a MessagingException within the core's ``listen_timeout`` option (set to
        LISTEN_TIMEOUT here: it tunes the bound, nothing else) + DEADLINE_SLACK."""
        conf = msgbus_options.new_conf()
        conf.set_override("listen_timeout", LISTEN_TIMEOUT)
        topic = faults.bus.topic("nolisten")
        faults.injector.stop()
        server = faults.bus.track(msgbus.get_rpc_server(
            faults.bus.transport(conf=conf), msgbus.Target(topic=topic, server="s1"), [Tally()]))
        listener = faults.bus.track(get_notification_listener(
            faults.bus.notification_transport(conf=conf), [msgbus.Target(topic=topic)],
            [_Sink()]))
        outcomes = run_timed({"an RPC server's start()": server.start,
                              "a notification listener's start()": listener.start},
                             bound=LISTEN_TIMEOUT + WAIT)
        fail_unless_all_failed_in_time(outcomes, MessagingException, LISTEN_TIMEOUT,
                                       f"listen_timeout {LISTEN_TIMEOUT:g}s",
                                       LISTEN_TIMEOUT + WAIT)


class _Sink:
    """A notification endpoint that ignores what it gets."""

    def info(self, ctxt: Any, publisher_id: str, event_type: str, payload: Any,
             metadata: Any) -> None:
        pass


def raises_at_once(what: str, action: Callable[[], Any]) -> None:
    """Fail unless ``action`` raises a MessagingException within :data:`AT_ONCE` seconds."""
    out = run_timed({what: action}, bound=CALL_TIMEOUT + WAIT)[what]
    if out.took is None:
        pytest.fail(f"{what} was still blocked after {CALL_TIMEOUT + WAIT:g}s: it must raise "
                    "at once", pytrace=False)
    if out.error is None:
        pytest.fail(f"{what} did not raise (took {out.took:.2f}s, returned {out.result!r})",
                    pytrace=False)
    if not isinstance(out.error, MessagingException):
        pytest.fail(f"{what} raised {brief(out.error)}, not a msgbus MessagingException",
                    pytrace=False)
    if out.took > AT_ONCE:
        pytest.fail(f"{what} raised only after {out.took:.2f}s (bound {AT_ONCE:g}s): "
                    f"{brief(out.error)}", pytrace=False)


class TestUseAfterCleanup:
    """A transport used after ``cleanup()`` raises at once: call, cast, notify, server start
    (every driver; no fault needed)."""

    @staticmethod
    def closed_rpc(bus: Bus) -> tuple[str, msgbus.Transport, RPCClient]:
        """A served topic, and a client whose transport made a call, then was cleaned up."""
        topic = bus.topic("closed")
        bus.server(topic, [Tally()])
        transport = bus.transport()
        client = bus.client(topic, transport=transport, timeout=CALL_TIMEOUT)
        assert client.call({}, "echo", value="before") == "before"
        transport.cleanup()
        return topic, transport, client

    def test_call_after_cleanup_raises_at_once(self, bus: Bus) -> None:
        _, _, client = self.closed_rpc(bus)
        raises_at_once("call() on a cleaned-up transport",
                       lambda: client.call({}, "echo", value="after"))

    def test_cast_after_cleanup_raises_at_once(self, bus: Bus) -> None:
        _, _, client = self.closed_rpc(bus)
        raises_at_once("cast() on a cleaned-up transport",
                       lambda: client.cast({}, "note", value="after"))

    def test_notify_after_cleanup_raises_at_once(self, bus: Bus) -> None:
        """The transport's send_notification raises at once; a Notifier, which never raises
        (a notification must not break what it reports), returns at once."""
        topic = bus.topic("closed-notif")
        transport = bus.notification_transport()
        notifier = Notifier(transport, "suite.closed", driver="messagingv2", topics=[topic])
        notifier.info({}, "suite.before", 1)
        transport.cleanup()
        raises_at_once("send_notification() on a cleaned-up transport",
                       lambda: transport.send_notification(
                           msgbus.Target(topic=f"{topic}.info"),
                           envelope.encode({"suite": "after cleanup"})))
        out = run_timed({"info": lambda: notifier.info({}, "suite.after", 2)},
                        bound=CALL_TIMEOUT + WAIT)["info"]
        assert out.took is not None and out.took <= AT_ONCE, \
            f"Notifier.info() on a cleaned-up transport took {out.took}s (bound {AT_ONCE:g}s)"

    def test_server_start_after_cleanup_raises_at_once(self, bus: Bus) -> None:
        topic, transport, _ = self.closed_rpc(bus)
        server = bus.track(msgbus.get_rpc_server(
            transport, msgbus.Target(topic=topic, server="s2"), [Tally()]))
        raises_at_once("an RPC server's start() on a cleaned-up transport", server.start)
        notification_transport = bus.notification_transport()
        notification_transport.cleanup()
        listener = bus.track(get_notification_listener(
            notification_transport, [msgbus.Target(topic=topic)], [_Sink()]))
        raises_at_once("a notification listener's start() on a cleaned-up transport",
                       listener.start)
