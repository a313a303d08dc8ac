"""The ``test`` notifier driver: keeps notifications in memory for users' tests to inspect.

The driver instance is reachable as ``notifier.drivers["test"]``; its ``notifications`` list holds
one :class:`SentNotification` per notify, in order.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, NamedTuple, Sequence

from msgbus.notify.driver import NotifierDriver

if TYPE_CHECKING:
    from oslo_config import cfg

    from msgbus.transport import Transport

__all__ = ["TestDriver", "SentNotification"]


class SentNotification(NamedTuple):
    """One notification the test driver received from its Notifier."""

    ctxt: dict
    message: dict
    priority: str
    retry: int | None


class TestDriver(NotifierDriver):
    """Records every notification on the instance (thread-safe); nothing leaves the process."""

    __test__ = False  # not a pytest test class

    def __init__(self, conf: "cfg.ConfigOpts", topics: Sequence[str],
                 transport: "Transport") -> None:
        super().__init__(conf, topics, transport)
        self._lock = threading.Lock()
        self._sent: list[SentNotification] = []

    def notify(self, ctxt: dict, message: dict, priority: str, retry: int | None) -> None:
        with self._lock:
            self._sent.append(SentNotification(dict(ctxt), dict(message), priority, retry))

    @property
    def notifications(self) -> Sequence[SentNotification]:
        """A copy of what was sent so far, oldest first."""
        with self._lock:
            return list(self._sent)

    def event_types(self) -> list[str]:
        """The ``event_type`` of each notification so far, in order."""
        return [n.message["event_type"] for n in self.notifications]

    def reset(self) -> None:
        """Forget every recorded notification."""
        with self._lock:
            self._sent.clear()
