"""Readable reasons for pika's errors (its connection workflow nests the real cause deeply)."""

from __future__ import annotations

from typing import Any


def _root_cause(exc: BaseException) -> BaseException:
    """The innermost error of pika's connection workflow wrappers (refused, timed out, auth)."""
    for _ in range(8):
        inner: Any = None
        nested = getattr(exc, "exceptions", None)
        if nested:
            inner = nested[-1]
        elif isinstance(getattr(exc, "exception", None), BaseException):
            inner = exc.exception  # type: ignore[attr-defined]
        elif len(exc.args) == 1 and isinstance(exc.args[0], BaseException):
            inner = exc.args[0]
        if inner is None:
            break
        exc = inner
    return exc


def describe_error(exc: BaseException) -> str:
    """A short readable reason for a pika error: the root cause's type and text."""
    root = _root_cause(exc)
    text = str(root)
    if not text or text == "()":
        return type(root).__name__
    return f"{type(root).__name__}: {text}"
