"""The log and noop notifier drivers, and the driver entry points."""

from __future__ import annotations

import json
import logging

import pytest

from msgbus.driver.loader import installed
from msgbus.notify import Notifier, NotifierDriver
from msgbus.notify.driver import DRIVER_GROUP, load_notifier_driver
from msgbus.notify.drivers.log import mask_secrets
from msgbus.transport import Transport


def test_every_driver_is_registered() -> None:
    assert set(installed(DRIVER_GROUP)) >= {"messagingv2", "messaging", "log", "noop", "test",
                                             "routing"}
    for name in ("messagingv2", "messaging", "log", "noop", "test", "routing"):
        assert issubclass(load_notifier_driver(name), NotifierDriver)


@pytest.mark.parametrize("method, level", [
    ("debug", logging.DEBUG), ("info", logging.INFO), ("audit", logging.INFO),
    ("sample", logging.DEBUG), ("warn", logging.WARNING), ("error", logging.ERROR),
    ("critical", logging.CRITICAL)])
def test_log_driver_logs_at_the_matching_level(transport: Transport,
                                               caplog: pytest.LogCaptureFixture,
                                               method: str, level: int) -> None:
    notifier = Notifier(transport, "svc", driver="log")
    with caplog.at_level(logging.DEBUG, logger="oslo.messaging.notification"):
        getattr(notifier, method)({}, "compute.instance.create", {"id": 1})
    [record] = [r for r in caplog.records if r.name.startswith("oslo.messaging.notification")]
    assert record.name == "oslo.messaging.notification.compute.instance.create"
    assert record.levelno == level
    logged = json.loads(record.getMessage())
    assert logged["payload"] == {"id": 1} and logged["publisher_id"] == "svc"


def test_log_driver_masks_secrets(transport: Transport,
                                  caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger="oslo.messaging.notification"):
        Notifier(transport, "svc", driver="log").info(
            {}, "user.create", {"name": "bob", "password": "hunter2",
                                "nested": [{"auth_token": "t0k"}]})
    assert "hunter2" not in caplog.text and "t0k" not in caplog.text
    assert "bob" in caplog.text


def test_mask_secrets_leaves_other_values() -> None:
    assert mask_secrets({"a": 1, "db_password": "x", "l": [1, {"secret": 2}]}) == \
        {"a": 1, "db_password": "***", "l": [1, {"secret": "***"}]}
    assert mask_secrets("plain") == "plain"


def test_noop_driver_sends_nothing(transport: Transport) -> None:
    notifier = Notifier(transport, "p", driver=["noop", "test"])
    notifier.info({}, "e", 1)
    assert len(notifier.drivers["test"].notifications) == 1
    assert notifier.drivers["noop"].notify({}, {}, "INFO", None) is None
