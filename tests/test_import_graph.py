"""The package's import graph: no cycle between stages, no import hidden inside a function.

The graph is built with ``ast`` from every module of ``mmcurate``. A node is a stage: a subpackage
(``mmcurate.rank``) or a top-level module (``mmcurate.learn``). Every import counts, at module level
or inside a function, except those under ``if TYPE_CHECKING:`` (they never run). A cycle between
stages fails with the cycle and the file:line of each edge.

An import inside a function is allowed only for a heavy optional dependency (``HEAVY``: each costs
tens of milliseconds to seconds to import, and none is loaded by ``import mmcurate.cli``, whose
start-up every command pays), or for a module of ours that imports one at module level; the line
says which, e.g. ``import torch  # heavy: torch``. numpy, pandas, pyarrow and PIL are not heavy here:
``import mmcurate.cli`` loads them already. The entry points (``LAZY_ENTRY_POINTS``) may also
defer our own modules, marked ``# lazy: ...``: ``import mmcurate`` loads nothing (PEP 562
``__getattr__``), and the CLI (``mmcurate.cli`` and the two command modules whose parsers it builds)
loads a command's modules when that command runs, so that ``mmcurate --help`` and argument errors
stay quick (with every command's modules at the top, ``import mmcurate.cli`` would load 109 of our
modules instead of 31).
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "mmcurate"

#: third-party top-level names that may be imported inside a function (measured with
#: ``python -X importtime``, numpy/pandas/pyarrow already loaded: torch 1.9 s, torchvision 5.0 s,
#: open_clip 5.8 s, sklearn 1.4 s, matplotlib.pyplot 1.0 s, ray 0.5 s, flask 0.13 s, tqdm.auto
#: 0.05 s, faiss 0.03 s; safetensors needs torch; huggingface_hub, datasets, webdataset,
#: playwright and img2dataset are optional, not in the core dependencies).
HEAVY = frozenset({
    "torch", "torchvision", "open_clip", "safetensors", "ray", "faiss", "sklearn", "matplotlib",
    "flask", "werkzeug", "tqdm", "huggingface_hub", "datasets", "webdataset", "playwright",
    "img2dataset",
})

#: modules that may import our own modules inside functions, on a line marked ``# lazy: <why>``
LAZY_ENTRY_POINTS = frozenset({"mmcurate", "mmcurate.cli", "mmcurate.commands_groups",
                               "mmcurate.commands_maintenance"})

_HEAVY_COMMENT = re.compile(r"#\s*heavy:\s*([\w.]+)")
_LAZY_COMMENT = re.compile(r"#\s*lazy:\s*\S")


@dataclass(frozen=True)
class Import:
    module: str        # the importing module, e.g. "mmcurate.rank.context"
    target: str        # the imported module, e.g. "mmcurate.signals.metrics" or "torch"
    line: int
    in_function: bool
    comment: str | None  # the name after "# heavy:" on the statement's lines
    lazy: bool = False   # "# lazy: <why>" on the statement's lines


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


MODULES = {_module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _imports_of(module: str, path: Path) -> list[Import]:
    source = path.read_text()
    lines = source.splitlines()
    package = module if path.name == "__init__.py" else module.rsplit(".", 1)[0]
    found: list[Import] = []

    def targets(node: ast.Import | ast.ImportFrom) -> list[str]:
        if isinstance(node, ast.Import):
            return [alias.name for alias in node.names]
        if node.level:
            base = package.split(".")[: len(package.split(".")) - (node.level - 1)]
            base_name = ".".join([*base, *([node.module] if node.module else [])])
        else:
            base_name = node.module or ""
        return [f"{base_name}.{a.name}" if f"{base_name}.{a.name}" in MODULES else base_name
                for a in node.names]

    def visit(node: ast.AST, in_function: bool) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and _is_type_checking(child):
                for stmt in child.orelse:
                    visit_one(stmt, in_function)
                continue
            visit_one(child, in_function)

    def visit_one(node: ast.AST, in_function: bool) -> None:
        if isinstance(node, ast.Import | ast.ImportFrom):
            span = "\n".join(lines[node.lineno - 1: (node.end_lineno or node.lineno)])
            match = _HEAVY_COMMENT.search(span)
            for target in targets(node):
                found.append(Import(module, target, node.lineno, in_function,
                                    match.group(1) if match else None, bool(_LAZY_COMMENT.search(span))))
        inner = in_function or isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda)
        visit(node, inner)

    visit(ast.parse(source, filename=str(path)), False)
    return found


IMPORTS = [imp for name, path in MODULES.items() for imp in _imports_of(name, path)]


def _stage(module: str) -> str:
    return ".".join(module.split(".")[:2])


def _where(imp: Import) -> str:
    return f"{MODULES[imp.module].relative_to(PACKAGE.parent)}:{imp.line}"


def _stage_edges() -> dict[str, dict[str, Import]]:
    edges: dict[str, dict[str, Import]] = {}
    for imp in IMPORTS:
        if not imp.target.startswith("mmcurate"):
            continue
        a, b = _stage(imp.module), _stage(imp.target)
        if a != b:
            edges.setdefault(a, {}).setdefault(b, imp)
    return edges


def _find_cycle(edges: dict[str, dict[str, Import]]) -> list[Import] | None:
    """One cycle of the graph as its edges (depth-first search), or None."""
    done: set[str] = set()
    stack: list[str] = []      # nodes on the current path
    path: list[Import] = []    # path[i] goes from stack[i] to stack[i + 1]

    def dfs(node: str) -> list[Import] | None:
        stack.append(node)
        for nxt, imp in sorted(edges.get(node, {}).items()):
            if nxt in stack:
                return [*path[stack.index(nxt):], imp]
            if nxt not in done:
                path.append(imp)
                cycle = dfs(nxt)
                if cycle:
                    return cycle
                path.pop()
        stack.pop()
        done.add(node)
        return None

    for node in sorted(edges):
        if node not in done:
            cycle = dfs(node)
            if cycle:
                return cycle
    return None


def _heavy_at_module_level() -> dict[str, set[str]]:
    """For each module of ours, the HEAVY names its module-level imports load (transitively)."""
    direct: dict[str, set[str]] = {name: set() for name in MODULES}
    deps: dict[str, set[str]] = {name: set() for name in MODULES}
    for imp in IMPORTS:
        if imp.in_function:
            continue
        top = imp.target.split(".")[0]
        if top in HEAVY:
            direct[imp.module].add(top)
        elif imp.target in MODULES:
            deps[imp.module].add(imp.target)
    for name in MODULES:  # importing a.b.c runs a/__init__ and a/b/__init__ first
        parts = name.split(".")
        deps[name].update(".".join(parts[:i]) for i in range(1, len(parts)))
    heavy = {name: set(found) for name, found in direct.items()}
    changed = True
    while changed:
        changed = False
        for name in MODULES:
            for dep in deps[name]:
                if dep in heavy and not heavy[dep] <= heavy[name]:
                    heavy[name] |= heavy[dep]
                    changed = True
    return heavy


def test_the_graph_sees_every_kind_of_import():
    """The walk finds imports inside functions and skips those under TYPE_CHECKING."""
    assert len(MODULES) > 50
    assert any(imp.in_function and imp.target == "torch" for imp in IMPORTS)
    assert any(not imp.in_function and imp.target.startswith("mmcurate.") for imp in IMPORTS)
    example = ast.parse("if TYPE_CHECKING:\n    import x\n").body[0]
    assert isinstance(example, ast.If) and _is_type_checking(example)
    a_to_b = Import("mmcurate.a", "mmcurate.b", 1, False, None)
    b_to_a = Import("mmcurate.b", "mmcurate.a", 2, True, None)
    assert _find_cycle({"mmcurate.a": {"mmcurate.b": a_to_b},
                        "mmcurate.b": {"mmcurate.a": b_to_a}}) == [a_to_b, b_to_a]
    assert _find_cycle({"mmcurate.a": {"mmcurate.b": a_to_b}}) is None


def test_no_cycle_between_stages():
    cycle = _find_cycle(_stage_edges())
    assert cycle is None, "import cycle between stages:\n" + "\n".join(
        f"  {_stage(e.module)} -> {_stage(e.target)}  ({_where(e)}: {e.target})" for e in cycle)


def test_imports_inside_functions_are_heavy_and_say_so():
    heavy = _heavy_at_module_level()
    wrong: dict[str, None] = {}  # one line per statement, in order
    for imp in IMPORTS:
        if not imp.in_function:
            continue
        top = imp.target.split(".")[0]
        if imp.module in LAZY_ENTRY_POINTS and top == "mmcurate" and imp.lazy:
            continue
        allowed = {top} & HEAVY if top != "mmcurate" else heavy.get(imp.target, set())
        if not allowed:
            wrong[f"  {_where(imp)}: {imp.target} is not heavy: import it at module level"] = None
        elif imp.comment not in allowed:
            wrong[f"  {_where(imp)}: {imp.target} needs '# heavy: {sorted(allowed)[0]}' "
                  f"on its line (found {imp.comment!r})"] = None
    assert not wrong, f"{len(wrong)} imports inside functions:\n" + "\n".join(wrong)
