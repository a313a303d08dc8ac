"""The contenders, by name: each is one messaging stack measured in its own processes."""

from __future__ import annotations

from benchmarks.contenders.base import Contender

#: Contender names in table order, with their group (``--only fake|rabbit``).
NAMES: tuple[tuple[str, str], ...] = (
    ("msgbus-fake", "fake"),
    ("oslo-fake", "fake"),
    ("msgbus-rabbit", "rabbit"),
    ("msgbus-rabbit-public", "rabbit"),
    ("msgbus-pika", "rabbit"),
    ("oslo-rabbit", "rabbit"),
    ("raw-pika", "rabbit"),
    ("raw-kombu", "rabbit"),
    ("msgbus-async-rabbit", "rabbit"),
    ("faststream-rabbit", "rabbit"),
    ("aiopika-rabbit", "rabbit"),
)


def group_of(name: str) -> str:
    """The group of ``name`` (``msgbus-rabbit@REV``, a baseline revision, is its contender's)."""
    return dict(NAMES)[name.partition("@")[0]]


def get(name: str) -> Contender:
    """A new contender object for ``name`` (one of :data:`NAMES`, or ``NAME@REV``: the same
    contender, run with the drivers of revision REV first on the path; see baseline.py)."""
    if "@" in name:
        contender = get(name.partition("@")[0])
        contender.name = name
        return contender
    from benchmarks.contenders.msgbus_contender import MsgbusContender
    from benchmarks.contenders.oslo_contender import OsloContender
    from benchmarks.contenders.raw_pika import RawPikaContender

    if name == "raw-pika":
        return RawPikaContender()
    if name == "raw-kombu":
        from benchmarks.contenders.raw_kombu import RawKombuContender
        return RawKombuContender()
    if name == "msgbus-rabbit-public":
        from benchmarks.contenders.msgbus_kombu_public import MsgbusKombuPublicContender
        return MsgbusKombuPublicContender()
    if name == "msgbus-async-rabbit":
        from benchmarks.contenders.msgbus_async import MsgbusAsyncContender
        return MsgbusAsyncContender("rabbit")
    if name == "faststream-rabbit":
        from benchmarks.contenders.faststream_contender import FastStreamContender
        return FastStreamContender()
    if name == "aiopika-rabbit":
        from benchmarks.contenders.aiopika_contender import AioPikaContender
        return AioPikaContender()
    library, _, scheme = name.partition("-")
    if library == "msgbus":
        return MsgbusContender(scheme)
    if library == "oslo":
        return OsloContender(scheme)
    raise KeyError(f"unknown contender {name!r}; known: {', '.join(n for n, _ in NAMES)}")


def names(only: str | None = None) -> list[str]:
    """Contender names, all or those of one group."""
    return [name for name, group in NAMES if only in (None, group)]
