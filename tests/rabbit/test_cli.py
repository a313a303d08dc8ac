"""The ``msgbus`` command against the real RabbitMQ: the console script in a child process
(calls, casts, fanout, notify and listen, ping, check, bench between processes) and ``main(argv)``
in-process; an unreachable broker and a refused login exit 4 without printing the password."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import threading
import uuid
from pathlib import Path
from typing import Any

import pytest

from msgbus.cli.exits import Exit
from msgbus.cli.main import main
from msgbus.rpc.ping import PingEndpoint

from .helpers import RABBIT_URL, TOPIC_PREFIX, Closer

pytest_plugins = ["pytester"]


def _script() -> str:
    beside = Path(sys.executable).with_name("msgbus")
    found = str(beside) if beside.exists() else shutil.which("msgbus")
    assert found, "the msgbus console script is not installed (pip install -e .)"
    return found


def msgbus_cli(*argv: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """Run the console script; its output as text."""
    return subprocess.run([_script(), *argv], capture_output=True, text=True, timeout=timeout,
                          check=False)


def topic(name: str) -> str:
    return f"{TOPIC_PREFIX}cli-{name}-{uuid.uuid4().hex[:8]}"


class Calc:
    def __init__(self, name: str = "calc") -> None:
        self.name = name
        self.notes: list[Any] = []
        self.cond = threading.Condition()

    def add(self, ctxt: Any, a: Any, b: Any) -> Any:
        return a + b

    def whoami(self, ctxt: Any) -> str:
        return self.name

    def note(self, ctxt: Any, value: Any) -> None:
        with self.cond:
            self.notes.append(value)
            self.cond.notify_all()

    def wait_notes(self, n: int, timeout: float = 30) -> bool:
        with self.cond:
            return self.cond.wait_for(lambda: len(self.notes) >= n, timeout)


def test_call_from_another_process(closer: Closer) -> None:
    t = topic("call")
    closer.server(closer.transport(), t, [Calc()])
    done = msgbus_cli("call", RABBIT_URL, t, "add", "a=2", "b=40")
    assert (done.returncode, done.stdout) == (0, "42\n"), done.stderr
    done = msgbus_cli("call", RABBIT_URL, t, "add", 'a="x"', "b=y", "--json")
    assert done.returncode == 0, done.stderr
    doc = json.loads(done.stdout)
    assert doc["result"] == "xy" and doc["url"] == "rabbit://guest:****@127.0.0.1:5672/"


def test_call_to_one_server_and_fanout_cast(closer: Closer) -> None:
    t = topic("fanout")
    a, b = Calc("a"), Calc("b")
    closer.server(closer.transport(), t, [a], server="a")
    closer.server(closer.transport(), t, [b], server="b")
    done = msgbus_cli("call", RABBIT_URL, t, "whoami", "--server", "b")
    assert (done.returncode, done.stdout) == (0, "b\n"), done.stderr
    done = msgbus_cli("cast", "--json", RABBIT_URL, t, "note", "value=1", "--fanout")
    assert done.returncode == 0 and json.loads(done.stdout)["fanout"] is True, done.stderr
    assert a.wait_notes(1) and b.wait_notes(1)
    done = msgbus_cli("cast", RABBIT_URL, t, "note", "value=2", "--server", "a")
    assert done.returncode == 0, done.stderr
    assert a.wait_notes(2) and a.notes == [1, 2] and b.notes == [1]


def test_a_call_nobody_serves_exits_3_naming_topic_and_method() -> None:
    t = topic("nobody")
    done = msgbus_cli("call", RABBIT_URL, t, "add", "--timeout", "1")
    assert done.returncode == Exit.TIMEOUT
    assert f"'{t}'" in done.stderr and "'add'" in done.stderr
    done = msgbus_cli("cast", RABBIT_URL, t, "add")
    assert done.returncode == Exit.TIMEOUT and "no server listens" in done.stderr


def test_ping_a_server_with_and_without_ping_support(closer: Closer) -> None:
    t = topic("ping")
    closer.server(closer.transport(), t, [Calc(), PingEndpoint()], server="p1")
    done = msgbus_cli("ping", RABBIT_URL, t, "--server", "p1", "--json")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["answer"] == "pong"
    t2 = topic("noping")
    closer.server(closer.transport(), t2, [Calc()])
    done = msgbus_cli("ping", RABBIT_URL, t2)
    assert done.returncode == Exit.ERROR and "no ping support" in done.stdout
    done = msgbus_cli("ping", RABBIT_URL, topic("gone"), "--timeout", "1")
    assert done.returncode == Exit.TIMEOUT and "no server answered" in done.stdout


def test_notify_to_a_listening_process() -> None:
    t = topic("notes")
    listen = subprocess.Popen([_script(), "listen", RABBIT_URL, "--topic", t, "--count", "2",
                               "--json", "--duration", "60"], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True)
    try:
        assert listen.stderr is not None
        ready = listen.stderr.readline()  # printed once the listener consumes its queues
        assert "listening on" in ready and "****" in ready and "guest:guest" not in ready
        assert msgbus_cli("notify", RABBIT_URL, "a.b", "n=1", "--topic", t,
                          "--priority", "error").returncode == 0
        assert msgbus_cli("notify", RABBIT_URL, "a.c", "--topic", t,
                          "--publisher-id", "me").returncode == 0
        out, _ = listen.communicate(timeout=60)
    finally:
        if listen.poll() is None:
            listen.kill()
            listen.wait()
    assert listen.returncode == 0
    notes = sorted((json.loads(line) for line in out.splitlines()), key=lambda n: n["event_type"])
    assert [(n["priority"], n["event_type"], n["publisher_id"], n["payload"]) for n in notes] \
        == [("error", "a.b", "msgbus-cli", {"n": 1}), ("info", "a.c", "me", {})]


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.mark.parametrize("command", [["call", "t", "m", "--timeout", "3"], ["cast", "t", "m"],
                                     ["notify", "e.x"], ["ping", "t", "--timeout", "3"]])
def test_an_unreachable_broker_exits_4_without_the_password(command: list[str]) -> None:
    url = f"rabbit://guest:sesame@127.0.0.1:{_closed_port()}/"
    done = msgbus_cli(command[0], url, *command[1:])
    assert done.returncode == Exit.UNREACHABLE, (done.stdout, done.stderr)
    assert "sesame" not in done.stdout + done.stderr


def test_a_refused_login_exits_4_without_the_password() -> None:
    done = msgbus_cli("call", "rabbit://guest:sesame@127.0.0.1:5672/", "t", "m", "--timeout", "5")
    assert done.returncode == Exit.UNREACHABLE, (done.stdout, done.stderr)
    assert "ACCESS_REFUSED" in done.stderr and "sesame" not in done.stdout + done.stderr


def test_in_process_call_and_cast(closer: Closer, capsys: pytest.CaptureFixture[str]) -> None:
    t = topic("inproc")
    calc = Calc()
    closer.server(closer.transport(), t, [calc])
    assert main(["call", RABBIT_URL, t, "add", "a=1", "b=2", "-v"]) == 0
    assert capsys.readouterr().out == "3\n"
    assert main(["--json", "cast", RABBIT_URL, t, "note", "value=[1,2]"]) == 0
    assert calc.wait_notes(1) and calc.notes == [[1, 2]]


def test_drivers_shows_rabbit_and_kombu_as_one_driver() -> None:
    done = msgbus_cli("drivers", "--json")
    assert done.returncode == 0
    kombu = [d for d in json.loads(done.stdout) if "rabbit" in d["schemes"]]
    assert len(kombu) == 1 and kombu[0]["schemes"] == ["kombu", "rabbit"]
    assert kombu[0]["distribution"] == "msgbus-kombu" and "reconnect" in kombu[0]["capabilities"]


def test_check_runs_the_suite_on_rabbit() -> None:
    done = msgbus_cli("check", RABBIT_URL, "-k", "TestCallSemantics", timeout=300)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert " passed" in done.stdout and "failed" not in done.stdout
    assert "rabbit://guest:****@127.0.0.1:5672/" in done.stderr


def test_bench_on_rabbit() -> None:
    done = msgbus_cli("bench", RABBIT_URL, "--duration", "0.5", "--json",
                      "--topic", topic("bench"))
    assert done.returncode == 0, done.stderr
    doc = json.loads(done.stdout)
    assert doc["calls"] > 0 and doc["casts_arrived"] == doc["casts"] > 0


def test_msgbus_url_runs_fake_tests_on_the_broker(pytester: pytest.Pytester) -> None:
    """The plugin's --msgbus-url: a user's tests written for fake:// run on RabbitMQ."""
    pytester.makepyfile(test_user='''
import msgbus


class Calc:
    def add(self, ctxt, a, b):
        return a + b


def test_call(msgbus_bus, msgbus_url):
    assert msgbus_url.startswith("rabbit://")
    assert msgbus_bus.transport().driver.__class__.__name__ == "KombuDriver"
    topic = "''' + TOPIC_PREFIX + '''plugin-" + msgbus_bus.test_id
    msgbus_bus.server(topic, [Calc()])
    assert msgbus_bus.client(topic).call({}, "add", a=2, b=3) == 5
''')
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "--msgbus-url", RABBIT_URL)
    result.assert_outcomes(passed=1)
    assert os.environ.get("MSGBUS_CHECK_URL") is None
