"""The documentation builds with Sphinx, warnings as errors and every reference resolved.

CI runs only ``python -m pytest``, so this test is what holds ``doc/`` to a clean build: the
same command as ``tox -e docs``, failing with Sphinx's own output.
"""

from __future__ import annotations

import pathlib
import re
import subprocess
import sys
from importlib import metadata

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
DOC = ROOT / "doc"


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> pathlib.Path:
    """Build the HTML once for this module and return its folder; fail with Sphinx's output."""
    out = tmp_path_factory.mktemp("html")
    done = subprocess.run(
        [sys.executable, "-m", "sphinx", "-W", "--keep-going", "-n", "-E", "-q",
         "-b", "html", "-d", str(out / ".doctrees"), str(DOC), str(out)],
        cwd=ROOT, capture_output=True, text=True, timeout=240, stdin=subprocess.DEVNULL,
        check=False)
    output = done.stdout + done.stderr
    assert done.returncode == 0, f"sphinx-build failed:\n{output}"
    # oslo.config's show-options lets warnings in option help through even under -W
    assert "WARNING" not in output and "ERROR" not in output, output
    return out


def test_every_page_of_doc_is_built(built: pathlib.Path) -> None:
    pages = [p.relative_to(DOC).with_suffix(".html") for p in DOC.rglob("*.md")
             if "_build" not in p.parts]
    missing = [str(p) for p in pages if not (built / p).exists()]
    assert not missing, f"pages not built (add them to a toctree): {missing}"


def test_the_configuration_reference_lists_every_option(built: pathlib.Path) -> None:
    page = (built / "reference" / "configuration.html").read_text()
    anchors = set(re.findall(r'id="([^"]+)"', page))
    missing = []
    for entry in metadata.entry_points(group="oslo.config.opts"):
        if entry.name != "msgbus" and not entry.name.startswith("msgbus_"):
            continue
        for group, opts in entry.load()():
            for opt in opts:
                if f"{group or 'DEFAULT'}.{opt.dest}" not in anchors:
                    missing.append(f"{entry.name}: [{group or 'DEFAULT'}] {opt.dest}")
    assert not missing, f"options missing from reference/configuration: {missing}"


def test_the_api_reference_documents_the_public_names(built: pathlib.Path) -> None:
    import msgbus

    pages = (built / "reference" / "api.html").read_text()
    public = [name for name in msgbus.__all__ if name[0].isupper() or "_" in name]
    undocumented = [name for name in public
                    if not re.search(rf'id="msgbus\.[\w.]*\.{name}"', pages)]
    assert not undocumented, f"public names without an API entry: {undocumented}"
