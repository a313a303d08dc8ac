"""Options a driver reads from its oslo.config group, each overridable by a URL query option.

Any driver, third-party ones included, can use this instead of parsing ``url.query`` itself:
``read_options(conf, "mydriver", my_opts, url.query, url_text=url.masked)`` registers the
options in the group, reads them, lays the URL's query values over them (converted and checked
by each option's own oslo.config type, so ``?timeout=abc`` fails as the configuration file would)
and logs, by name, the query options it does not know.
"""

from __future__ import annotations

import logging
from typing import Any, Iterable, Mapping, Sequence

from oslo_config import cfg

from msgbus.exceptions import ConfigurationError

__all__ = ["coerce_query_value", "read_options"]

LOG = logging.getLogger(__name__)


def coerce_query_value(opt: cfg.Opt, text: str, url_text: str = "the transport URL") -> Any:
    """``text`` from a URL query converted by ``opt``'s type (bounds and choices checked).

    Raises ConfigurationError naming the option, the URL and what a valid value looks like."""
    try:
        return opt.type(text)
    except (TypeError, ValueError) as exc:
        raise ConfigurationError(
            f"invalid value {text!r} for the URL query option {opt.dest!r} of {url_text}: "
            f"expected {_expected(opt)} ({exc})") from None


def _expected(opt: cfg.Opt) -> str:
    """What a valid value of ``opt`` looks like, for error messages."""
    kind = opt.type
    low, high = getattr(kind, "min", None), getattr(kind, "max", None)
    bounds = "".join([f" >= {low}" if low is not None else "",
                      f" <= {high}" if high is not None else ""])
    if isinstance(kind, cfg.types.Boolean):
        return "true or false"
    if isinstance(kind, cfg.types.Integer):
        return "an integer" + bounds
    if isinstance(kind, cfg.types.Float):
        return "a number" + bounds
    choices = getattr(kind, "choices", None)
    if choices:
        return "one of " + ", ".join(map(str, choices))
    return "a valid value"


def read_options(conf: cfg.ConfigOpts, group: str, opts: Sequence[cfg.Opt],
                 query: Mapping[str, str] | None, *, url_text: str = "the transport URL",
                 known_elsewhere: Iterable[str] = ()) -> dict[str, Any]:
    """The values of ``opts`` in ``group`` of ``conf`` (registered if needed), with the URL's
    query options of the same names laid over them.

    Query names that are neither in ``opts`` nor in ``known_elsewhere`` (names the caller reads
    itself) are logged as ignored, so a typo in a URL does not pass silently."""
    conf.register_opts(opts, group=group)
    section = conf[group]
    values: dict[str, Any] = {opt.dest: getattr(section, opt.dest) for opt in opts}
    by_name = {opt.dest: opt for opt in opts}
    unknown = []
    for key, text in (query or {}).items():
        opt = by_name.get(key)
        if opt is not None:
            values[key] = coerce_query_value(opt, text, url_text)
        elif key not in known_elsewhere:
            unknown.append(key)
    if unknown:
        LOG.warning("%s: ignoring the unknown URL query option(s) %s; known: %s", url_text,
                    ", ".join(map(repr, sorted(unknown))),
                    ", ".join(sorted({*by_name, *known_elsewhere})))
    return values
