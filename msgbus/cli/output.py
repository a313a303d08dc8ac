"""How the ``msgbus`` command prints: text for people, or one JSON document per line (--json)."""

from __future__ import annotations

import json
import sys
from typing import Any, TextIO

from msgbus.cli.exits import UsageError


def to_json(value: Any) -> str:
    """One line of JSON; values JSON cannot hold are shown as their ``str()``."""
    return json.dumps(value, default=str, sort_keys=False)


def show(args: Any, data: dict[str, Any], text: str, stream: TextIO | None = None) -> None:
    """Print ``data`` as a JSON line with ``--json``, else ``text``."""
    out = stream or sys.stdout
    print(to_json(data) if getattr(args, "json", False) else text, file=out, flush=True)


def parse_pairs(pairs: list[str], what: str = "argument") -> dict[str, Any]:
    """``key=value`` words as a dict; a value is read as JSON when it parses (``n=3``,
    ``flag=true``, ``items=[1,2]``, ``s='"3"'``), else kept as the string."""
    result: dict[str, Any] = {}
    for pair in pairs:
        key, sep, text = pair.partition("=")
        if not sep or not key:
            raise UsageError(f"{what} {pair!r} is not key=value (for example a=1 or name=alice)")
        try:
            result[key] = json.loads(text)
        except ValueError:
            result[key] = text
    return result
