"""The layers, checked on the source: the read side and the audit do not reach into the
write side's adapters or routes (they share `services/infrastructure/` and
`services/http/` with it), and no import under `if TYPE_CHECKING:` hides a cycle (the
module it names must not import, at run time, the module that names it).

The import graph is read with `ast`, never by importing: module-level imports only (an
import inside a function runs later, once the modules are loaded). Importing `a.b.c` also
runs the packages `a` and `a.b` (a cycle can go through a package's `__init__`, as the
campaign engine's once did through the account's); `from a import b` names `a` and, when
it is a module, `a.b`.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

SERVICES = Path(__file__).resolve().parents[2] / "services"
WRITE_SIDE_ONLY = ("services.ledger.adapters", "services.ledger.api")
READ_SIDE = ("services.projections", "services.audit")

Sources = dict[str, tuple[str, bool]]  # module -> (source, is a package's __init__)
Graph = dict[str, tuple[set[str], set[str]]]  # module -> (run-time, under TYPE_CHECKING)


def _sources(root: Path) -> Sources:
    found: Sources = {}
    for path in sorted(root.rglob("*.py")):
        parts = path.relative_to(root.parent).with_suffix("").parts
        package = parts[-1] == "__init__"
        found[".".join(parts[:-1] if package else parts)] = (path.read_text(), package)
    return found


def _type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _loaded(node: ast.Import | ast.ImportFrom, module: str, sources: Sources) -> Iterator[str]:
    """The modules of `sources` that an import statement in `module` loads."""
    if isinstance(node, ast.Import):
        names = [alias.name for alias in node.names]
    else:
        base = node.module or ""
        if node.level:  # relative: from the importing module's package
            package = module if sources[module][1] else module.rpartition(".")[0]
            for _ in range(node.level - 1):
                package = package.rpartition(".")[0]
            base = f"{package}.{base}" if base else package
        names = [base] + [f"{base}.{alias.name}" for alias in node.names]
    own_packages = {module.rsplit(".", i)[0] for i in range(module.count(".") + 1)}
    for name in names:
        parts = name.split(".")
        for i in range(1, len(parts) + 1):
            prefix = ".".join(parts[:i])
            # The importer's own packages are already being imported when it runs.
            if prefix in sources and (prefix == name or prefix not in own_packages):
                yield prefix


def _visit(
    nodes: list[ast.stmt], into: set[str], hidden: set[str], module: str, sources: Sources
) -> None:
    for node in nodes:
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            into.update(_loaded(node, module, sources))
        elif isinstance(node, ast.If):
            chosen = hidden if _type_checking(node.test) else into
            _visit(node.body, chosen, hidden, module, sources)
            _visit(node.orelse, into, hidden, module, sources)
        elif isinstance(node, ast.Try):
            blocks = [node.body, node.orelse, node.finalbody, *(h.body for h in node.handlers)]
            for block in blocks:
                _visit(block, into, hidden, module, sources)
        elif isinstance(node, (ast.With, ast.ClassDef)):
            _visit(node.body, into, hidden, module, sources)


def graph(sources: Sources) -> Graph:
    result: Graph = {}
    for module, (source, _) in sources.items():
        runtime: set[str] = set()
        hidden: set[str] = set()
        _visit(ast.parse(source).body, runtime, hidden, module, sources)
        runtime.discard(module)
        result[module] = (runtime, hidden)
    return result


def reaches(imports: Graph, start: str, goal: str) -> list[str] | None:
    """A chain of run-time imports from `start` to `goal`, if there is one."""
    seen = {start}
    paths = [[start]]
    while paths:
        path = paths.pop()
        for step in sorted(imports[path[-1]][0]):
            if step == goal:
                return [*path, step]
            if step not in seen:
                seen.add(step)
                paths.append([*path, step])
    return None


def hidden_cycles(imports: Graph) -> list[str]:
    return [
        f"{module} -> {' -> '.join(chain)}"
        for module, (_, hidden) in imports.items()
        for imported in sorted(hidden)
        if (chain := reaches(imports, imported, module)) is not None
    ]


SERVICE_IMPORTS = graph(_sources(SERVICES))


def test_the_read_side_and_the_audit_import_nothing_of_the_write_side_adapters_or_routes() -> None:
    offenders = [
        f"{module} imports {imported}"
        for module, (runtime, hidden) in SERVICE_IMPORTS.items()
        if module.startswith(READ_SIDE)
        for imported in sorted(runtime | hidden)
        if imported.startswith(WRITE_SIDE_ONLY)
    ]
    assert offenders == []
    assert "services.infrastructure.sql" in SERVICE_IMPORTS["services.projections.writes"][0]


def test_no_import_under_type_checking_hides_a_cycle() -> None:
    assert hidden_cycles(SERVICE_IMPORTS) == []


def test_a_cycle_through_a_package_init_is_found() -> None:
    """`q` imports `p.b`, which runs `p/__init__`, which imports `p.a`: so `p.a` may not
    import `q` at run time, and hiding it under TYPE_CHECKING is found out."""
    sources: Sources = {
        "p": ("from p import a\n", True),
        "p.a": ("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    import q\n", False),
        "p.b": ("X = 1\n", False),
        "q": ("from p.b import X\n", False),
    }
    assert hidden_cycles(graph(sources)) == ["p.a -> q -> p -> p.a"]
    sources["q"] = ("def later():\n    from p.b import X\n", False)  # an import when called
    assert hidden_cycles(graph(sources)) == []
