"""The ``messaging`` (1.0, bare dict) and ``messagingv2`` (2.0 envelope) notifier drivers.

Each notification goes to every configured topic as ``<topic>.<priority>`` on the transport; the
driver adds a fresh ``_unique_id`` and the flattened context to each copy it sends.
"""

from __future__ import annotations

import logging

from msgbus import envelope
from msgbus.notify.driver import NotifierDriver
from msgbus.target import Target

LOG = logging.getLogger(__name__)

__all__ = ["MessagingDriver", "MessagingV2Driver"]


class MessagingDriver(NotifierDriver):
    """Sends notifications on the transport without the envelope (message format 1.0).

    Use it only for consumers that cannot read the 2.0 envelope; listeners read both.
    """

    #: Whether bodies are wrapped in the 2.0 envelope.
    enveloped = False

    def _encode(self, ctxt: dict, message: dict) -> bytes:
        inner = dict(message)
        inner["_unique_id"] = envelope.new_id()
        envelope.pack_context(inner, ctxt)
        return envelope.encode(inner) if self.enveloped else envelope.encode_unwrapped(inner)

    def notify(self, ctxt: dict, message: dict, priority: str, retry: int | None) -> None:
        priority = priority.lower()
        for topic in self.topics:
            body = self._encode(ctxt, message)  # a serialization error is the caller's to log
            target = Target(topic=f"{topic}.{priority}")
            try:
                self.transport.send_notification(target, body, retry=retry)
            except Exception as exc:
                LOG.error("could not send notification %s (%s) to topic %s: %s: %s",
                          message.get("message_id"), message.get("event_type"), target.topic,
                          type(exc).__name__, exc)


class MessagingV2Driver(MessagingDriver):
    """Sends notifications on the transport in the 2.0 envelope (the default to choose)."""

    enveloped = True
