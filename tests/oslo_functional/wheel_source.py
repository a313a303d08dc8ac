"""oslo.messaging's own test modules, read from its installed wheel and imported against msgbus.

Nothing of oslo.messaging's test code lives in this repository: each module is read at test
time from the installed ``oslo.messaging`` distribution (its file checked against the wheel's
RECORD hash, so an edited copy is refused), its ``import`` statements are rewritten by
:mod:`.rewrite`, and it is executed under the package name :data:`PORTED`. A finder on
``sys.meta_path`` serves those names, so the modules import one another as they do in oslo.
"""

from __future__ import annotations

import ast
import base64
import hashlib
import importlib.abc
import importlib.machinery
import importlib.metadata
import sys
import types
from pathlib import Path
from typing import Sequence

from .rewrite import PORTED, STAND_INS, rewrite_imports

__all__ = ["PORTED", "OsloWheelFinder", "import_ported", "wheel_file"]

_DIST = "oslo.messaging"
#: Packages whose ``__init__`` is not executed: oslo's ``tests/__init__.py`` calls
#: ``eventlet.monkey_patch()``, which would patch the whole pytest process (every other test
#: too); the ported tests run on plain threads, as msgbus's executors do.
_EMPTY_PACKAGES = ("", ".tests", ".tests.functional", ".tests.functional.notify", ".stand_ins")


def wheel_file(relpath: str) -> Path:
    """Path of ``relpath`` (e.g. ``oslo_messaging/tests/utils.py``) as the wheel installed it.

    Raises RuntimeError when the file is not in the distribution's RECORD or its content no
    longer has the recorded hash (the ported tests must be oslo's, unchanged).
    """
    dist = importlib.metadata.distribution(_DIST)
    for entry in dist.files or ():
        if str(entry) != relpath:
            continue
        path = Path(str(entry.locate()))
        if entry.hash is not None:
            digest = hashlib.new(entry.hash.mode, path.read_bytes()).digest()
            if base64.urlsafe_b64encode(digest).rstrip(b"=").decode() != entry.hash.value:
                raise RuntimeError(f"{path} differs from the {_DIST} {dist.version} wheel's "
                                   "RECORD: reinstall oslo.messaging")
        return path
    raise RuntimeError(f"{relpath} is not in the installed {_DIST} {dist.version}: "
                       "pip install 'oslo.messaging>=14.0'")


def _code_of(fullname: str) -> tuple[ast.Module, str] | None:
    """(module tree, file name) for a ported or stand-in module name, None if not ours."""
    if fullname in STAND_INS:
        path = Path(__file__).with_name(STAND_INS[fullname])
        return ast.parse(path.read_text(), str(path)), str(path)
    if not fullname.startswith(PORTED + "."):
        return None
    relpath = "oslo_messaging/" + fullname[len(PORTED) + 1:].replace(".", "/") + ".py"
    path = wheel_file(relpath)
    return rewrite_imports(path.read_text(), str(path)), str(path)


class OsloWheelFinder(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Finds and loads the ported package, its modules and the stand-ins (see module doc)."""

    def find_spec(self, fullname: str, path: Sequence[str] | None = None,
                  target: types.ModuleType | None = None) -> importlib.machinery.ModuleSpec | None:
        if fullname in {PORTED + suffix for suffix in _EMPTY_PACKAGES}:
            return importlib.machinery.ModuleSpec(fullname, self, is_package=True)
        if fullname in STAND_INS or fullname.startswith(PORTED + "."):
            return importlib.machinery.ModuleSpec(fullname, self)
        return None

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> None:
        return None  # the default module object

    def exec_module(self, module: types.ModuleType) -> None:
        if module.__spec__ is not None and module.__spec__.submodule_search_locations is not None:
            return  # one of _EMPTY_PACKAGES
        found = _code_of(module.__name__)
        if found is None:
            raise ImportError(f"no ported oslo.messaging module {module.__name__}")
        tree, filename = found
        module.__file__ = filename
        exec(compile(tree, filename, "exec"), module.__dict__)


def import_ported(name: str) -> types.ModuleType:
    """Import ``PORTED.<name>`` (e.g. ``tests.functional.test_functional``) from the wheel."""
    if not any(isinstance(finder, OsloWheelFinder) for finder in sys.meta_path):
        sys.meta_path.insert(0, OsloWheelFinder())
    return importlib.import_module(f"{PORTED}.{name}")
