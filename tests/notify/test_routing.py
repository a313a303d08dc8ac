"""The routing notifier driver: oslo's routing YAML format, rules by event type and priority."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from msgbus import options as core_options
from msgbus.exceptions import ConfigurationError
from msgbus.notify import Notifier, get_notification_transport
from msgbus.notify.drivers.routing import load_routing_config, parse_routing_config
from msgbus.transport import Transport

ROUTES = """
group_1:
  test:
    accepted_events:
      - compute.instance.*
      - volume.create
  log:
    accepted_priorities:
      - error
      - CRITICAL
group_2:
  test:
    accepted_priorities: [warn]
    accepted_events: ["network.*"]
  messagingv2: {}
  rpc:
    accepted_events: ["*"]
"""


@pytest.fixture
def routed(tmp_path: Path) -> Transport:
    path = tmp_path / "routes.yaml"
    path.write_text(ROUTES)
    conf = core_options.new_conf()
    transport = get_notification_transport(conf, url="fake://")
    conf.set_override("routing_config", str(path), group="msgbus_notifications")
    yield transport
    transport.cleanup()


def test_rules_pick_drivers(routed: Transport, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING):
        notifier = Notifier(routed, "p", driver="routing", topics=["routed"])
    assert "rpc" in caplog.text  # unknown driver named in the file: warned and ignored
    routing = notifier.drivers["routing"]
    assert set(routing.drivers) == {"test", "log", "messagingv2"}
    assert routing.drivers_for("compute.instance.create", "INFO") == ["test", "messagingv2"]
    assert routing.drivers_for("compute.instance.create", "error") == \
        ["test", "log", "messagingv2"]
    assert routing.drivers_for("image.upload", "critical") == ["log", "messagingv2"]
    assert routing.drivers_for("network.port", "WARN") == ["test", "messagingv2"]
    assert routing.drivers_for("network.port", "info") == ["messagingv2"]
    assert routing.drivers_for("volume.create", "debug") == ["test", "messagingv2"]


def test_notifications_reach_the_routed_drivers(routed: Transport,
                                                caplog: pytest.LogCaptureFixture) -> None:
    notifier = Notifier(routed, "p", driver="routing", topics=["routed"])
    test = notifier.drivers["routing"].drivers["test"]
    with caplog.at_level(logging.ERROR, logger="oslo.messaging.notification"):
        notifier.info({}, "compute.instance.create", 1)
        notifier.info({}, "image.upload", 2)
        notifier.error({}, "image.fail", 3)
        notifier.warn({}, "network.port", 4)
    assert [n.message["payload"] for n in test.notifications] == [1, 4]
    assert "image.fail" in caplog.text and "image.upload" not in caplog.text


def test_no_routing_config_drops(caplog: pytest.LogCaptureFixture,
                                 transport: Transport) -> None:
    with caplog.at_level(logging.WARNING):
        notifier = Notifier(transport, "p", driver="routing")
    assert "no routing_config" in caplog.text
    notifier.info({}, "e", 1)
    assert notifier.drivers["routing"].drivers == {}


def test_missing_file_is_a_configuration_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="cannot read"):
        load_routing_config(str(tmp_path / "absent.yaml"))


def test_invalid_yaml_is_a_configuration_error(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("group: [unclosed\n")
    with pytest.raises(ConfigurationError, match="not valid YAML"):
        load_routing_config(str(path))


@pytest.mark.parametrize("document, message", [
    (["a", "list"], "top level"),
    ({"g": ["x"]}, "group 'g'"),
    ({"g": {"log": ["x"]}}, "must be a mapping"),
    ({"g": {"log": {"accepted_events": [1, 2]}}}, "glob patterns"),
])
def test_malformed_documents(document: object, message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        parse_routing_config(document)


def test_empty_document_has_no_rules() -> None:
    assert parse_routing_config(None) == []
    assert parse_routing_config({"g": None}) == []


def test_a_single_pattern_string_is_accepted() -> None:
    [rule] = parse_routing_config({"g": {"log": {"accepted_events": "compute.*"}}})
    assert rule.matches("compute.x", "info") and not rule.matches("volume.x", "info")


def test_unknown_rule_keys_are_warned(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING):
        parse_routing_config({"g": {"log": {"accepted_things": ["x"]}}})
    assert "accepted_things" in caplog.text


def test_a_failing_routed_driver_does_not_stop_the_others(
        routed: Transport, caplog: pytest.LogCaptureFixture) -> None:
    notifier = Notifier(routed, "p", driver="routing", topics=["routed"])
    routing = notifier.drivers["routing"]

    def boom(*args: object) -> None:
        raise RuntimeError("routed driver broke")

    routing.drivers["messagingv2"].notify = boom
    with caplog.at_level(logging.ERROR):
        notifier.info({}, "compute.instance.create", 1)
    assert "routed driver broke" in caplog.text
    assert len(routing.drivers["test"].notifications) == 1
