"""Logging handlers that send log records as notifications."""

from __future__ import annotations

import logging
import threading
from typing import Any, Iterator

import pytest

import msgbus
import msgbus.fake
from msgbus import options as core_options
from msgbus.notify import (LoggingErrorNotificationHandler, LoggingNotificationHandler,
                           PublishErrorsHandler, get_notification_listener,
                           get_notification_transport)
from msgbus.notify.options import register_notifier_opts


@pytest.fixture
def logger() -> Iterator[logging.Logger]:
    log = logging.getLogger("app.under.test")
    old = log.level, log.propagate
    log.setLevel(logging.DEBUG)
    log.propagate = False
    yield log
    log.setLevel(old[0])
    log.propagate = old[1]
    for handler in list(log.handlers):
        log.removeHandler(handler)
        handler.close()
    msgbus.fake.reset()


def test_records_become_notifications(logger: logging.Logger) -> None:
    handler = LoggingNotificationHandler("fake://", publisher_id="app.host", driver="test",
                                         conf=core_options.new_conf())
    logger.addHandler(handler)
    logger.info("hello %s", "world")
    logger.warning("careful")
    try:
        raise ValueError("bad value")
    except ValueError:
        logger.exception("it failed")
    sent = handler.notifier.drivers["test"].notifications
    assert [(n.priority, n.message["event_type"]) for n in sent] == \
        [("INFO", "logrecord"), ("WARN", "logrecord"), ("ERROR", "logrecord")]
    info = sent[0].message["payload"]
    assert info["msg"] == "hello world" and info["name"] == "app.under.test"
    assert info["levelname"] == "INFO" and info["funcName"] == "test_records_become_notifications"
    assert sent[0].message["publisher_id"] == "app.host"
    assert "ValueError: bad value" in sent[2].message["payload"]["exc_info"]
    assert sent[0].message["payload"]["exc_info"] is None


def test_end_to_end_on_fake(logger: logging.Logger) -> None:
    got: list[Any] = []
    arrived = threading.Event()

    class Endpoint:
        def error(self, ctxt: Any, publisher_id: str, event_type: str, payload: Any,
                  metadata: dict) -> None:
            got.append((publisher_id, event_type, payload["msg"]))
            arrived.set()

    transport = get_notification_transport(url="fake://logs/")
    listener = get_notification_listener(transport, [msgbus.Target(topic="logs")], [Endpoint()])
    listener.start()
    try:
        handler = LoggingNotificationHandler("fake://logs/", publisher_id="app",
                                             driver="messagingv2", topic="logs",
                                             conf=core_options.new_conf(), level=logging.ERROR)
        logger.addHandler(handler)
        logger.info("not sent: below the handler's level")
        logger.error("disk %s is full", "/var")
        assert arrived.wait(10)
        assert got == [("app", "logrecord", "disk /var is full")]
    finally:
        listener.stop()
        listener.wait()
        transport.cleanup()


def test_records_of_the_messaging_stack_are_not_sent(logger: logging.Logger) -> None:
    handler = LoggingNotificationHandler("fake://", driver="test", conf=core_options.new_conf())
    for name in ("msgbus.notify.notifier", "msgbus_kombu.driver", "kombu.connection", "pika"):
        handler.handle(logging.LogRecord(name, logging.ERROR, __file__, 1, "x", None, None))
    assert handler.notifier.drivers["test"].notifications == []
    handler.close()


def test_a_failing_send_does_not_recurse(logger: logging.Logger) -> None:
    handler = LoggingNotificationHandler("fake://", driver="test", conf=core_options.new_conf())
    calls: list[str] = []

    def failing_notify(*args: Any) -> None:
        calls.append("notify")
        logger.error("logged while sending")  # comes back to the same handler
        raise RuntimeError("cannot send")

    handler.notifier.drivers["test"].notify = failing_notify
    handler.handleError = lambda record: calls.append("handleError")  # type: ignore
    logger.addHandler(handler)
    logger.error("first")  # the Notifier catches the driver's error and logs it
    assert calls == ["notify"]


def test_levels_without_a_notification_method_are_ignored(logger: logging.Logger) -> None:
    handler = LoggingNotificationHandler("fake://", driver="test", conf=core_options.new_conf())
    handler.handle(logging.LogRecord("app", 5, __file__, 1, "custom level", None, None))
    assert handler.notifier.drivers["test"].notifications == []
    handler.close()


def test_error_handler_sends_error_notifications(logger: logging.Logger) -> None:
    conf = core_options.new_conf()
    handler = LoggingErrorNotificationHandler(conf=conf, url="fake://")
    assert PublishErrorsHandler is LoggingErrorNotificationHandler
    sent: list[Any] = []
    handler._notifier = _Capture(sent)
    logger.addHandler(handler)
    logger.error("database %s unreachable", "db1")
    assert sent == [("error.publisher", "error_notification",
                     {"error": "database db1 unreachable"})]
    conf.set_override("driver", ["log"], group="msgbus_notifications")
    logger.error("not sent: the log driver would loop")
    assert len(sent) == 1


class _Capture:
    publisher_id = "error.publisher"

    def __init__(self, sent: list[Any]) -> None:
        self.sent = sent

    def error(self, ctxt: Any, event_type: str, payload: Any) -> None:
        self.sent.append((self.publisher_id, event_type, payload))


def test_error_handler_uses_configured_drivers(logger: logging.Logger) -> None:
    conf = register_notifier_opts(core_options.new_conf())
    conf.set_override("driver", ["test"], group="msgbus_notifications")
    handler = LoggingErrorNotificationHandler(conf=conf, url="fake://")
    logger.addHandler(handler)
    logger.critical("meltdown")
    [sent] = handler._notifier.drivers["test"].notifications
    assert sent.priority == "ERROR" and sent.message["publisher_id"] == "error.publisher"
    assert sent.message["payload"] == {"error": "meltdown"}
