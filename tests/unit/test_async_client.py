"""The asyncio face of RPCClient: call_async and cast_async on fake://."""

import asyncio
import threading
from typing import Any

import pytest

import msgbus
import msgbus.fake


class Api:
    def __init__(self) -> None:
        self.noted = threading.Event()

    def add(self, ctxt: Any, a: int, b: int) -> int:
        return a + b

    def fail(self, ctxt: Any) -> None:
        raise ValueError("async failure")

    def note(self, ctxt: Any) -> None:
        self.noted.set()


@pytest.fixture
def client_and_api():
    transport = msgbus.get_rpc_transport(url="fake://async/")
    api = Api()
    server = msgbus.get_rpc_server(transport, msgbus.Target(topic="t", server="s"), [api])
    server.start()
    yield msgbus.get_rpc_client(transport, msgbus.Target(topic="t"), timeout=10), api
    server.stop()
    server.wait()
    transport.cleanup()
    msgbus.fake.reset()


def test_many_concurrent_async_calls(client_and_api) -> None:
    client, _ = client_and_api

    async def main() -> list[int]:
        return await asyncio.gather(*(client.call_async({}, "add", a=i, b=1) for i in range(200)))

    assert asyncio.run(main()) == [i + 1 for i in range(200)]


def test_async_errors_and_timeouts(client_and_api) -> None:
    client, api = client_and_api

    async def main() -> None:
        with pytest.raises(ValueError, match="async failure"):
            await client.call_async({}, "fail")
        with pytest.raises(msgbus.MessagingTimeout):
            await client.prepare(topic="nobody", timeout=0.3).call_async({}, "add", a=1, b=2)
        await client.cast_async({}, "note")

    asyncio.run(main())
    assert api.noted.wait(10)


def test_awaited_sends_run_on_a_bounded_pool_of_their_own(client_and_api) -> None:
    """Sends block while the broker confirms: many awaited casts in flight use many send
    threads (more than the loop's default executor's six on two cores), at most the AMQP
    drivers' rpc_conn_pool_size (30 by default), never one per call."""
    client, _ = client_and_api
    release = threading.Event()
    lock = threading.Lock()
    inside: set[str] = set()
    enough = threading.Event()
    sent = client.transport.send

    def blocking_send(*args: Any, **kwargs: Any) -> None:
        with lock:
            inside.add(threading.current_thread().name)
            if len(inside) >= 30:
                enough.set()
        assert release.wait(10)
        sent(*args, **kwargs)

    client.transport.send = blocking_send  # type: ignore[method-assign]

    async def main() -> None:
        casts = [asyncio.ensure_future(client.cast_async({}, "note")) for _ in range(45)]
        assert await asyncio.get_running_loop().run_in_executor(None, enough.wait, 10)
        assert client.transport.send_pool().threads == 30  # no 31st thread
        release.set()
        await asyncio.gather(*casts)

    try:
        asyncio.run(main())
    finally:
        release.set()
        del client.transport.send
    assert len(inside) == 30


def test_send_pool_threads_end_when_idle_and_at_shutdown() -> None:
    from msgbus.executors.send_pool import SendPool

    pool = SendPool(4, idle_seconds=0.05)
    done = threading.Semaphore(0)
    for _ in range(8):
        pool.submit(done.release)
    for _ in range(8):
        assert done.acquire(timeout=10)
    assert 1 <= pool.threads <= 4
    give_up = threading.Event()
    for _ in range(200):  # bounded: each thread ends 0.05 s after its last work
        if pool.threads == 0:
            break
        give_up.wait(0.05)
    assert pool.threads == 0
    pool.submit(done.release)  # threads start again on demand
    assert done.acquire(timeout=10)
    pool.shutdown()
    with pytest.raises(RuntimeError, match="shut down"):
        pool.submit(done.release)


def test_call_timed_out_while_waiting_for_a_send_thread_is_not_sent(client_and_api) -> None:
    """A call whose deadline passes before a send thread takes it is never sent late."""
    client, _ = client_and_api
    release = threading.Event()
    sent_bodies: list[bytes] = []
    send = client.transport.send

    entered = threading.Event()

    def slow_send(target: Any, body: bytes, **kwargs: Any) -> None:
        sent_bodies.append(body)
        entered.set()
        assert release.wait(10)
        send(target, body, **kwargs)

    client.transport.send = slow_send  # type: ignore[method-assign]
    from msgbus.executors.send_pool import SendPool
    client.transport._send_pool = SendPool(1)  # one send thread: the first call holds it

    async def main() -> None:
        first = asyncio.ensure_future(client.prepare(timeout=10).call_async({}, "add", a=1, b=1))
        assert await asyncio.get_running_loop().run_in_executor(None, entered.wait, 10)
        with pytest.raises(msgbus.MessagingTimeout):
            await client.prepare(timeout=0.2).call_async({}, "add", a=2, b=2)
        release.set()
        assert await first == 2

    try:
        asyncio.run(main())
    finally:
        release.set()
        del client.transport.send
    assert len(sent_bodies) == 1


def test_send_pool_shutdown_waits_for_queued_work() -> None:
    """An asyncio server's wait() relies on this: every reply handed over is sent first."""
    from msgbus.executors.send_pool import SendPool

    pool = SendPool(2)
    ran: list[int] = []
    gate = threading.Event()

    def job(i: int) -> None:
        assert gate.wait(10)
        ran.append(i)

    for i in range(6):
        pool.submit(job, i)
    stopper = threading.Thread(target=pool.shutdown, kwargs={"wait": True})
    stopper.start()
    gate.set()
    stopper.join(10)
    assert not stopper.is_alive() and sorted(ran) == list(range(6)) and pool.threads == 0
    # shut down from one of its own threads: does not wait for itself
    pool = SendPool(1)
    finished = threading.Event()
    pool.submit(lambda: (pool.shutdown(wait=True), finished.set()))
    assert finished.wait(10)


def test_first_call_is_bounded_while_every_send_thread_is_busy(client_and_api) -> None:
    """The first awaited call sets up the reply address on a send thread: its deadline holds
    even when none is free."""
    from msgbus.executors.send_pool import SendPool

    client, _ = client_and_api
    release = threading.Event()
    client.transport._send_pool = SendPool(1)
    client.transport._send_pool.submit(release.wait, 10)

    async def main() -> None:
        with pytest.raises(msgbus.MessagingTimeout, match="deadline"):
            await client.prepare(timeout=0.2).call_async({}, "add", a=1, b=1)
        release.set()
        assert await client.call_async({}, "add", a=1, b=1) == 2

    try:
        asyncio.run(main())
    finally:
        release.set()


def test_clients_of_one_transport_share_its_send_pool_which_ends_with_it() -> None:
    """Awaited sends of every client on a transport use the transport's one send pool (a client
    made per request costs no threads of its own); cleanup() shuts it down, and an awaited call
    made afterwards fails with TransportClosedError instead of waiting."""
    transport = msgbus.get_rpc_transport(url="fake://async-pool/")
    server = msgbus.get_rpc_server(transport, msgbus.Target(topic="t", server="s"), [Api()])
    server.start()
    clients = [msgbus.get_rpc_client(transport, msgbus.Target(topic="t"), timeout=10)
               for _ in range(3)]

    async def main() -> list[int]:
        return await asyncio.gather(*(c.call_async({}, "add", a=i, b=1)
                                      for i, c in enumerate(clients)))

    try:
        assert asyncio.run(main()) == [1, 2, 3]
        pool = transport.send_pool()
        assert pool.threads >= 1
    finally:
        server.stop()
        server.wait()
        transport.cleanup()
        msgbus.fake.reset()
    with pytest.raises(RuntimeError, match="shut down"):
        pool.submit(print)
    with pytest.raises(msgbus.TransportClosedError):
        asyncio.run(clients[0].call_async({}, "add", a=1, b=1))
