"""The project's layout is spelled in one place: ``mmcurate/project/`` (:class:`ProjectLayout`).

Code elsewhere reaches a project file through ``proj.ledger_path``, ``proj.has_ledger()``,
``proj.heads_dir``, ... and never builds one from a root (``proj.root / "labels.sqlite"``,
``Path(proj.root, ...)``, ``proj.root.joinpath(...)``) or spells a project file's name.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import mmcurate
from mmcurate.project.layout import ProjectLayout

PACKAGE = Path(mmcurate.__file__).parent

# Folders that are not a project, whose own layout lives with the code that owns them. Keyed by
# (module, enclosing class or function; "*": the whole module); everything else outside
# mmcurate/project/ is checked.
ALLOWED = {
    # the embeddings folder's own files (ids/image/text.npy, manifest.json, parts/): the store owns
    # them; the project hands it ``embeddings_dir``
    ("embed/store.py", "EmbeddingStore"),
    # a clip-retrieval embedding folder (img_emb/, text_emb/, metadata/), read and written
    ("embed/importer.py", "_discover"),
    ("embed/importer.py", "write_embedding_folder"),
    # the tiny stand-in model's cache folder
    ("embed/tiny.py", "get_tiny_clip"),
    # an image reference under the image root (not a project path)
    ("viz.py", "_resolver"),
    # a generated world's folder (world.json, truth.csv), not a project
    ("simulate/worlds.py", "write_world"),
    # the stream journal's own files (stream/pending/rejects.csv: the batch's rejects until they
    # are appended to the project's)
    ("stream/add.py", "_write_pending"),
    ("stream/add.py", "_finish"),
    # image references joined to the image root: the data stage never sees a project
    ("data/images.py", "*"),
    ("data/validate.py", "*"),
}

# The file names of a project (each spelled once, in ProjectLayout). ``state.json`` is left out:
# a Hugging Face ``save_to_disk`` folder and the pool state's folder have their own.
_LAYOUT = ProjectLayout("/p")
PROJECT_FILE_NAMES = {path.name for path in (
    _LAYOUT.config_path, _LAYOUT.pairs_path, _LAYOUT.rejects_path, _LAYOUT.embed_failures_path,
    _LAYOUT.ledger_path, _LAYOUT.duplicates_path, _LAYOUT.duplicates_meta_path,
    _LAYOUT.duplicate_splits_path, _LAYOUT.legacy_stream_state_path)}


def _is_root(node: ast.AST) -> bool:
    """``root`` or ``<anything>.root``."""
    return (isinstance(node, ast.Name) and node.id == "root") or (
        isinstance(node, ast.Attribute) and node.attr == "root")


def _called_name(func: ast.AST) -> str:
    return func.id if isinstance(func, ast.Name) else func.attr if isinstance(func, ast.Attribute) else ""


def _docstrings(tree: ast.AST) -> set[int]:
    ids = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
            body = node.body
            if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
                ids.add(id(body[0].value))
    return ids


def project_path_sites(source: str, module: str) -> list[str]:
    """Where ``source`` (the module ``module``, relative to the package) builds a path from a
    root or spells a project file's name, outside the allowed (module, scope) pairs."""
    tree = ast.parse(source)
    docstrings = _docstrings(tree)
    found: list[str] = []

    def visit(node: ast.AST, scopes: tuple[str, ...]) -> None:
        if isinstance(node, (ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
            scopes = (*scopes, node.name)
        allowed = (module, "*") in ALLOWED or any((module, scope) in ALLOWED for scope in scopes)
        why = None
        if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Div) and _is_root(node.left):
            why = "a path built from a root"
        elif isinstance(node, ast.Call):
            func = node.func
            if isinstance(func, ast.Attribute) and func.attr == "joinpath" and _is_root(func.value):
                why = "root.joinpath(...)"
            elif (_called_name(func) in ("Path", "PurePath", "join") and len(node.args) > 1
                  and _is_root(node.args[0])):
                why = "Path(root, ...) / os.path.join(root, ...)"
        elif (isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docstrings
              and node.value.strip("/").split("/")[-1] in PROJECT_FILE_NAMES):
            why = f"the project file name {node.value!r}"
        if why and not allowed:
            found.append(f"mmcurate/{module}:{node.lineno} ({'.'.join(scopes) or 'module'}): {why}: "
                         f"{ast.unparse(node)[:80]}")
        for child in ast.iter_child_nodes(node):
            visit(child, scopes)

    visit(tree, ())
    return found


def _modules_outside_project() -> list[Path]:
    return [path for path in sorted(PACKAGE.rglob("*.py"))
            if path.relative_to(PACKAGE).parts[0] != "project"]


def test_no_project_path_is_built_outside_project():
    sites = []
    for path in _modules_outside_project():
        sites += project_path_sites(path.read_text(encoding="utf-8"), path.relative_to(PACKAGE).as_posix())
    assert not sites, ("project paths built outside mmcurate/project/ (use the ProjectLayout names on "
                       "the Project, e.g. proj.ledger_path, proj.has_ledger()):\n" + "\n".join(sites))


def test_every_allowed_scope_still_exists():
    """An allow-list entry whose function was renamed or removed would silently allow nothing
    (or hide a new site under an old name): each one must name a scope of its module."""
    for module, scope in sorted(ALLOWED):
        if scope == "*":
            assert (PACKAGE / module).is_file(), f"ALLOWED names {module}, which no longer exists"
            continue
        tree = ast.parse((PACKAGE / module).read_text(encoding="utf-8"))
        names = {node.name for node in ast.walk(tree)
                 if isinstance(node, (ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef))}
        assert scope in names, f"ALLOWED names {module}:{scope}, which no longer exists"


@pytest.mark.parametrize("code", [
    'def f(proj):\n    return (proj.root / "labels.sqlite").is_file()',
    'def f(proj):\n    return proj.root / "heads" / "x"',
    'def f(proj):\n    return Path(proj.root, "stream")',
    'def f(proj):\n    return os.path.join(proj.root, "x")',
    'def f(proj):\n    return proj.root.joinpath("index")',
    'def f(root):\n    return root / "anything"',
    'def f(project):\n    return project / "rejects.csv"',
    'NAMES = ("pairs.parquet", "embeddings/ids.npy")',
])
def test_the_check_finds_each_spelling(code):
    assert project_path_sites(code, "rounds/example.py"), code


@pytest.mark.parametrize("code", [
    'def f(proj):\n    return proj.ledger_path if proj.has_ledger() else proj.heads_dir',
    'def f(proj):\n    """Reads ``labels.sqlite``."""\n    return proj.state_path',
    'def f(proj, staging):\n    return staging / "embeddings"',
    'def f(proj):\n    raise ValueError(f"{proj.root} has no labels.sqlite yet")',
])
def test_the_check_lets_layout_names_through(code):
    assert project_path_sites(code, "rounds/example.py") == []


def test_the_allow_list_is_per_scope():
    """An allowed scope of a module does not allow the rest of that module."""
    code = ('class EmbeddingStore:\n    def f(self):\n        return self.root / "image.npy"\n'
            'def g(proj):\n    return proj.root / "labels.sqlite"')
    sites = project_path_sites(code, "embed/store.py")
    assert sites and all("(g)" in site for site in sites), sites
