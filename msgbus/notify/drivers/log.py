"""The ``log`` notifier driver: each notification becomes a log record of matching level.

Records go to the logger ``oslo.messaging.notification.<event_type>`` (oslo.messaging's name,
which deployments' logging configurations route on) as one line of JSON, with the values of
password-like keys masked.
"""

from __future__ import annotations

import logging
from typing import Any

from msgbus import envelope
from msgbus.notify.driver import NotifierDriver

__all__ = ["LogDriver", "LOGGER_BASE", "mask_secrets"]

#: Parent logger of the records this driver writes.
LOGGER_BASE = "oslo.messaging.notification"

_LEVELS = {"debug": logging.DEBUG, "info": logging.INFO, "audit": logging.INFO,
           "sample": logging.DEBUG, "warn": logging.WARNING, "warning": logging.WARNING,
           "error": logging.ERROR, "critical": logging.CRITICAL}

_SECRET_WORDS = ("password", "passwd", "secret", "token", "credential", "private_key")
_MASK = "***"


def mask_secrets(value: Any) -> Any:
    """A copy of ``value`` where values of keys naming secrets (password, token...) are masked."""
    if isinstance(value, dict):
        return {k: _MASK if isinstance(k, str) and any(w in k.lower() for w in _SECRET_WORDS)
                else mask_secrets(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [mask_secrets(v) for v in value]
    return value


class LogDriver(NotifierDriver):
    """Logs notifications instead of sending them (audit as INFO, sample as DEBUG)."""

    def notify(self, ctxt: dict, message: dict, priority: str, retry: int | None) -> None:
        logger = logging.getLogger(f"{LOGGER_BASE}.{message.get('event_type')}")
        level = _LEVELS.get(priority.lower(), logging.INFO)
        if logger.isEnabledFor(level):
            logger.log(level, "%s", envelope.dumps(mask_secrets(message)))
