"""Remote failures: how an endpoint's exception travels to the caller and is raised there.

The server sends class, module, message, args and kwargs (and the traceback only when configured).
The client rebuilds the original type only for builtins, msgbus's own exceptions and modules the
user allowed; everything else becomes RemoteError. Nothing is unpickled, and no module is imported
merely because the wire named it.
"""

from __future__ import annotations

import builtins
import importlib
import json
import logging
import traceback
from typing import Any, Iterable

from msgbus import envelope, exceptions

LOG = logging.getLogger(__name__)

REMOTE_SUFFIX = "_Remote"
_BUILTIN_MODULES = ("builtins", "exceptions")
_OWN_MODULE = exceptions.__name__
# oslo.messaging's module names for the exceptions msgbus shares with it.
_OSLO_ALIASES = {
    "oslo_messaging.rpc.dispatcher": _OWN_MODULE,
    "oslo_messaging.exceptions": _OWN_MODULE,
    "oslo_messaging.rpc.client": _OWN_MODULE,
    "oslo_messaging.server": _OWN_MODULE,
}


def _as_repr(values: Any) -> Any:
    if isinstance(values, dict):
        return {str(k): repr(v) for k, v in values.items()}
    return [repr(v) for v in values]


def serialize(exc: BaseException, *, with_traceback: bool) -> str:
    """The JSON string a reply's ``failure`` carries for ``exc``.

    ``args`` and ``kwargs`` are written as oslo.messaging writes them (its JSON rules, big
    integers exact); when one cannot be written at all, its items go as their ``repr``.
    """
    cls = type(exc)
    name, module = cls.__name__, cls.__module__
    if name.endswith(REMOTE_SUFFIX) and module.endswith(REMOTE_SUFFIX):
        name, module = name[:-len(REMOTE_SUFFIX)], module[:-len(REMOTE_SUFFIX)]
    if isinstance(exc, exceptions.RemoteError):
        message = exc.value or ""
    else:
        message = str(exc)
    tb = traceback.format_exception(cls, exc, exc.__traceback__) if with_traceback else []
    data = {
        "class": name,
        "module": module,
        "message": message,
        "tb": tb,
        "args": list(getattr(exc, "args", ())),
        "kwargs": getattr(exc, "kwargs", None) or {},
    }
    try:
        return envelope.dumps(data)
    except exceptions.MessageSerializationError:
        data["args"], data["kwargs"] = _as_repr(data["args"]), _as_repr(data["kwargs"])
        try:
            return envelope.dumps(data)
        except exceptions.MessageSerializationError:  # e.g. kwargs keys that are not text
            data["kwargs"] = {}
            return envelope.dumps(data)


def _lookup_class(module: str, name: str, allowed: Iterable[str]) -> type | None:
    """The class to rebuild, or None for a RemoteError (logged when an allowed one fails)."""
    if module in _BUILTIN_MODULES:
        cls = getattr(builtins, name, None)
    elif module == _OWN_MODULE or _OSLO_ALIASES.get(module) == _OWN_MODULE:
        cls = getattr(exceptions, name, None)
    elif module in allowed:
        try:
            cls = getattr(importlib.import_module(module), name, None)
        except ImportError as exc:
            LOG.warning("cannot rebuild remote exception %s.%s (allowed module): the module "
                        "cannot be imported here: %s; raising RemoteError instead",
                        module, name, exc)
            return None
    else:
        return None
    if isinstance(cls, type) and issubclass(cls, Exception):
        return cls
    LOG.warning("cannot rebuild remote exception %s.%s: %s; raising RemoteError instead",
                module, name, "no such class in that module" if cls is None
                else f"it is not an Exception class ({type(cls).__name__})")
    return None


def _construct(cls: type, failure: dict, message: str) -> Exception | str:
    """``cls`` built from what the wire carries, or why it cannot be.

    First as the server had it, ``cls(*args, **kwargs)`` (nova-style exceptions with kwargs
    included); then, for classes whose constructor takes only a message, ``cls(message)``.
    """
    args, kwargs = failure.get("args") or [], failure.get("kwargs") or {}
    if not isinstance(args, list) or not isinstance(kwargs, dict):
        args, kwargs = [message], {}
    try:
        return cls(*args, **kwargs)
    except Exception as first:  # the class's constructor does not take what the wire sent
        if [message] == args and not kwargs:
            return f"{type(first).__name__}: {first}"
        try:
            return cls(message)
        except Exception:
            return f"{type(first).__name__}: {first}"


def deserialize(data: str, allowed_modules: Iterable[str] = ()) -> Exception:
    """Rebuild the exception a ``failure`` string describes (or a RemoteError)."""
    try:
        failure = json.loads(data)
        if not isinstance(failure, dict):
            raise ValueError("not an object")
    except (TypeError, ValueError):
        return exceptions.RemoteError("UnknownError", str(data)[:1000], None)
    name = str(failure.get("class") or "Exception")
    module = str(failure.get("module") or "")
    message = str(failure.get("message") or "")
    tb_lines = failure.get("tb") or []
    tb_text = "".join(tb_lines) if isinstance(tb_lines, list) else str(tb_lines)
    cls = _lookup_class(module, name, allowed_modules)
    if cls is None:
        return exceptions.RemoteError(name, message, tb_text or None)
    exc = _construct(cls, failure, message)
    if isinstance(exc, str):
        args, kwargs = failure.get("args"), failure.get("kwargs")
        LOG.warning("cannot rebuild remote exception %s.%s from what the server sent "
                    "(%d args, kwargs %s): %s; raising RemoteError instead", module, name,
                    len(args) if isinstance(args, list) else 0,
                    sorted(map(str, kwargs)) if isinstance(kwargs, dict) else [], exc)
        return exceptions.RemoteError(name, message, tb_text or None)
    remote_message = message + ("\n" + tb_text if tb_text else "")
    # msgbus's (and oslo.messaging's) own exceptions are rebuilt even when the caller did not
    # allow their module, but then they are a RemoteError too, as oslo.messaging's caller gets
    # one: code that catches RemoteError keeps working, and code that wants the precise class
    # has it.
    as_remote_error = cls.__module__ == _OWN_MODULE and module not in allowed_modules \
        and not issubclass(cls, exceptions.RemoteError)
    bases: tuple[type, ...] = (cls, exceptions.RemoteError) if as_remote_error else (cls,)
    remote_cls = type(name + REMOTE_SUFFIX, bases,
                      {"__str__": lambda self: remote_message,
                       "__module__": cls.__module__ + REMOTE_SUFFIX})
    try:
        exc.__class__ = remote_cls
    except TypeError:  # builtins cannot change class; keep the type, carry the message
        exc.args = (remote_message,) + tuple(exc.args[1:])
    if as_remote_error:
        exc.exc_type, exc.value = name, message  # type: ignore[attr-defined]
        exc.traceback = tb_text or None  # type: ignore[attr-defined]
    exc.remote_traceback = tb_text or None  # type: ignore[attr-defined]
    return exc
