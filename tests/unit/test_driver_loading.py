"""Driver discovery: unknown schemes, typos, and drivers that do not implement the interface."""

from typing import Any

import pytest

import msgbus
from msgbus.driver import API_VERSION, Driver
from msgbus.driver.loader import check_driver_class


def test_unknown_scheme_names_installed_drivers() -> None:
    with pytest.raises(msgbus.DriverLoadFailure) as info:
        msgbus.get_rpc_transport(url="nosuchbroker://host/")
    assert "installed:" in str(info.value) and "fake" in str(info.value)


def test_typo_gets_a_suggestion() -> None:
    with pytest.raises(msgbus.DriverLoadFailure, match="did you mean 'fake'"):
        msgbus.get_rpc_transport(url="fak://")


def test_rabbit_typo_suggests_rabbit_when_installed() -> None:
    from msgbus.driver.loader import DRIVER_GROUP, installed
    if "rabbit" not in installed(DRIVER_GROUP):
        pytest.fail("the rabbit driver (drivers/msgbus-kombu) must be installed for the suite")
    with pytest.raises(msgbus.DriverLoadFailure, match="did you mean 'rabbit'"):
        msgbus.get_rpc_transport(url="rabit://")


def test_driver_of_wrong_interface_version_is_refused() -> None:
    class Old(Driver):
        api_version = API_VERSION + 1

    with pytest.raises(msgbus.DriverLoadFailure, match="interface version"):
        check_driver_class(Old, "old")


def test_incomplete_driver_names_missing_methods() -> None:
    class Half(Driver):
        api_version = API_VERSION

        def send(self, *a: Any, **k: Any) -> None:
            pass

    with pytest.raises(msgbus.DriverLoadFailure) as info:
        check_driver_class(Half, "half")
    for name in ("listen", "listen_for_replies", "send_reply", "close"):
        assert name in str(info.value)
    assert "send," not in str(info.value).split("implement:")[1]


def test_not_a_class_is_refused() -> None:
    with pytest.raises(msgbus.DriverLoadFailure, match="not a class"):
        check_driver_class(object(), "weird")


def test_unknown_executor() -> None:
    transport = msgbus.get_rpc_transport(url="fake://")
    try:
        with pytest.raises(msgbus.ExecutorLoadFailure, match="threading"):
            msgbus.get_rpc_server(transport, msgbus.Target(topic="t", server="s"), [],
                                  executor="gevent")
    finally:
        transport.cleanup()
