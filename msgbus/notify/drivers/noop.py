"""The ``noop`` notifier driver: notifications are dropped (and ``is_enabled()`` is False)."""

from __future__ import annotations

from msgbus.notify.driver import NotifierDriver

__all__ = ["NoOpDriver"]


class NoOpDriver(NotifierDriver):
    """Drops every notification."""

    def notify(self, ctxt: dict, message: dict, priority: str, retry: int | None) -> None:
        return None
