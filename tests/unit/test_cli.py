"""The ``msgbus`` command in-process (``main(argv)``) on fake://: every sub-command, global
options before and after the sub-command, JSON output, exit codes, masked passwords."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import threading
import time
from typing import Any, Iterator

import pytest

import msgbus
import msgbus.fake
from msgbus.cli import exits
from msgbus.cli.main import main
from msgbus.rpc.ping import PingEndpoint


class Calc:
    def add(self, ctxt: Any, a: Any, b: Any) -> Any:
        return a + b

    def echo(self, ctxt: Any, **kwargs: Any) -> Any:
        return {"kwargs": kwargs, "ctxt": ctxt}

    def fail(self, ctxt: Any) -> None:
        raise ValueError("no good")


@pytest.fixture
def serve() -> Iterator[Any]:
    """Start RPC servers on fake:// in this process (the command's transport meets them)."""
    made: list[Any] = []

    def start(topic: str, endpoints: list[Any], server: str = "s1",
              url: str = "fake://") -> msgbus.RPCServer:
        transport = msgbus.get_rpc_transport(url=url)
        srv = msgbus.get_rpc_server(transport, msgbus.Target(topic=topic, server=server),
                                    endpoints)
        srv.start()
        made.append((srv, transport))
        return srv
    yield start
    for srv, transport in made:
        srv.stop()
        srv.wait()
        transport.cleanup()
    msgbus.fake.reset()


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["--version"])
    assert info.value.code == 0
    assert capsys.readouterr().out.startswith("msgbus ")


def test_usage_errors_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["call", "fake://"])
    assert info.value.code == exits.Exit.USAGE
    assert run(capsys, "call", "fake://", "t", "m", "not-a-pair")[0] == exits.Exit.USAGE
    code, _, err = run(capsys, "call", "nosuch://u:secret@h/", "t", "m")
    assert code == exits.Exit.ERROR and "no transport driver named 'nosuch'" in err
    assert "secret" not in err


def test_call_prints_the_result_and_reads_json_values(
        capsys: pytest.CaptureFixture[str], serve: Any) -> None:
    serve("calc", [Calc()])
    code, out, _ = run(capsys, "call", "fake://", "calc", "add", "a=2", "b=3")
    assert (code, out) == (0, "5\n")
    code, out, _ = run(capsys, "call", "fake://", "calc", "echo", "n=1", "s=hello", 'q="7"',
                       "l=[1,2]", "t=true", "--context", "user=alice", "--json")
    assert code == 0
    doc = json.loads(out)
    assert doc["result"]["kwargs"] == {"n": 1, "s": "hello", "q": "7", "l": [1, 2], "t": True}
    assert doc["result"]["ctxt"]["user"] == "alice"
    assert doc["method"] == "echo" and doc["topic"] == "calc"


@pytest.mark.parametrize("argv", [["--json", "call"], ["call", "--json"], ["-v", "call", "--json"],
                                  ["call", "-v", "--json"]])
def test_global_options_before_or_after_the_sub_command(
        capsys: pytest.CaptureFixture[str], serve: Any, argv: list[str]) -> None:
    serve("calc", [Calc()])
    code, out, _ = run(capsys, *argv, "fake://", "calc", "add", "a=1", "b=1")
    assert code == 0 and json.loads(out)["result"] == 2


def test_call_to_a_server_by_name_and_a_remote_error(
        capsys: pytest.CaptureFixture[str], serve: Any) -> None:
    serve("calc", [Calc()], server="a")
    serve("calc", [Calc()], server="b")
    assert run(capsys, "call", "fake://", "calc", "add", "a=1", "b=2", "--server", "b")[:2] \
        == (0, "3\n")
    code, _, err = run(capsys, "call", "fake://", "calc", "fail")
    assert code == exits.Exit.ERROR and "no good" in err


def test_a_call_nobody_answers_exits_3_naming_topic_and_method(
        capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys, "call", "fake://", "nobody", "add", "--timeout", "0.3")
    assert code == exits.Exit.TIMEOUT
    assert "'add'" in err and "'nobody'" in err


def test_cast_and_fanout(capsys: pytest.CaptureFixture[str], serve: Any) -> None:
    seen: list[Any] = []
    done = threading.Event()

    class Note:
        def note(self, ctxt: Any, value: Any) -> None:
            seen.append(value)
            if len(seen) == 3:
                done.set()
    serve("notes", [Note()], server="a")
    serve("notes", [Note()], server="b")
    assert run(capsys, "cast", "fake://", "notes", "note", "value=1")[0] == 0
    code, out, _ = run(capsys, "cast", "fake://", "notes", "note", "value=2", "--fanout",
                       "--json")
    assert code == 0 and json.loads(out)["fanout"] is True
    assert done.wait(10)
    assert sorted(seen) == [1, 2, 2]


def test_a_cast_nobody_can_receive_is_an_error(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys, "cast", "fake://", "nobody", "note")
    assert code == exits.Exit.TIMEOUT
    assert "cast of 'note' not delivered: no server listens on topic 'nobody'" in err


def test_passwords_are_never_printed(capsys: pytest.CaptureFixture[str], serve: Any) -> None:
    url = "fake://user:secret@bus/"
    serve("calc", [Calc()], url=url)
    for argv in (["cast", url, "calc", "add", "a=1", "b=1"],
                 ["cast", url, "calc", "add", "a=1", "b=1", "--json"],
                 ["ping", url, "calc", "--timeout", "0.5"],
                 ["notify", url, "e.x"], ["bench", url, "--duration", "0.05", "--topic", "calc"]):
        code, out, err = run(capsys, *argv)
        assert "secret" not in out + err, argv
        assert "****" in out + err, (argv, out, err)


def test_ping(capsys: pytest.CaptureFixture[str], serve: Any) -> None:
    serve("plain", [Calc()])
    serve("pinged", [Calc(), PingEndpoint()], server="p1")
    code, out, _ = run(capsys, "ping", "fake://", "pinged", "--server", "p1")
    assert code == 0 and out.startswith("pong from topic 'pinged' server 'p1'")
    code, out, _ = run(capsys, "ping", "fake://", "plain", "--json")
    assert code == exits.Exit.ERROR
    assert json.loads(out) == {"alive": True, "ping": False, "url": "fake://", "topic": "plain",
                               "server": None}
    code, out, _ = run(capsys, "ping", "fake://", "nobody", "--timeout", "0.3")
    assert code == exits.Exit.TIMEOUT and out.startswith("no server answered on topic 'nobody'")


def test_notify_and_listen(capsys: pytest.CaptureFixture[str]) -> None:
    # fake:// keeps a notification for its topic's queue: sent first, listened to after
    assert run(capsys, "notify", "fake://", "compute.create", "id=7", "--topic", "t",
               "--priority", "warn", "--publisher-id", "cli-test")[0] == 0
    assert run(capsys, "notify", "fake://", "compute.delete", "--topic", "t")[0] == 0
    code, out, _ = run(capsys, "listen", "fake://", "--topic", "t", "--count", "2", "--json",
                       "--duration", "10")
    msgbus.fake.reset()
    assert code == 0
    # one queue per priority: no order between them
    lines = sorted((json.loads(line) for line in out.splitlines()),
                   key=lambda n: n["event_type"])
    assert [(n["priority"], n["event_type"], n["publisher_id"]) for n in lines] == \
        [("warn", "compute.create", "cli-test"), ("info", "compute.delete", "msgbus-cli")]
    assert lines[0]["payload"] == {"id": 7}


def test_listen_stops_after_its_duration(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, "listen", "fake://", "--duration", "0.2")
    msgbus.fake.reset()
    assert (code, out) == (0, "") and "listening on notifications" in err


def test_notify_with_a_bad_priority_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys, "notify", "fake://", "e", "--priority", "loud")
    assert code == exits.Exit.USAGE and "info" in err


def test_drivers_lists_each_driver_once_with_its_distribution(
        capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "drivers", "--json")
    assert code == 0
    drivers = json.loads(out)
    fake = next(d for d in drivers if "fake" in d["schemes"])
    assert fake["driver"] == "msgbus.fake.driver.FakeDriver"
    assert fake["distribution"] == "msgbus" and fake["version"]
    assert "requeue" in fake["capabilities"]
    assert len({d["driver"] for d in drivers}) == len(drivers)  # aliases: one entry
    code, out, _ = run(capsys, "drivers")
    assert "fake://\n  driver: msgbus.fake.driver.FakeDriver\n  distribution: msgbus" in out


def test_bench_on_fake(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "--json", "bench", "fake://", "--duration", "0.2")
    msgbus.fake.reset()
    assert code == 0
    doc = json.loads(out)
    assert doc["calls"] > 0 and doc["casts_arrived"] == doc["casts"] > 0
    assert doc["code"] == "msgbus.cli.bench (built in)"


def test_bench_sends_only_to_its_own_server(capsys: pytest.CaptureFixture[str],
                                            serve: Any) -> None:
    """An application's server on the bench's topic gets none of its calls or casts (before,
    it took some casts, which it could not run, and the run waited 30 s for them)."""
    class Counting(Calc):
        seen = 0

        def echo(self, ctxt: Any, **kwargs: Any) -> Any:
            Counting.seen += 1
            return super().echo(ctxt, **kwargs)

        def note(self, ctxt: Any, **kwargs: Any) -> None:
            Counting.seen += 1

    serve("shared", [Counting()])
    began = time.monotonic()
    code, out, _ = run(capsys, "--json", "bench", "fake://", "--duration", "0.1",
                       "--topic", "shared")
    assert code == 0
    doc = json.loads(out)
    assert doc["calls"] > 0 and doc["casts_arrived"] == doc["casts"] > 0
    assert Counting.seen == 0
    assert time.monotonic() - began < 10


def test_check_runs_the_suite_on_fake_without_fault_scenarios(
        capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["check", "fake://", "-k", "TestCallSemantics", "--faults"])
    err = capsys.readouterr().err
    assert code == 0
    assert "no fault injector is known for fake://" in err


def test_check_on_a_driver_that_is_not_installed(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys, "check", "nosuch://")
    assert code == exits.Exit.ERROR and "no transport driver named 'nosuch'" in err


def test_demo_is_unchanged_and_takes_global_options_after_it(
        capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "demo", "-v")
    msgbus.fake.reset()
    assert code == 0 and "call   add(2, 3)           -> 5" in out


@pytest.mark.parametrize("exc, code", [
    (msgbus.MessagingTimeout("Timed out waiting for a reply: no server replied"),
     exits.Exit.TIMEOUT),
    (msgbus.MessagingTimeout("could not consume from the AMQP broker at h:1 in time: "
                             "ConnectionRefusedError"), exits.Exit.UNREACHABLE),
    (msgbus.MessageDeliveryFailure("failed after 3 attempt(s): ..."), exits.Exit.UNREACHABLE),
    (msgbus.MessageUndeliverable(None, "x", "k", b""), exits.Exit.TIMEOUT),
    (msgbus.DriverLoadFailure("x", "nope"), exits.Exit.ERROR),
    (KeyboardInterrupt(), exits.Exit.INTERRUPTED),
    (ValueError("other"), exits.Exit.ERROR),
])
def test_exit_codes(exc: BaseException, code: exits.Exit) -> None:
    assert exits.code_for(exc) is code


def test_ctrl_c_exits_130() -> None:
    listen = subprocess.Popen([sys.executable, "-m", "msgbus", "listen", "fake://"],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert listen.stderr is not None
        assert "listening on notifications" in listen.stderr.readline()
        listen.send_signal(signal.SIGINT)
        assert listen.wait(timeout=30) == exits.Exit.INTERRUPTED
    finally:
        if listen.poll() is None:
            listen.kill()
            listen.wait()


def test_which_urls_get_a_fault_injector() -> None:
    import shutil

    from msgbus.cli import check
    assert "no fault injector is known for fake://" in check.fault_injector_unavailable("fake")
    tools = all(shutil.which(t) for t in ("rabbitmq-server", "rabbitmqctl"))
    for scheme in ("rabbit", "kombu", "pika"):
        why = check.fault_injector_unavailable(scheme)
        assert (why == "") == tools, why
        assert tools or "not on PATH" in why
