"""``msgbus demo``: a server and a client on one transport URL, showing the main features."""

from __future__ import annotations

import argparse
import asyncio
import threading
from typing import Any

import msgbus


class Calculator:
    """The demo's endpoint."""

    target = msgbus.Target(version="1.0")

    def __init__(self, name: str, seen: "Seen") -> None:
        self.name = name
        self.seen = seen

    def add(self, ctxt: dict, a: float, b: float) -> float:
        return a + b

    @msgbus.expected_exceptions(ZeroDivisionError)
    def divide(self, ctxt: dict, a: float, b: float) -> float:
        return a / b

    def log(self, ctxt: dict, text: str) -> None:
        self.seen.add(f"{self.name} got cast: {text!r} (from user {ctxt.get('user')})")


class Seen:
    """Lines printed by servers, collected so the demo can wait for them."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self.lines: list[str] = []

    def add(self, line: str) -> None:
        with self._cond:
            self.lines.append(line)
            self._cond.notify_all()

    def wait(self, n: int, timeout: float = 10) -> None:
        with self._cond:
            if not self._cond.wait_for(lambda: len(self.lines) >= n, timeout):
                raise msgbus.MessagingTimeout(f"demo expected {n} casts, saw {len(self.lines)}")


def run(args: argparse.Namespace) -> int:
    url: str = args.url
    if getattr(args, "use_async", False):
        return asyncio.run(run_async(url))
    seen = Seen()
    server_transport = msgbus.get_rpc_transport(url=url)
    client_transport = msgbus.get_rpc_transport(url=url)
    servers: list[Any] = []
    try:
        for name in ("calc-1", "calc-2"):
            server = msgbus.get_rpc_server(server_transport,
                                           msgbus.Target(topic="demo-calculator", server=name),
                                           [Calculator(name, seen)])
            server.start()
            servers.append(server)
        client = msgbus.get_rpc_client(client_transport, msgbus.Target(topic="demo-calculator"),
                                       timeout=10)
        ctxt = {"user": "demo"}
        print(f"transport: {client_transport.url.masked}")
        print(f"call   add(2, 3)           -> {client.call(ctxt, 'add', a=2, b=3)}")
        client.cast(ctxt, "log", text="hello")
        seen.wait(1)
        print(f"cast   log('hello')        -> {seen.lines[0]}")
        client.prepare(fanout=True).cast(ctxt, "log", text="to everyone")
        seen.wait(3)
        for line in sorted(seen.lines[1:]):
            print(f"fanout log('to everyone')  -> {line}")
        try:
            client.call(ctxt, "divide", a=1, b=0)
        except ZeroDivisionError as exc:
            print(f"call   divide(1, 0)        -> raised {type(exc).__name__}: "
                  f"{str(exc).splitlines()[0]}")
        try:
            client.call(ctxt, "sqrt", x=2)
        except msgbus.NoSuchMethod as exc:
            print(f"call   sqrt(2)             -> raised NoSuchMethod: "
                  f"{str(exc).splitlines()[0]}")
    finally:
        for server in servers:
            server.stop()
        for server in servers:
            server.wait()
        client_transport.cleanup()
        server_transport.cleanup()
    return 0


class AsyncCalculator:
    """The demo's endpoint for ``--async``: ``async def`` methods on the asyncio executor."""

    target = msgbus.Target(version="1.0")

    def __init__(self, name: str, seen: list[str], got: asyncio.Event) -> None:
        self.name = name
        self.seen = seen
        self.got = got

    async def add(self, ctxt: dict, a: float, b: float) -> float:
        await asyncio.sleep(0.01)  # awaits without holding a thread
        return a + b

    @msgbus.expected_exceptions(ZeroDivisionError)
    async def divide(self, ctxt: dict, a: float, b: float) -> float:
        return a / b

    async def log(self, ctxt: dict, text: str) -> None:
        self.seen.append(f"{self.name} got cast: {text!r} (from user {ctxt.get('user')})")
        self.got.set()

    def blocking_square(self, ctxt: dict, x: float) -> float:
        """A plain method: the asyncio executor runs it on its thread pool."""
        return x * x


async def _wait_lines(seen: list[str], got: asyncio.Event, n: int) -> None:
    async def until() -> None:
        while len(seen) < n:
            got.clear()
            await got.wait()
    try:
        await asyncio.wait_for(until(), 10)
    except asyncio.TimeoutError:
        raise msgbus.MessagingTimeout(f"demo expected {n} casts, saw {len(seen)}") from None


async def run_async(url: str) -> int:
    """``msgbus demo --async``: asyncio servers with async endpoints, awaited calls."""
    seen: list[str] = []
    got = asyncio.Event()
    loop = asyncio.get_running_loop()
    server_transport = await loop.run_in_executor(None, lambda: msgbus.get_rpc_transport(url=url))
    client_transport = await loop.run_in_executor(None, lambda: msgbus.get_rpc_transport(url=url))
    try:
        servers = [msgbus.get_rpc_server(server_transport,
                                         msgbus.Target(topic="demo-calculator", server=name),
                                         [AsyncCalculator(name, seen, got)], executor="asyncio")
                   for name in ("calc-1", "calc-2")]
        async with servers[0], servers[1]:
            client = msgbus.get_rpc_client(client_transport,
                                           msgbus.Target(topic="demo-calculator"), timeout=10)
            ctxt = {"user": "demo"}
            print(f"transport: {client_transport.url.masked} (asyncio)")
            total = await client.call_async(ctxt, "add", a=2, b=3)
            print(f"await call   add(2, 3)          -> {total}")
            sums = await asyncio.gather(*(client.call_async(ctxt, "add", a=i, b=i)
                                          for i in range(1000)))
            print(f"await 1000 calls at once        -> {len(sums)} results, sum {sum(sums):g}")
            print(f"await call   blocking_square(7) -> "
                  f"{await client.call_async(ctxt, 'blocking_square', x=7)} (plain method, "
                  f"run on a thread)")
            await client.cast_async(ctxt, "log", text="hello")
            await _wait_lines(seen, got, 1)
            print(f"await cast   log('hello')       -> {seen[0]}")
            await client.prepare(fanout=True).cast_async(ctxt, "log", text="to everyone")
            await _wait_lines(seen, got, 3)
            for line in sorted(seen[1:]):
                print(f"fanout log('to everyone')       -> {line}")
            try:
                await client.call_async(ctxt, "divide", a=1, b=0)
            except ZeroDivisionError as exc:
                print(f"await call   divide(1, 0)       -> raised {type(exc).__name__}: "
                      f"{str(exc).splitlines()[0]}")
    finally:
        await loop.run_in_executor(None, client_transport.cleanup)
        await loop.run_in_executor(None, server_transport.cleanup)
    return 0
