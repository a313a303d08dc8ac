"""Small behaviours oslo.messaging users rely on, checked side by side with oslo.messaging 18
(on both libraries' in-process fake drivers): version caps, prepare(version=...), the
deprecated eventlet executor, module paths users import from, targets checked at start()."""

from __future__ import annotations

import importlib
import inspect
import logging
import warnings
from collections.abc import Iterator
from typing import Any

import oslo_messaging as om
import pytest
from oslo_config import cfg

import msgbus
import msgbus.fake
from msgbus.executors import eventlet as eventlet_executor


@pytest.fixture
def transports() -> Iterator[tuple[Any, msgbus.Transport]]:
    msgbus.fake.reset()
    oslo = om.get_rpc_transport(cfg.ConfigOpts(), url="fake:/")
    ours = msgbus.get_rpc_transport(url="fake:/")
    try:
        yield oslo, ours
    finally:
        ours.cleanup()
        oslo.cleanup()
        msgbus.fake.reset()


def _outcome(fn: Any) -> Any:
    try:
        return fn()
    except om.MessagingException as exc:  # oslo's
        return type(exc).__name__
    except msgbus.MessagingException as exc:
        return type(exc).__name__


@pytest.mark.parametrize("cap", [None, "1.5", "2.0"])
@pytest.mark.parametrize("target_version", [None, "1.2", "1.7"])
@pytest.mark.parametrize("asked", ["default", None, "1.0", "1.5", "1.5.1", "1.6", "2.0", "abc"])
def test_can_send_version_answers_as_oslo(transports: Any, cap: str | None,
                                          target_version: str | None, asked: Any) -> None:
    oslo, ours = transports

    def ask(client: Any) -> Any:
        return client.can_send_version() if asked == "default" else client.can_send_version(asked)
    expected = _outcome(lambda: ask(om.get_rpc_client(
        oslo, om.Target(topic="t", version=target_version), version_cap=cap)))
    got = _outcome(lambda: ask(msgbus.get_rpc_client(
        ours, msgbus.Target(topic="t", version=target_version), version_cap=cap)))
    assert got == expected


def test_a_version_cap_refuses_a_message_without_version(transports: Any) -> None:
    oslo, ours = transports
    with pytest.raises(om.RPCVersionCapError):
        om.get_rpc_client(oslo, om.Target(topic="t"), version_cap="1.5").cast({}, "m")
    with pytest.raises(msgbus.RPCVersionCapError):
        msgbus.get_rpc_client(ours, msgbus.Target(topic="t"), version_cap="1.5").cast({}, "m")


@pytest.mark.parametrize("version", ["abc", "1", "1.x", "1.0.x", "", "1.0a", "1.2.3.4", None,
                                     " 1.0", "1.0", "2.13.1"])
def test_prepare_refuses_the_versions_oslo_refuses(transports: Any, version: Any) -> None:
    oslo, ours = transports
    expected = _outcome(lambda: om.get_rpc_client(oslo, om.Target(topic="t"))
                        .prepare(version=version) and "ok")
    got = _outcome(lambda: msgbus.get_rpc_client(ours, msgbus.Target(topic="t"))
                   .prepare(version=version) and "ok")
    assert got == expected


def test_eventlet_executor_runs_on_threads_with_one_deprecation_warning(
        transports: Any, caplog: pytest.LogCaptureFixture) -> None:
    _, ours = transports
    eventlet_executor._warned = False

    class Echo:
        def echo(self, ctxt: Any, value: Any) -> Any:
            return value

    with warnings.catch_warnings(record=True) as caught, \
            caplog.at_level(logging.WARNING, logger="msgbus.executors.eventlet"):
        warnings.simplefilter("always")
        servers = [msgbus.get_rpc_server(ours, msgbus.Target(topic="ev", server=f"s{i}"),
                                         [Echo()], executor="eventlet") for i in range(2)]
    deprecations = [w for w in caught if issubclass(w.category, DeprecationWarning)
                    and "eventlet" in str(w.message)]
    assert len(deprecations) == 1
    assert len([r for r in caplog.records if "eventlet" in r.getMessage()]) == 1
    for server in servers:
        server.start()
    try:
        client = msgbus.get_rpc_client(ours, msgbus.Target(topic="ev"), timeout=10)
        assert client.call({}, "echo", value=5) == 5
    finally:
        for server in servers:
            server.stop()
            server.wait()


def test_unknown_executors_are_still_refused(transports: Any) -> None:
    _, ours = transports
    with pytest.raises(msgbus.ExecutorLoadFailure, match="greenlet"):
        msgbus.get_rpc_server(ours, msgbus.Target(topic="t", server="s"), [],
                              executor="greenlet")


def test_targets_are_checked_at_start_as_oslo_does(transports: Any) -> None:
    oslo, ours = transports
    oslo_server = om.get_rpc_server(oslo, om.Target(topic="t"), [], executor="threading")
    with pytest.raises(om.InvalidTarget):
        oslo_server.start()
    server = msgbus.get_rpc_server(ours, msgbus.Target(topic="t"), [])
    with pytest.raises(msgbus.InvalidTarget, match="server"):
        server.start()
    listener = msgbus.get_notification_listener(ours, [msgbus.Target()], [_Info()])
    with pytest.raises(msgbus.InvalidTarget, match="topic"):
        listener.start()


class _Info:
    def info(self, *args: Any) -> None:
        pass


# oslo.messaging modules users import from, and the msgbus module with the same names.
MODULES = {
    "oslo_messaging.rpc": "msgbus.rpc",
    "oslo_messaging.rpc.client": "msgbus.rpc.client",
    "oslo_messaging.rpc.server": "msgbus.rpc.server",
    "oslo_messaging.rpc.dispatcher": "msgbus.rpc.dispatcher",
    "oslo_messaging.rpc.transport": "msgbus.rpc.transport",
    "oslo_messaging.exceptions": "msgbus.exceptions",
    "oslo_messaging.server": "msgbus.server",
    "oslo_messaging.serializer": "msgbus.serializer",
    "oslo_messaging.target": "msgbus.target",
    "oslo_messaging.transport": "msgbus.transport",
    "oslo_messaging.conffixture": "msgbus.conffixture",
    "oslo_messaging.notify": "msgbus.notify",
    "oslo_messaging.notify.notifier": "msgbus.notify.notifier",
    "oslo_messaging.notify.listener": "msgbus.notify.listener",
    "oslo_messaging.notify.dispatcher": "msgbus.notify.dispatcher",
    "oslo_messaging.notify.filter": "msgbus.notify.filter",
    "oslo_messaging.notify.log_handler": "msgbus.notify.log_handler",
    "oslo_messaging.notify.logger": "msgbus.notify.logger",
    "oslo_messaging.notify.messaging": "msgbus.notify.messaging",
}


def _public_names(module: Any) -> list[str]:
    """A module's ``__all__``, or else the classes and functions it defines or re-exports from
    oslo.messaging (not the modules and helpers it merely imports)."""
    if hasattr(module, "__all__"):
        return list(module.__all__)
    return [name for name, value in vars(module).items()
            if not name.startswith("_") and (inspect.isclass(value) or inspect.isfunction(value))
            and getattr(value, "__module__", "").startswith("oslo_messaging")]


@pytest.mark.parametrize("oslo_module, ours", MODULES.items(), ids=list(MODULES))
def test_names_oslo_users_import_from_submodules_exist(oslo_module: str, ours: str) -> None:
    module = importlib.import_module(ours)
    missing = [n for n in _public_names(importlib.import_module(oslo_module))
               if not hasattr(module, n)]
    assert missing == []
