"""Errors that say what to do: which distribution to install, which driver failed to load and
where from, where the URL goes, which argument could not be serialized."""

from __future__ import annotations

import sys
import textwrap
from pathlib import Path
from typing import Any, Iterator

import pytest

import msgbus
import msgbus.fake
from msgbus.driver import loader


@pytest.fixture(autouse=True)
def fresh_brokers() -> Iterator[None]:
    yield
    msgbus.fake.reset()


@pytest.mark.parametrize("scheme, dist", [("rabbit", "msgbus-kombu"), ("kombu", "msgbus-kombu"),
                                          ("pika", "msgbus-pika")])
def test_a_missing_amqp_driver_names_the_distribution_to_install(
        monkeypatch: pytest.MonkeyPatch, scheme: str, dist: str) -> None:
    # as if the distribution were not installed: nothing registered under the scheme
    real = loader._load_plugin
    monkeypatch.setattr(loader, "_load_plugin",
                        lambda group, name: None if name == scheme else real(group, name))
    with pytest.raises(msgbus.DriverLoadFailure) as info:
        msgbus.get_rpc_transport(url=f"{scheme}://guest:secret@localhost:5672/")
    assert f"pip install {dist}" in str(info.value)
    assert "secret" not in str(info.value)


def test_an_unknown_scheme_gets_no_install_hint() -> None:
    with pytest.raises(msgbus.DriverLoadFailure) as info:
        msgbus.get_rpc_transport(url="nosuch://")
    assert "pip install" not in str(info.value)


@pytest.fixture
def broken_distribution(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A really installed distribution (a dist-info on sys.path) whose driver's constructor
    raises; returns its scheme."""
    (tmp_path / "brokenctor_driver.py").write_text(textwrap.dedent('''
        from msgbus.fake.driver import FakeDriver

        class BrokenDriver(FakeDriver):
            def __init__(self, conf, url, default_exchange):
                raise OSError("cannot open /etc/brokenctor.conf")
    '''))
    info = tmp_path / "brokenctor-1.2.3.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: brokenctor\nVersion: 1.2.3\n")
    (info / "entry_points.txt").write_text(
        "[msgbus.drivers]\nbrokenctor = brokenctor_driver:BrokenDriver\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    # stevedore keeps each group's entry points for the life of the process: start afresh
    from stevedore.extension import ExtensionManager
    monkeypatch.setattr(ExtensionManager, "ENTRY_POINT_CACHE", {})
    yield "brokenctor"
    sys.modules.pop("brokenctor_driver", None)


def test_a_driver_whose_constructor_raises_is_named_with_its_origin_and_cause(
        broken_distribution: str) -> None:
    with pytest.raises(msgbus.DriverLoadFailure) as info:
        msgbus.get_rpc_transport(url=f"{broken_distribution}://")
    text = str(info.value)
    assert "brokenctor_driver.BrokenDriver" in text
    assert "entry point brokenctor = brokenctor_driver:BrokenDriver" in text
    assert "brokenctor 1.2.3" in text
    assert "raised OSError" in text and "cannot open /etc/brokenctor.conf" in text
    assert isinstance(info.value.__cause__, OSError)


def test_driver_entries_show_distribution_and_version(broken_distribution: str) -> None:
    entry = loader.driver_entry(broken_distribution)
    assert entry is not None
    assert (entry.distribution, entry.version) == ("brokenctor", "1.2.3")
    fake = loader.driver_entry("fake")
    assert fake is not None and fake.distribution == "msgbus"


@pytest.mark.parametrize("getter", ["get_rpc_transport", "get_transport"])
def test_a_url_passed_as_the_conf_says_to_use_url_keyword(getter: str) -> None:
    with pytest.raises(TypeError) as info:
        getattr(msgbus, getter)("rabbit://guest:secret@host/")
    text = str(info.value)
    assert "ConfigOpts" in text and "url=" in text
    assert "secret" not in text


def test_the_checks_for_the_rpc_client_say_what_to_write() -> None:
    # msgbus.arguments holds the checks get_rpc_client, call and cast are to use
    from msgbus.arguments import check_target, positional_arguments_error
    with pytest.raises(TypeError, match=r"msgbus.Target\(topic='calc'\)"):
        check_target("calc", "get_rpc_client")
    check_target(msgbus.Target(topic="calc"), "get_rpc_client")
    error = positional_arguments_error("call", "add", (1, 2))
    assert "call(ctxt, 'add', <name1>=1, <name2>=2)" in str(error)
    assert "keywords" in str(error)


class Calc:
    def add(self, ctxt: Any, a: Any, b: Any) -> Any:
        return object() if a == "bad result" else a + b


@pytest.fixture
def calc_client() -> Iterator[msgbus.RPCClient]:
    transport = msgbus.get_rpc_transport(url="fake://")
    server = msgbus.get_rpc_server(transport, msgbus.Target(topic="calc", server="h"), [Calc()])
    server.start()
    try:
        yield msgbus.get_rpc_client(transport, msgbus.Target(topic="calc"), timeout=10)
    finally:
        server.stop()
        server.wait()
        transport.cleanup()


def test_a_serialization_error_names_the_argument_and_its_type(
        calc_client: msgbus.RPCClient) -> None:
    with pytest.raises(msgbus.MessageSerializationError) as info:
        calc_client.call({}, "add", a=1, b=object())
    assert "argument 'b' (of type object)" in str(info.value)
    with pytest.raises(msgbus.MessageSerializationError,
                       match=r"argument 'a'\[1\]\['x'\] \(of type"):
        calc_client.cast({}, "add", a=[1, {"x": {object()}}], b=2)


def test_a_result_that_cannot_be_serialized_is_named_as_the_result(
        calc_client: msgbus.RPCClient) -> None:
    with pytest.raises(msgbus.MessageSerializationError,
                       match=r"the result \(of type object\)"):
        calc_client.call({}, "add", a="bad result", b="")


def test_a_context_value_that_cannot_be_serialized_is_named(
        calc_client: msgbus.RPCClient) -> None:
    with pytest.raises(msgbus.MessageSerializationError, match="context key 'user'"):
        calc_client.call({"user": object()}, "add", a=1, b=2)
