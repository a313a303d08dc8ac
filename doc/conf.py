"""Sphinx configuration for msgbus's documentation.

Build: ``tox -e docs`` or ``sphinx-build -W --keep-going -n -b html doc doc/_build/html``;
``tests/unit/test_docs_build.py`` runs the same build, so a warning fails the tests too.
"""

from __future__ import annotations

import importlib
import importlib.util
from importlib import metadata

from sphinx.util.nodes import make_refnode

project = "msgbus"
author = "the msgbus authors"
copyright = "the msgbus authors"
release = metadata.version("msgbus")
version = release

extensions = [
    "myst_parser",
    "sphinx.ext.autodoc",
    "sphinx.ext.viewcode",
    "oslo_config.sphinxext",
]

source_suffix = {".rst": "restructuredtext", ".md": "markdown"}
root_doc = "index"
exclude_patterns = ["_build", "msgbus.conf.sample"]

# Markdown: heading anchors so that links such as drivers.md#the-conformance-suite resolve.
myst_heading_anchors = 3
myst_enable_extensions = ["deflist"]

# API reference: signatures show the annotations; members in source order.
autodoc_member_order = "bysource"
autodoc_typehints = "signature"
autodoc_preserve_defaults = True
# ignore-module-all: a module's __all__ may re-export names defined elsewhere; each name is
# documented once, in the module that defines it.
autodoc_default_options = {"show-inheritance": True, "ignore-module-all": True}
# docstrings of overridden methods of other projects (fixtures.Fixture.cleanUp, ...) are theirs
autodoc_inherit_docstrings = False

# configuration.md's tables sit under level-3 headings on purpose (the page's own layout)
suppress_warnings = ["myst.header",
                     # oslo.config's domain has no resolve_any_xref: myst says so for every link
                     "myst.domains"]

# Every cross-reference must resolve (-n), except names of other projects: without network
# access there is no intersphinx inventory for the standard library, oslo.config or pytest.
nitpicky = True
nitpick_ignore_regex = [
    (r"py:.*", r"(cfg|oslo_config|concurrent|threading|asyncio|logging|enum|abc|typing|"
               r"collections|socket|ssl|pytest|_pytest|fixtures|types|subprocess|pathlib|"
               r"contextlib|datetime|uuid|queue|time)(\..*)?"),
    # internals named in signatures: private helpers and type variables
    (r"py:class", r"(.*\._\w+|msgbus\..*\.[A-Z]|ReplyWaiter|ReplyRetrier|SendPool|"
                  r"msgbus\.rpc\.reply_waiter\..*|msgbus\.rpc\.reply_retry\..*|"
                  r"msgbus\.executors\.send_pool\..*)"),
    (r"py:class", r"(Any|Callable|Iterable|Iterator|Mapping|Sequence|Protocol|ClassVar|Self|"
                  r"V|T|P|R|TypeVar|NoneType|ellipsis|Enum|str|int|float|bool|bytes|dict|list|"
                  r"tuple|set|frozenset|object|type|Exception|BaseException|ValueError|"
                  r"TypeError|AttributeError|RuntimeError|LookupError|KeyError|OSError)"),
    (r"py:obj", r"(None|True|False)"),
    (r"py:attr", r"(host|port)"),  # attributes that TcpProxy's docstring names
]

html_theme = "alabaster"
html_title = f"msgbus {release}"
html_theme_options = {"description": "RPC and notifications over message brokers, "
                                     "with oslo.messaging's API"}


def _option_namespaces() -> list[str]:
    """The ``oslo.config.opts`` namespaces of msgbus and of its installed drivers."""
    names = {entry.name for entry in metadata.entry_points(group="oslo.config.opts")
             if entry.name == "msgbus" or entry.name.startswith("msgbus_")}
    return sorted(names, key=lambda name: (name != "msgbus", name))


def _add_option_tables(app, docname: str, source: list[str]) -> None:  # noqa: ANN001
    """Give the configuration reference one options section per installed namespace."""
    if docname != "reference/configuration":
        return
    for namespace in _option_namespaces():
        title = f"Namespace ``{namespace}``"
        source[0] += (f"\n{title}\n{'-' * len(title)}\n\n"
                      f".. show-options::\n\n   {namespace}\n")


def _resolve_short_names(app, env, node, contnode):  # noqa: ANN001
    """Resolve a short Python name in a docstring (``Driver``, ``wait``) to the one documented
    object whose dotted name ends with it, as a reader would; ambiguous names stay unresolved."""
    if node.get("refdomain") != "py":
        return None
    target = node["reftarget"].lstrip("~.")
    if "." in target and not target.startswith("msgbus."):
        return None
    if node.get("reftype") == "mod":  # a real module without a page of its own: shown as text
        try:
            return contnode if importlib.util.find_spec(target) is not None else None
        except ImportError:
            return None
    suffix = "." + target.rsplit(".", 1)[-1] if target.startswith("msgbus.") else "." + target
    domain = env.get_domain("py")
    found = [(name, obj) for name, obj in domain.objects.items()
             if name.endswith(suffix) and not obj.aliased]
    context = node.get("py:class") or node.get("py:module") or ""
    if len(found) > 1 and context:  # prefer the object beside the reference
        near = [(name, obj) for name, obj in found if name.startswith(context + ".")]
        found = near or found
    if len(found) != 1:
        return contnode if _is_member_of_context(node, target) else None
    name, obj = found[0]
    return make_refnode(app.builder, node["refdoc"], obj.docname, obj.node_id, contnode, name)


def _is_member_of_context(node, target: str) -> bool:  # noqa: ANN001
    """Whether ``target`` names a real (inherited or undocumented) member of the class whose
    docstring mentions it: shown as text, not a link, rather than failing the build."""
    module, cls = node.get("py:module"), node.get("py:class")
    if not module or not cls or "." in target:
        return False
    try:
        owner = importlib.import_module(module)
        for part in cls.split("."):
            owner = getattr(owner, part)
    except (ImportError, AttributeError):
        return False
    return hasattr(owner, target)


def setup(app) -> dict[str, bool]:  # noqa: ANN001
    from oslo_config.sphinxext import ConfigDomain

    class TolerantConfigDomain(ConfigDomain):
        """oslo.config's domain raises KeyError for a name it does not know (myst asks every
        domain about each unresolved Markdown link): make that "not found", so Sphinx warns
        with the link's place instead of crashing."""

        def resolve_xref(self, *args, **kwargs):  # noqa: ANN002, ANN003, ANN201
            try:
                return super().resolve_xref(*args, **kwargs)
            except KeyError:
                return None

    app.add_domain(TolerantConfigDomain, override=True)
    app.connect("source-read", _add_option_tables)
    app.connect("missing-reference", _resolve_short_names)
    return {"parallel_read_safe": True}
