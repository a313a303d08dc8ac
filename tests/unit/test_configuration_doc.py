"""doc/configuration.md lists every option of the core and of each installed driver."""

import pathlib
import re

from importlib import metadata

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]


def _option_groups() -> list[tuple[str, list]]:
    """Every (group, options) that ``oslo-config-generator`` sees for msgbus and its drivers
    (only msgbus's entry points are loaded: importing others' would change their modules)."""
    groups = []
    for entry in metadata.entry_points(group="oslo.config.opts"):
        if entry.name.startswith("msgbus"):
            groups.extend(entry.load()())
    return groups


def _documented() -> dict[str, str]:
    """Option name -> its default as the page shows it."""
    text = (ROOT / "doc" / "configuration.md").read_text()
    return dict(re.findall(r"^\| `(\w+)` \| ([^|]*?) \|", text, re.M))


def _shown(default: object) -> str:
    if isinstance(default, list):
        return ",".join(default) or "(empty)"
    return "(unset)" if default in (None, "") else str(default)


def test_the_core_and_both_amqp_drivers_are_covered() -> None:
    names = {group for group, _ in _option_groups()}
    assert {None, "msgbus_notifications", "msgbus_rabbit", "msgbus_pika"} <= names


@pytest.mark.parametrize("group, opts", _option_groups(), ids=lambda v: str(v)[:20])
def test_every_option_is_documented_with_its_default(group: str, opts: list) -> None:
    documented = _documented()
    for opt in opts:
        assert opt.dest in documented, f"[{group}] {opt.dest} is missing from configuration.md"
        assert documented[opt.dest] == _shown(opt.default), \
            f"[{group}] {opt.dest}: the page says {documented[opt.dest]!r}"
