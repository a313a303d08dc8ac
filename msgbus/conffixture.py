"""A fixture for users' tests: msgbus options on a ConfigOpts, changed for the test and restored."""

from __future__ import annotations

from typing import Any

from oslo_config import cfg

from msgbus import options

__all__ = ["ConfFixture"]

try:  # fixtures is optional: ConfFixture also works as a context manager or by hand.
    import fixtures as _fixtures
    _Base: Any = _fixtures.Fixture
except ImportError:  # pragma: no cover - depends on the environment
    _Base = object


class ConfFixture(_Base):
    """Registers msgbus's options on ``conf`` and lets a test set them; ``cleanUp`` restores.

    Use as a ``fixtures`` fixture (``self.useFixture(ConfFixture(conf))``), as a context
    manager, or call ``setUp()`` and ``cleanUp()`` yourself. ``transport_url`` defaults to
    ``fake://`` so that tests need no broker. oslo.messaging's option groups are registered
    too, so ``set('rabbit_quorum_queue', True, group='oslo_messaging_rabbit')`` works.
    """

    def __init__(self, conf: cfg.ConfigOpts | None = None,
                 transport_url: str | None = "fake://") -> None:
        if _Base is not object:
            super().__init__()
        self.conf = conf if conf is not None else options.new_conf()
        options.register_opts(self.conf)
        # oslo.messaging's groups too: code written for it sets them before any transport
        # exists (``oslo_messaging_rabbit``, ``oslo_messaging_notifications``, the old
        # ``[DEFAULT] notification_*`` names); msgbus reads them as aliases of its own.
        options.register_oslo_groups(self.conf)
        self._initial_url = transport_url
        self._overrides: list[tuple[str, str | None]] = []

    def _setUp(self) -> None:
        self._apply()

    def setUp(self) -> None:  # noqa: N802 - fixtures' API
        if _Base is not object:
            super().setUp()
        else:
            self._apply()

    def _apply(self) -> None:
        if self._initial_url is not None:
            self.set("transport_url", self._initial_url)
        if _Base is not object:
            self.addCleanup(self._restore)

    def set(self, name: str, value: Any, group: str | None = None) -> None:
        """Override option ``name`` (in ``group``) until cleanup."""
        self.conf.set_override(name, value, group=group)
        self._overrides.append((name, group))

    def _restore(self) -> None:
        for name, group in reversed(self._overrides):
            self.conf.clear_override(name, group=group)
        self._overrides.clear()
        from msgbus import fake
        fake.reset()

    def cleanUp(self) -> None:  # noqa: N802 - fixtures' API
        if _Base is not object:
            super().cleanUp()
        else:
            self._restore()

    # oslo.messaging's ConfFixture exposes these as properties.
    @property
    def transport_url(self) -> str | None:
        return self.conf.transport_url

    @transport_url.setter
    def transport_url(self, value: str) -> None:
        self.set("transport_url", value)

    @property
    def response_timeout(self) -> float:
        return self.conf.rpc_response_timeout

    @response_timeout.setter
    def response_timeout(self, value: float) -> None:
        self.set("rpc_response_timeout", value)

    def __enter__(self) -> "ConfFixture":
        self.setUp()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.cleanUp()
