"""Helpers of the pika:// fault tests: URLs with an option set, a pool of calling threads."""

from __future__ import annotations

import collections
import threading
import time
from typing import Any
from urllib.parse import urlencode

import msgbus
from msgbus.exceptions import MessageDeliveryFailure, MessagingTimeout
from msgbus.testing import rabbitmq

#: The contract: a call ends within its timeout plus this (seconds).
SLACK = 0.5


def url_via(netloc: str, options: dict[str, Any] | None = None, **extra: Any) -> str:
    """A pika:// URL for ``netloc`` with ``options`` (default: none, the DEFAULT options) and
    ``extra`` URL options."""
    query = {**(options or {}), **extra}
    return f"pika://guest:guest@{netloc}/" + ("?" + urlencode(query) if query else "")


def beam_pid(node: rabbitmq.RabbitNode) -> int:
    """The OS process id of the node's Erlang VM."""
    return int(rabbitmq.rabbitmqctl("eval", "os:getpid().", node=node.name).strip().strip('"'))


def private_queues(topic: str, queues: dict[str, Any]) -> list[str]:
    """The fanout queues of ``topic``'s servers."""
    return [q for q in queues if q.startswith(f"{topic}_fanout_")]


def reply_queue_of(transport: msgbus.Transport) -> str:
    return transport.reply_waiter().address


def wait_until(predicate: Any, timeout: float = 30.0, interval: float = 0.05) -> bool:
    """Poll ``predicate`` (a broker query or a counter) until it holds, at most ``timeout``."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() >= deadline:
            return False
        threading.Event().wait(interval)
    return True


class Caller:
    """Threads calling ``echo`` with their own values; every outcome is checked and counted, and
    a call that lasts longer than its timeout plus :data:`SLACK` is a problem."""

    def __init__(self, client: msgbus.RPCClient, threads: int, timeout: float) -> None:
        self.client = client.prepare(timeout=timeout)
        self.timeout = timeout
        self.results: collections.Counter[str] = collections.Counter()
        self.problems: list[str] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._run, args=(i,), daemon=True)
                         for i in range(threads)]

    def _run(self, n: int) -> None:
        i = 0
        while not self._stop.is_set():
            value = f"t{n}-{i}"
            i += 1
            start = time.monotonic()
            try:
                got = self.client.call({}, "echo", value=value)
                outcome = "ok" if got == value else "wrong"
                if got != value:
                    with self._lock:
                        self.problems.append(f"asked {value}, got {got}")
            except (MessagingTimeout, MessageDeliveryFailure) as exc:
                outcome = type(exc).__name__
            took = time.monotonic() - start
            with self._lock:
                self.results[outcome] += 1
                if took > self.timeout + SLACK:
                    self.problems.append(f"call of {value} took {took:.2f}s")

    def start(self) -> None:
        for thread in self._threads:
            thread.start()

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(self.timeout + 10)
            if thread.is_alive():
                self.problems.append("a calling thread hangs")

    def ok_count(self) -> int:
        with self._lock:
            return self.results["ok"]

    def wait_ok(self, more_than: int, timeout: float = 30.0) -> bool:
        return wait_until(lambda: self.ok_count() > more_than, timeout)
