"""RPC API version compatibility: ``major.minor[.rev]`` strings."""

from __future__ import annotations


def _parse(version: str) -> tuple[int, ...]:
    try:
        parts = tuple(int(p) for p in str(version).split("."))
    except ValueError:
        raise ValueError(f"invalid RPC version {version!r}: expected 'major.minor'") from None
    return parts + (0,) * (3 - len(parts))


def version_is_compatible(implemented: str, requested: str) -> bool:
    """True when an endpoint at ``implemented`` can serve a request for ``requested``.

    Same major version, and the implemented minor (then revision) is at least the requested one.
    """
    imp, req = _parse(implemented), _parse(requested)
    if imp[0] != req[0]:
        return False
    return imp[1:] >= req[1:]
