"""The one change made to oslo.messaging's test modules: their imports name msgbus.

``import oslo_messaging`` becomes ``import msgbus as oslo_messaging`` (so the code, which says
``oslo_messaging.Target`` or ``oslo_messaging.rpc.client.RemoteError``, runs unchanged against
msgbus); ``from oslo_messaging.X import Y`` becomes ``from msgbus.X import Y``. oslo's own test
helpers (``oslo_messaging.tests...``) come from the wheel too, under :data:`PORTED`; the only
private module they import is mapped to a stand-in (:data:`PRIVATE_MODULES`). Everything else
(statements, literals, assertions) is left as written: the AST is rewritten only at import nodes.
"""

from __future__ import annotations

import ast

__all__ = ["PORTED", "PRIVATE_MODULES", "STAND_INS", "rewrite_imports", "target_module"]

#: Package name under which oslo.messaging's test modules are executed.
PORTED = "oslo_ported"

#: oslo.messaging's private modules the shared test helpers import, and what replaces each.
PRIVATE_MODULES = {
    # SkipIfNoTransportURL.setUp registers Kafka's options for every test; msgbus has no Kafka
    # driver, and the stand-in registers nothing for other URLs (what oslo's does for them too).
    "oslo_messaging._drivers.kafka_driver.kafka_options": PORTED + ".stand_ins.kafka_options",
}

#: Stand-in module name -> its file in this folder.
STAND_INS = {PORTED + ".stand_ins.kafka_options": "kafka_options_stand_in.py"}


def target_module(name: str) -> str:
    """The module msgbus's port imports where oslo's test code imports ``name``."""
    if name in PRIVATE_MODULES:
        return PRIVATE_MODULES[name]
    if name == "oslo_messaging.tests" or name.startswith("oslo_messaging.tests."):
        return PORTED + name[len("oslo_messaging"):]
    if name.startswith("oslo_messaging._"):
        raise ImportError(f"{name} is private to oslo.messaging and has no stand-in: "
                          "exclude the test that needs it (exclusions.py)")
    if name == "oslo_messaging" or name.startswith("oslo_messaging."):
        return "msgbus" + name[len("oslo_messaging"):]
    return name


class _ImportRewriter(ast.NodeTransformer):
    def visit_Import(self, node: ast.Import) -> ast.Import:  # noqa: N802 - ast's API
        names = []
        for alias in node.names:
            new = target_module(alias.name)
            if new == alias.name:
                names.append(alias)
            elif alias.asname is None and "." not in alias.name:
                names.append(ast.alias(name=new, asname=alias.name))  # keeps the bound name
            elif alias.asname is None:
                raise ImportError(f"cannot keep the name bound by 'import {alias.name}'")
            else:
                names.append(ast.alias(name=new, asname=alias.asname))
        return ast.copy_location(ast.Import(names=names), node)

    def visit_ImportFrom(self, node: ast.ImportFrom) -> ast.ImportFrom:  # noqa: N802
        if node.level or node.module is None:
            return node
        for alias in node.names:  # 'from oslo_messaging._drivers... import x' style
            full = f"{node.module}.{alias.name}"
            if full in PRIVATE_MODULES:
                parent, _, leaf = PRIVATE_MODULES[full].rpartition(".")
                if len(node.names) != 1:
                    raise ImportError(f"split 'from {node.module} import ...' by hand")
                return ast.copy_location(ast.ImportFrom(
                    module=parent, names=[ast.alias(name=leaf, asname=alias.asname or alias.name)],
                    level=0), node)
        return ast.copy_location(
            ast.ImportFrom(module=target_module(node.module), names=node.names, level=0), node)


def rewrite_imports(source: str, filename: str) -> ast.Module:
    """``source`` parsed, every oslo_messaging import pointed at msgbus (see module doc).

    The tree keeps the wheel file's line numbers, so tracebacks show oslo's lines.
    """
    tree = _ImportRewriter().visit(ast.parse(source, filename))
    return ast.fix_missing_locations(tree)
