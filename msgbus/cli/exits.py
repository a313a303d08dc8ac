"""The ``msgbus`` command's exit codes, and which code an error maps to.

0 ok, 1 error, 2 usage (bad arguments), 3 timeout or no server answered, 4 broker unreachable
(or refused the connection), 130 interrupted (Ctrl-C). Documented in doc/cli.md.
"""

from __future__ import annotations

import enum
import re

from msgbus.exceptions import (DriverLoadFailure, InvalidTransportURL,
                               MessageUndeliverable, MessagingTimeout)


class UsageError(Exception):
    """A command's arguments are wrong (exit code 2); the message says how to write them."""


class Exit(enum.IntEnum):
    """Exit codes of the ``msgbus`` command."""

    OK = 0
    ERROR = 1
    USAGE = 2
    TIMEOUT = 3
    UNREACHABLE = 4
    INTERRUPTED = 130


# What drivers' messages say when the broker cannot be reached (drivers raise MessagingTimeout or
# MessageDeliveryFailure for it; there is no dedicated exception type to test for).
_UNREACHABLE = re.compile(r"could not (connect|consume)|failed after \d+ attempt|"
                          r"ConnectionRefused|ConnectionReset|Name or service not known|"
                          r"No route to host|Network is unreachable|nodename nor servname|"
                          r"gaierror|unreachable|ACCESS_REFUSED", re.I)


def _chain_text(exc: BaseException) -> str:
    parts = []
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        parts.append(f"{type(current).__name__}: {current}")
        current = current.__cause__ or current.__context__
    return "\n".join(parts)


def code_for(exc: BaseException) -> Exit:
    """The exit code for an error that ended a command."""
    if isinstance(exc, KeyboardInterrupt):
        return Exit.INTERRUPTED
    if isinstance(exc, UsageError):
        return Exit.USAGE
    if isinstance(exc, (DriverLoadFailure, InvalidTransportURL)):
        return Exit.ERROR  # the message says what to install or fix
    text = _chain_text(exc)
    if _UNREACHABLE.search(text) or isinstance(exc, ConnectionError):
        return Exit.UNREACHABLE
    if isinstance(exc, (MessagingTimeout, MessageUndeliverable)):  # no server to take it
        return Exit.TIMEOUT
    return Exit.ERROR
