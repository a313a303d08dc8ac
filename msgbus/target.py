"""Target: where a message goes, and what a server listens on."""

from __future__ import annotations

from typing import Any, Iterable

from msgbus.exceptions import InvalidTarget


class Target:
    """Names a destination: exchange, topic, namespace, version, server and fanout.

    A client's target says where a message is sent; a server's target says what it consumes;
    an endpoint's target (namespace and version) says which requests it answers.
    """

    __slots__ = ("exchange", "topic", "namespace", "version", "server", "fanout",
                 "legacy_namespaces", "accepted_namespaces")

    def __init__(self, exchange: str | None = None, topic: str | None = None,
                 namespace: str | None = None, version: str | None = None,
                 server: str | None = None, fanout: bool | None = None,
                 legacy_namespaces: Iterable[str] | None = None) -> None:
        self.exchange = exchange
        self.topic = topic
        self.namespace = namespace
        self.version = version
        self.server = server
        self.fanout = fanout
        self.legacy_namespaces = list(legacy_namespaces or [])
        self.accepted_namespaces: list[str | None] = [namespace, *self.legacy_namespaces]

    def __call__(self, **kwargs: Any) -> "Target":
        """Return a copy with the given fields replaced."""
        values = {name: getattr(self, name) for name in
                  ("exchange", "topic", "namespace", "version", "server", "fanout",
                   "legacy_namespaces")}
        values.update(kwargs)
        return Target(**values)

    def _fields(self) -> tuple:
        return (self.exchange, self.topic, self.namespace, self.version, self.server,
                self.fanout, tuple(self.legacy_namespaces))

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Target) and self._fields() == other._fields()

    def __hash__(self) -> int:
        return hash(self._fields())

    def __repr__(self) -> str:
        attrs = [f"{name}={getattr(self, name)}" for name in
                 ("exchange", "topic", "namespace", "version", "server", "fanout")
                 if getattr(self, name)]
        return f"<Target {', '.join(attrs)}>"

    def require(self, *fields: str, why: str) -> None:
        """Raise InvalidTarget naming the first of ``fields`` that is not set."""
        for name in fields:
            if not getattr(self, name):
                raise InvalidTarget(f"A {name} is required {why}", self)
