"""``msgbus demo``: a server and a client on one transport URL, showing the main features."""

from __future__ import annotations

import argparse
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
