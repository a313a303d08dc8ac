"""``ReplyWaiter.register(msg_id, on_reply)``: the awaited calls' way of being told their
outcome without a concurrent future; the same rules as the future's."""

from __future__ import annotations

from typing import Any

import pytest

from msgbus import envelope
from msgbus.exceptions import MessagingTimeout
from msgbus.rpc.reply_waiter import ReplyWaiter


class FakeDriver:
    """Just enough of a driver: a reply address, and replies handed in by the test."""

    def __init__(self) -> None:
        self.on_reply: Any = None

    def listen_for_replies(self, on_reply: Any, **kwargs: Any) -> str:
        self.on_reply = on_reply
        return "reply-address"


class Incoming:
    """A delivered reply (acknowledging does nothing here)."""

    def __init__(self, reply: dict) -> None:
        self.body = envelope.encode(reply)

    def ack(self) -> None:
        pass


def reply(msg_id: str, **fields: Any) -> Incoming:
    return Incoming({"_msg_id": msg_id, "_unique_id": envelope.new_id(), **fields})


@pytest.fixture
def waiter_and_driver() -> tuple[ReplyWaiter, FakeDriver]:
    driver = FakeDriver()
    return ReplyWaiter(driver, []), driver  # type: ignore[arg-type]


def test_the_outcome_goes_to_the_callback_once_and_frees_the_slot(
        waiter_and_driver: tuple[ReplyWaiter, FakeDriver]) -> None:
    waiter, driver = waiter_and_driver
    got: list = []
    pending = waiter.register("m1", lambda result, exc: got.append((result, exc)))
    assert pending.future is None
    driver.on_reply(reply("m1", result=None, ending=False))  # a heartbeat
    assert got == [] and "m1" in waiter._pending
    driver.on_reply(reply("m1", result=7, failure=None, ending=True))
    assert got == [(7, None)]
    assert "m1" not in waiter._pending
    driver.on_reply(reply("m1", result=8, failure=None, ending=True))  # an extra reply: dropped
    assert got == [(7, None)]
    waiter.forget("m1")
    assert not waiter.late_replies_possible


def test_a_partial_result_then_an_empty_ending_gives_the_result(
        waiter_and_driver: tuple[ReplyWaiter, FakeDriver]) -> None:
    waiter, driver = waiter_and_driver
    got: list = []
    waiter.register("m1", lambda result, exc: got.append((result, exc)))
    driver.on_reply(reply("m1", result="early", failure=None, ending=False))
    driver.on_reply(reply("m1", failure=None, ending=True))
    assert got == [("early", None)]


def test_a_forgotten_call_drops_its_late_reply_quietly(
        waiter_and_driver: tuple[ReplyWaiter, FakeDriver]) -> None:
    waiter, driver = waiter_and_driver
    got: list = []
    waiter.register("m1", lambda result, exc: got.append((result, exc)))
    waiter.forget("m1")
    assert waiter.late_replies_possible
    driver.on_reply(reply("m1", result=1, failure=None, ending=True))
    assert got == []
    assert not waiter.late_replies_possible


def test_a_duplicate_reply_is_dropped(waiter_and_driver: tuple[ReplyWaiter, FakeDriver]) -> None:
    waiter, driver = waiter_and_driver
    got: list = []
    waiter.register("m1", lambda result, exc: got.append((result, exc)))
    waiter.register("m2", lambda result, exc: got.append((result, exc)))
    first = reply("m1", result=None, failure=None, ending=False)
    driver.on_reply(first)
    driver.on_reply(first)  # same unique id again
    driver.on_reply(reply("m1", result=1, failure=None, ending=True))
    assert got == [(1, None)]


def test_close_fails_the_waiting_calls_once(
        waiter_and_driver: tuple[ReplyWaiter, FakeDriver]) -> None:
    waiter, driver = waiter_and_driver
    got: list = []
    waiter.register("m1", lambda result, exc: got.append((result, exc)))
    assert waiter.close()  # a late reply may still come
    assert len(got) == 1 and isinstance(got[0][1], MessagingTimeout)
    driver.on_reply(reply("m1", result=1, failure=None, ending=True))
    assert len(got) == 1


def test_the_future_path_is_unchanged(waiter_and_driver: tuple[ReplyWaiter, FakeDriver]) -> None:
    waiter, driver = waiter_and_driver
    pending = waiter.register("m1")
    driver.on_reply(reply("m1", result=3, failure=None, ending=True))
    assert waiter.wait(pending, None, None) == 3
    assert not waiter.late_replies_possible


def test_a_cancelled_awaited_call_frees_its_slot_and_its_reply_is_dropped() -> None:
    import asyncio
    import threading

    import msgbus
    import msgbus.fake

    release = threading.Event()
    answered = threading.Event()

    class Slow:
        def wait(self, ctxt: Any) -> str:
            release.wait(10)
            answered.set()
            return "late"

    transport = msgbus.get_rpc_transport(url="fake://aio-reply-callback/")
    server = msgbus.get_rpc_server(transport, msgbus.Target(topic="t", server="s"), [Slow()])
    server.start()
    try:
        client = msgbus.get_rpc_client(transport, msgbus.Target(topic="t"), timeout=10)

        async def main() -> None:
            task = asyncio.ensure_future(client.call_async({}, "wait"))
            while not transport.reply_waiter()._pending:  # registered once the call is made
                await asyncio.sleep(0.005)
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task

        asyncio.run(main())
        waiter = transport.reply_waiter()
        assert not waiter._pending and waiter.late_replies_possible
        release.set()
        assert answered.wait(10)
        idle = threading.Event()  # never set: a bounded pause between looks
        for _ in range(1000):  # the dropped reply leaves no event to wait on: 10 s at most
            if not waiter.late_replies_possible:
                break
            idle.wait(0.01)
        assert not waiter.late_replies_possible
    finally:
        release.set()
        server.stop()
        server.wait()
        transport.cleanup()
        msgbus.fake.reset()
