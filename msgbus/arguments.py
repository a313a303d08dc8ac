"""Checks of the arguments users pass to the public factories and clients, with messages that
say what was expected and how to write it (instead of an AttributeError deep inside)."""

from __future__ import annotations

from typing import Any

__all__ = ["check_conf", "check_target", "positional_arguments_error"]


def _masked(value: Any) -> str:
    """``repr`` of a value for an error message; a URL loses its password."""
    from msgbus.transport_url import TransportURL
    if isinstance(value, (str, TransportURL)):
        try:
            return repr(TransportURL.parse(None, str(value)).masked)
        except Exception:  # noqa: BLE001 - not a URL: say nothing of its content
            return "(a string)"
    return ""


def check_conf(conf: Any, function: str) -> None:
    """Refuse anything but None or an oslo.config ConfigOpts as ``function``'s first argument;
    a URL there is the usual mistake, so the message says to pass it as ``url=``."""
    if conf is None or callable(getattr(conf, "register_opts", None)):
        return
    raise TypeError(f"the first argument of {function}() is the oslo.config ConfigOpts (or "
                    f"None), not {type(conf).__name__} {_masked(conf)}".rstrip()
                    + f"; pass the transport URL as url=, for example "
                      f"{function}(url='rabbit://user:pass@host:5672/')")


def check_target(target: Any, function: str) -> None:
    """Refuse a ``target`` that is not a msgbus Target, showing how to build one."""
    from msgbus.target import Target
    if isinstance(target, Target):
        return
    hint = f"msgbus.Target(topic={target!r})" if isinstance(target, str) else \
        "msgbus.Target(topic='...')"
    raise TypeError(f"the target of {function}() must be a msgbus.Target, not "
                    f"{type(target).__name__} {target!r}; for example {hint}")


def positional_arguments_error(kind: str, method: str, args: tuple[Any, ...]) -> TypeError:
    """The error for ``call``/``cast`` given the remote method's arguments by position: they
    travel by name, so they must be passed as keywords."""
    shown = ", ".join(f"<name{i + 1}>={a!r}" for i, a in enumerate(args[:3]))
    return TypeError(f"{kind}() sends the arguments of {method!r} by name: pass them as keywords, "
                     f"for example {kind}(ctxt, {method!r}, {shown}), not as {len(args)} "
                     f"positional argument(s) after the method name")
