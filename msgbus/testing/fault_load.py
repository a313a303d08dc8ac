"""Load and verdicts for the fault scenarios (:mod:`msgbus.testing.suite.faults`): client
threads calling and casting through a fault, every outcome counted, and a :class:`Verdict` that
lists every broken promise with its counts and timings. Usable by a driver's own fault tests.
"""

from __future__ import annotations

import collections
import dataclasses
import threading
import time
import uuid
from typing import Any, Callable, Iterable

import pytest

from msgbus.exceptions import MessagingTimeout
from msgbus.rpc.client import RPCClient
from msgbus.testing.fixtures import WAIT

#: Client threads calling ``echo`` during the recovery scenarios.
CALLERS = 16
#: Their call timeout (seconds): longer than every outage the scenarios make.
CALL_TIMEOUT = 10.0
#: Pause between two casts of the casting thread (seconds): at most ~200 casts a second.
CAST_PAUSE = 0.005
#: How far past its deadline a call may end (seconds), and a server start past listen_timeout.
DEADLINE_SLACK = 0.5
#: The first call issued once the broker accepts connections again succeeds within this.
RECOVERY_BOUND = 0.5


class Tally:
    """The server's endpoint: counts every call and cast it handles, by value."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self.calls: collections.Counter[str] = collections.Counter()
        self.casts: collections.Counter[Any] = collections.Counter()

    def echo(self, ctxt: Any, value: str) -> str:
        with self._cond:
            self.calls[value] += 1
        return value

    def note(self, ctxt: Any, value: Any) -> None:
        with self._cond:
            self.casts[value] += 1
            self._cond.notify_all()

    def wait_casts(self, values: Iterable[Any], timeout: float = WAIT) -> bool:
        """Wait until every one of ``values`` was handled at least once."""
        wanted = set(values)
        with self._cond:
            return self._cond.wait_for(lambda: all(self.casts[v] for v in wanted), timeout)

    def snapshot(self) -> tuple[collections.Counter[str], collections.Counter[Any]]:
        with self._cond:
            return collections.Counter(self.calls), collections.Counter(self.casts)


@dataclasses.dataclass
class CallOutcome:
    """One call of the load: when it began and ended, and how."""

    value: str
    start: float
    timeout: float
    end: float | None = None
    result: Any = None
    error: BaseException | None = None

    @property
    def deadline(self) -> float:
        return self.start + self.timeout

    @property
    def took(self) -> float:
        return (self.end if self.end is not None else time.monotonic()) - self.start


class Load:
    """:data:`CALLERS` threads calling ``echo`` and one thread casting ``note(0), note(1), ...``
    through one client, until stopped. ``pause`` holds every thread before its next message
    and waits until none is busy; ``resume`` lets them go on. A context manager: it starts the
    load, waits until it is going (every caller had a reply, casts are handled), and stops it.
    """

    def __init__(self, client: RPCClient, tally: Tally, callers: int = CALLERS,
                 call_timeout: float = CALL_TIMEOUT, cast_pause: float = CAST_PAUSE) -> None:
        self.client = client.prepare(timeout=call_timeout)
        self.tally = tally
        self.call_timeout = call_timeout
        self.cast_pause = cast_pause
        self.calls: list[CallOutcome] = []
        self.casts_ok: list[int] = []
        self.casts_failed: list[tuple[int, str]] = []
        self._cond = threading.Condition()
        self._open = True
        self._stopping = False
        self._busy = 0
        self._threads = [threading.Thread(target=self._call_loop, args=(n,), daemon=True,
                                          name=f"suite-caller-{n}") for n in range(callers)]
        self._threads.append(threading.Thread(target=self._cast_loop, daemon=True,
                                              name="suite-caster"))

    def _enter(self) -> bool:
        with self._cond:
            while not self._open and not self._stopping:
                self._cond.wait()
            if self._stopping:
                return False
            self._busy += 1
            return True

    def _leave(self) -> None:
        with self._cond:
            self._busy -= 1
            self._cond.notify_all()

    def _call_loop(self, n: int) -> None:
        i = 0
        while self._enter():
            try:
                outcome = CallOutcome(f"c{n}-{i}", time.monotonic(), self.call_timeout)
                i += 1
                with self._cond:
                    self.calls.append(outcome)
                try:
                    outcome.result = self.client.call({}, "echo", value=outcome.value)
                except Exception as exc:  # noqa: BLE001 - every outcome is judged later
                    outcome.error = exc
                outcome.end = time.monotonic()
            finally:
                self._leave()

    def _cast_loop(self) -> None:
        i = 0
        while self._enter():
            try:
                try:
                    self.client.cast({}, "note", value=i)
                except Exception as exc:  # noqa: BLE001 - every outcome is judged later
                    with self._cond:
                        self.casts_failed.append((i, f"{type(exc).__name__}: {exc}"))
                else:
                    with self._cond:
                        self.casts_ok.append(i)
                i += 1
            finally:
                self._leave()
            time.sleep(self.cast_pause)

    def ok_calls(self) -> int:
        with self._cond:
            return sum(1 for c in self.calls if c.end is not None and c.error is None)

    def returned_casts(self) -> list[int]:
        with self._cond:
            return list(self.casts_ok)

    def start(self) -> None:
        for thread in self._threads:
            thread.start()

    def wait_going(self, timeout: float = WAIT) -> None:
        """Fail the test unless every caller got a reply and casts are handled in time."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.ok_calls() >= len(self._threads) and self.tally.snapshot()[1]:
                return
            time.sleep(0.02)
        pytest.fail(f"the load did not get going before any fault was made: {self.ok_calls()} "
                    f"calls succeeded and {sum(self.tally.snapshot()[1].values())} casts were "
                    f"handled in {timeout:g}s", pytrace=False)

    def pause(self, timeout: float) -> bool:
        """Hold every thread before its next message; False if some were still busy after
        ``timeout`` seconds."""
        with self._cond:
            self._open = False
            return self._cond.wait_for(lambda: self._busy == 0, timeout)

    def resume(self) -> None:
        with self._cond:
            self._open = True
            self._cond.notify_all()

    def stop(self) -> None:
        """Let every thread finish its message and end (bounded: a call hanging past its
        deadline stays recorded as unfinished)."""
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
        until = time.monotonic() + self.call_timeout + DEADLINE_SLACK + 5.0
        for thread in self._threads:
            thread.join(max(0.0, until - time.monotonic()))

    def __enter__(self) -> Load:
        self.start()
        try:
            self.wait_going()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def probe(client: Any) -> tuple[float, BaseException | None]:
    """One call on ``client`` (an RPCClient or a prepared one) with a timeout of
    :data:`CALL_TIMEOUT`; returns the instant it ended and its error, if any."""
    value = f"probe-{uuid.uuid4().hex[:8]}"
    try:
        got = client.prepare(timeout=CALL_TIMEOUT).call({}, "echo", value=value)
        error: BaseException | None = None
        if got != value:
            error = AssertionError(f"asked {value!r}, got {got!r}")
    except Exception as exc:  # noqa: BLE001 - reported by the caller
        error = exc
    return time.monotonic(), error


def brief(exc: BaseException | None, limit: int = 300) -> str:
    text = f"{type(exc).__name__}: {exc}"
    return text if len(text) <= limit else text[:limit] + "..."


class Verdict:
    """Collects what a scenario measured (facts) and what broke the contract (problems); at
    the end, prints the facts and fails with every problem, or passes."""

    def __init__(self, scenario: str) -> None:
        self.scenario = scenario
        self.zero = time.monotonic()
        self.facts: list[str] = []
        self.problems: list[str] = []

    def at(self, instant: float) -> str:
        """``instant`` relative to the start of the scenario."""
        return f"t+{instant - self.zero:.2f}s"

    def recovery(self, what: str, since: float, probed: tuple[float, BaseException | None]
                 ) -> None:
        """Judge the first call issued after ``what`` (which happened at ``since``)."""
        ended, error = probed
        took = ended - since
        if error is not None:
            self.problems.append(f"the first call issued after {what} failed after {took:.2f}s: "
                                 f"{brief(error)}")
        elif took > RECOVERY_BOUND:
            self.problems.append(f"the first call issued after {what} succeeded only "
                                 f"{took:.3f}s later (bound: {RECOVERY_BOUND:g}s)")
        self.facts.append(f"first call after {what}: {took * 1000:.0f} ms"
                          + ("" if error is None else " (failed)"))

    def calls(self, load: Load, may_fail: Callable[[CallOutcome], bool]) -> None:
        """Judge every call of ``load``: none past its deadline, none unfinished, each reply
        its own, none executed twice, and none failed unless ``may_fail`` allows it (then only
        with MessagingTimeout)."""
        calls = list(load.calls)
        handled, _ = load.tally.snapshot()
        done = [c for c in calls if c.end is not None]
        hung = [c for c in calls if c.end is None]
        if hung:
            worst = max(hung, key=lambda c: c.took)
            self.problems.append(f"{len(hung)} call(s) had not returned when the load stopped; "
                                 f"the oldest began at {self.at(worst.start)}, {worst.took:.1f}s "
                                 f"earlier (timeout {worst.timeout:g}s)")
        late = [c for c in done if c.took > c.timeout + DEADLINE_SLACK]
        if late:
            worst = max(late, key=lambda c: c.took)
            self.problems.append(
                f"{len(late)} of {len(done)} calls ended past their deadline (timeout "
                f"{worst.timeout:g}s + {DEADLINE_SLACK:g}s slack); the longest took "
                f"{worst.took:.2f}s (began at {self.at(worst.start)}, "
                f"{'succeeded' if worst.error is None else brief(worst.error, 200)})")
        wrong = [c for c in done if c.error is None and c.result != c.value]
        if wrong:
            self.problems.append(f"{len(wrong)} call(s) got another call's reply, e.g. asked "
                                 f"{wrong[0].value!r}, got {wrong[0].result!r}")
        failed = [c for c in done if c.error is not None]
        excused = [c for c in failed if may_fail(c) and isinstance(c.error, MessagingTimeout)]
        unexcused = [c for c in failed if c not in excused]
        if unexcused:
            kinds = collections.Counter(type(c.error).__name__ for c in unexcused)
            first = min(unexcused, key=lambda c: c.start)
            executed = sum(1 for c in unexcused if handled[c.value])
            began = sorted({self.at(c.start) for c in unexcused})
            self.problems.append(
                f"{len(unexcused)} of {len(done)} calls failed that should have succeeded "
                f"({', '.join(f'{n} {k}' for k, n in kinds.items())}; the server had executed "
                f"{executed} of them: their replies were lost, the other requests never reached "
                f"it); they began at {', '.join(began[:8])}{' ...' if len(began) > 8 else ''}; "
                f"the first raised after {first.took:.2f}s: {brief(first.error)}")
        twice = sorted(v for v, n in handled.items() if n > 1)
        if twice:
            self.problems.append(f"{len(twice)} call(s) were executed more than once by the "
                                 f"server, e.g. {twice[:5]}")
        longest = max((c.took for c in done), default=0.0)
        self.facts.append(f"{len(done) - len(failed)} calls ok, {len(failed)} failed "
                          f"({len(excused)} excused: deadline within the fault), longest "
                          f"{longest:.2f}s")

    def casts(self, load: Load) -> None:
        """Judge the casts: none raised; every one that returned handled exactly once."""
        if load.casts_failed:
            i, text = load.casts_failed[0]
            self.problems.append(f"{len(load.casts_failed)} cast(s) raised although retry is "
                                 f"unlimited by default; the first (#{i}): {text[:300]}")
        returned = load.returned_casts()
        load.tally.wait_casts(returned, WAIT)
        # A last cast after everything: what the driver still had to send or resend is ahead.
        try:
            load.client.cast({}, "note", value="last")
            if not load.tally.wait_casts(["last"], WAIT):
                self.problems.append(f"a cast sent after the load stopped was not handled "
                                     f"within {WAIT:g}s")
        except Exception as exc:  # noqa: BLE001 - reported
            self.problems.append(f"a cast sent after the load stopped raised {brief(exc)}")
        _, handled = load.tally.snapshot()
        lost = [v for v in returned if not handled[v]]
        if lost:
            self.problems.append(f"{len(lost)} of {len(returned)} casts that returned without "
                                 f"error were never handled, e.g. #{lost[:10]}")
        twice = sorted(v for v, n in handled.items() if n > 1)
        if twice:
            self.problems.append(f"{len(twice)} cast(s) were handled more than once, e.g. "
                                 f"#{twice[:10]}")
        self.facts.append(f"{len(returned)} casts returned, {len(returned) - len(lost)} handled"
                          f", {len(twice)} twice")

    def conclude(self) -> None:
        summary = f"{self.scenario}: " + "; ".join(self.facts)
        print(summary)
        if self.problems:
            pytest.fail(summary + "\n" + "\n".join(f"- {p}" for p in self.problems),
                        pytrace=False)


@dataclasses.dataclass
class Timed:
    """What a call made in a thread did: how long it took, what it returned or raised."""

    took: float | None = None
    result: Any = None
    error: BaseException | None = None


def run_timed(actions: dict[str, Callable[[], Any]], bound: float) -> dict[str, Timed]:
    """Run each action in its own thread at once; wait at most ``bound`` seconds for all.
    An action still running then has ``took`` None."""
    out = {name: Timed() for name in actions}

    def run(name: str, action: Callable[[], Any]) -> None:
        start = time.monotonic()
        try:
            out[name].result = action()
        except BaseException as exc:  # noqa: BLE001 - judged by the caller
            out[name].error = exc
        out[name].took = time.monotonic() - start

    threads = [threading.Thread(target=run, args=item, daemon=True, name=f"suite-{item[0]}")
               for item in actions.items()]
    for thread in threads:
        thread.start()
    until = time.monotonic() + bound
    for thread in threads:
        thread.join(max(0.0, until - time.monotonic()))
    return out


def fail_unless_all_failed_in_time(outcomes: dict[str, Timed], expected: type[BaseException],
                                   limit: float, limit_text: str, waited: float) -> None:
    """Fail the test unless every action of ``outcomes`` (from :func:`run_timed`, which waited
    ``waited`` seconds) raised ``expected`` within ``limit`` + DEADLINE_SLACK seconds while the
    broker was down; ``limit_text`` names the limit (e.g. ``timeout 2s``). Lists every problem."""
    bound = limit + DEADLINE_SLACK
    problems = []
    for what, out in outcomes.items():
        if out.took is None:
            problems.append(f"{what} was still blocked after {waited:g}s ({limit_text})")
        elif out.error is None:
            problems.append(f"{what} returned {out.result!r} after {out.took:.2f}s as if the "
                            "broker were there")
        elif not isinstance(out.error, expected):
            problems.append(f"{what} raised {brief(out.error)} after {out.took:.2f}s, not "
                            f"{expected.__name__}")
        elif out.took > bound:
            problems.append(f"{what} raised {type(out.error).__name__} only after "
                            f"{out.took:.2f}s ({limit_text} + {DEADLINE_SLACK:g}s slack)")
    if problems:
        pytest.fail("with the broker down:\n" + "\n".join(f"- {p}" for p in problems),
                    pytrace=False)
