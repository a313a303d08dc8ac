"""AMQP driver rules in msgbus.driver.amqp: which sends may return before the broker's confirm,
and which publishes a confirm settles."""

import pytest

from msgbus.driver.amqp import PIPELINED_CAST_MAX_BYTES, pipelines, pop_confirmed

SMALL = b"x" * 100


def test_a_small_cast_retried_forever_is_pipelined() -> None:
    # (the core turns oslo's retry=-1 into None before a driver sees it)
    assert pipelines(None, False, SMALL, 64, None)


@pytest.mark.parametrize("ttl, mandatory, body, window, retry, why", [
    (30.0, False, SMALL, 64, None, "a call: it has a timeout"),
    (None, True, SMALL, 64, None, "mandatory: an unroutable cast must raise at once"),
    (None, False, b"x" * (PIPELINED_CAST_MAX_BYTES + 1), 64, None, "large body"),
    (None, False, SMALL, 0, None, "pipelining turned off"),
    (None, False, SMALL, 64, 0, "a retry budget: its failure must reach the caller"),
    (None, False, SMALL, 64, 3, "a retry budget: its failure must reach the caller"),
])
def test_other_sends_wait_for_their_confirm(ttl: float | None, mandatory: bool, body: bytes,
                                            window: int, retry: int | None, why: str) -> None:
    assert not pipelines(ttl, mandatory, body, window, retry), why


def test_pop_confirmed_settles_one_tag_or_every_tag_up_to_it() -> None:
    pending = {1: "a", 2: "b", 3: "c", 5: "e"}
    assert pop_confirmed(pending, 2, True) == [(1, "a"), (2, "b")]
    assert pop_confirmed(pending, 5, False) == [(5, "e")]
    assert pop_confirmed(pending, 4, False) == []  # unknown tag: nothing settled
    assert pending == {3: "c"}
    assert pop_confirmed(pending, 9, True) == [(3, "c")] and pending == {}
