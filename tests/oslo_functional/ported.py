"""The test classes of oslo.messaging's functional suite, made once per msgbus driver.

Each driver's test module (``test_on_rabbit.py``...) calls :func:`test_classes`, which returns
one subclass per oslo test class (and per ``testscenarios`` scenario, which oslo expands with
``load_tests``, a protocol pytest does not run). The subclasses add nothing but their module,
so pytest reports ``test_on_rabbit.py::CallTestCase::test_timeout``; the environment oslo's
tests read their URLs from is set per driver by ``conftest.py``.
"""

from __future__ import annotations

import ast
import unittest
from typing import Any

from .exclusions import EXCLUDED_MODULES
from .wheel_source import import_ported, wheel_file

__all__ = ["ORIGIN", "OUTCOME", "PORTED_MODULES", "RELAY", "SIDE_BY_SIDE", "test_classes"]

#: oslo.messaging 18.3.1's functional test modules (under oslo_messaging/).
PORTED_MODULES = ("tests.functional.test_functional", "tests.functional.notify.test_logger",
                  "tests.functional.test_rabbitmq")

#: Attribute naming a generated class's origin: (ported module, oslo class name).
ORIGIN = "_oslo_origin"
#: oslo test classes run side by side in worker processes (see :mod:`.subprocess_runs`).
SIDE_BY_SIDE = frozenset({"LoggingNotificationHandlerTestCase"})
#: Class attribute marking a relay of a worker's run.
RELAY = "_oslo_relay"
#: Attribute conftest sets on a relay's instance: a callable returning its worker's outcome.
OUTCOME = "_oslo_outcome"


def _is_test_class(obj: Any, module_name: str) -> bool:
    return (isinstance(obj, type) and issubclass(obj, unittest.TestCase)
            and obj.__module__ == module_name
            and any(name.startswith("test") for name in dir(obj)))


def _placeholders(module: str) -> dict[str, type]:
    """Not-run stand-ins for the tests of an excluded module, named from its source's AST."""
    path = wheel_file("oslo_messaging/" + module.replace(".", "/") + ".py")
    classes: dict[str, type] = {}
    for node in ast.parse(path.read_text()).body:
        if not isinstance(node, ast.ClassDef):
            continue
        tests = [f.name for f in node.body
                 if isinstance(f, ast.FunctionDef) and f.name.startswith("test")]
        if tests:
            def not_run(self: unittest.TestCase) -> None:
                raise AssertionError(EXCLUDED_MODULES[module])
            classes[node.name] = type(node.name, (unittest.TestCase,),
                                      {name: not_run for name in tests})
    return classes


def _origin_classes(module: str) -> dict[str, tuple[type, dict[str, Any]]]:
    """name -> (oslo class, scenario attributes) for every test class of ``module``."""
    if module in EXCLUDED_MODULES:
        return {name: (cls, {}) for name, cls in _placeholders(module).items()}
    loaded = import_ported(module)
    found: dict[str, tuple[type, dict[str, Any]]] = {}
    for name, obj in vars(loaded).items():
        if not _is_test_class(obj, loaded.__name__):
            continue
        scenarios = getattr(obj, "scenarios", None)
        if not scenarios:
            found[name] = (obj, {})
            continue
        for scenario, attrs in scenarios:
            found[f"{name}_{scenario.replace(',', '_')}"] = (obj, dict(attrs))
    return found


def _relay(self: unittest.TestCase) -> None:
    """Report the outcome of this test's run in its worker process."""
    outcome = getattr(self, OUTCOME)()
    if outcome["outcome"] == "skipped":
        self.skipTest(outcome["detail"])
    if outcome["outcome"] != "passed":
        raise AssertionError("oslo's test failed in its worker process:\n" + outcome["detail"])


def test_classes(driver_module: str, proxies: bool = True) -> dict[str, type]:
    """One subclass per oslo test class (and scenario), for the module ``driver_module``.

    With ``proxies``, the classes in :data:`SIDE_BY_SIDE` are relays of a worker process's run
    (same names and test methods); without, every class is oslo's own (what a worker runs).
    """
    made: dict[str, type] = {}
    for module in PORTED_MODULES:
        for name, (cls, attrs) in _origin_classes(module).items():
            body = {"__module__": driver_module, "__qualname__": name,
                    ORIGIN: (module, cls.__name__), **attrs}
            if proxies and cls.__name__ in SIDE_BY_SIDE:
                tests = [m for m in dir(cls) if m.startswith("test")]
                made[name] = type(name, (unittest.TestCase,),
                                  {**body, RELAY: True, **{m: _relay for m in tests}})
            else:
                made[name] = type(name, (cls,), body)
    return made


test_classes.__test__ = False  # type: ignore[attr-defined]  # not a test for pytest
