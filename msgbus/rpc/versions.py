"""RPC API version compatibility: ``major.minor[.rev]`` strings."""

from __future__ import annotations

import functools

from msgbus.exceptions import MessagingException

#: Most version pairs remembered (a server sees a handful, checked for every request).
_COMPATIBLE_MEMORY = 1024


def _parse(version: str) -> tuple[int, ...]:
    try:
        parts = tuple(int(p) for p in version.split("."))
    except ValueError:
        raise ValueError(f"invalid RPC version {version!r}: expected 'major.minor'") from None
    return parts + (0,) * (3 - len(parts))


def version_is_compatible(implemented: str, requested: str) -> bool:
    """True when an endpoint at ``implemented`` can serve a request for ``requested``.

    Same major version, and the implemented minor (then revision) is at least the requested one.
    """
    return _compatible(str(implemented), str(requested))


@functools.lru_cache(maxsize=_COMPATIBLE_MEMORY)
def _compatible(implemented: str, requested: str) -> bool:
    """:func:`version_is_compatible` on strings, remembered: every request is checked against
    each endpoint's version, and parsing both costs more than the rest of the lookup.
    (An invalid version raises ValueError each time: exceptions are not remembered.)"""
    imp, req = _parse(implemented), _parse(requested)
    if imp[0] != req[0]:
        return False
    return imp[1:] >= req[1:]


def check_version(version: str | None) -> None:
    """Refuse a version a client may not be prepared with, as oslo.messaging does: it needs an
    integer major and minor (and revision, when given); None (no version) is fine."""
    if version is None:
        return
    try:
        parts = str(version).split(".")
        for part in parts[:3]:
            int(part)
        if len(parts) < 2:
            raise ValueError
    except ValueError:
        raise MessagingException(f"Version must contain a major and minor integer. "
                                 f"Got {version}") from None


def version_allowed(version_cap: str | None, version: str | None) -> bool:
    """Whether a message at ``version`` may be sent under ``version_cap`` (oslo.messaging's rule:
    no cap allows everything; a cap refuses a message without a version)."""
    if not version_cap:
        return True
    if version is None:
        return False
    return version_is_compatible(version_cap, version)
