"""``msgbus drivers``: the installed transport drivers, one per class (aliases together)."""

from __future__ import annotations

import argparse
from typing import Any

from msgbus.cli.exits import Exit
from msgbus.cli.output import show, to_json
from msgbus.driver import loader
from msgbus.driver.base import expand_capabilities
from msgbus.exceptions import DriverLoadFailure


def describe() -> list[dict[str, Any]]:
    """One entry per driver class: its schemes, class, distribution, version, capabilities
    (or the error that loading it gave)."""
    by_target: dict[str, dict[str, Any]] = {}
    for entry in loader.driver_entries():
        item = by_target.setdefault(entry.target, {
            "schemes": [], "driver": entry.target.replace(":", "."),
            "distribution": entry.distribution, "version": entry.version})
        item["schemes"].append(entry.scheme)
    for item in by_target.values():
        try:
            cls = loader.load_driver_class(item["schemes"][0])
        except DriverLoadFailure as exc:
            item["error"] = str(exc)
            continue
        item["api_version"] = cls.api_version
        item["capabilities"] = sorted(c.value for c in
                                      expand_capabilities(frozenset(cls.capabilities)))
    return sorted(by_target.values(), key=lambda i: i["schemes"][0])


def run(args: argparse.Namespace) -> int:
    """Print the drivers: a table for people, a JSON list with ``--json``."""
    drivers = describe()
    if args.json:
        print(to_json(drivers))
        return Exit.OK
    for item in drivers:
        schemes = ", ".join(f"{s}://" for s in item["schemes"])
        dist = f"{item['distribution']} {item['version']}" if item["distribution"] else "?"
        show(args, item, f"{schemes}\n  driver: {item['driver']}\n  distribution: {dist}")
        if "error" in item:
            print(f"  error: {item['error']}")
        else:
            print(f"  interface version: {item['api_version']}\n"
                  f"  capabilities: {', '.join(item['capabilities']) or 'none'}")
    return Exit.OK
