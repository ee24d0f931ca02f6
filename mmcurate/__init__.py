"""mmcurate: curate image-caption datasets with CLIP embeddings and active learning.

Everything a notebook needs is reachable from here, imported on first use (``import mmcurate`` stays
light: no torch, faiss or open_clip until a verb needs them)::

    import mmcurate

    proj = mmcurate.create_project("scenes", pairs="pairs.csv", model=mmcurate.ModelSpec(...))
    proj.embed()
    ranking = mmcurate.rank_project(proj, ["disagreement"])   # a Ranking: .table, .provenance
    batch = mmcurate.select_batch(proj, budget=40)            # a Batch: .round, .table
    mmcurate.import_labels(proj, "decisions.csv", round_id=batch.round)
    trained = mmcurate.train_project_head(proj)               # a TrainResult: .accepted, .reason
    exported = mmcurate.export_curated(proj, "curated/")      # an ExportResult: counts and paths
    print(ranking, batch, trained, exported, sep="\\n")        # what the CLI prints
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

# name -> module that defines it; imported on first access (PEP 562)
_LAZY = {
    # projects
    "open_project": "mmcurate.project",
    "create_project": "mmcurate.project",
    "Project": "mmcurate.project",
    "ModelSpec": "mmcurate.embed.model",
    # the verbs of the loop
    "rank_project": "mmcurate.rounds",
    "select_batch": "mmcurate.rounds",
    "import_labels": "mmcurate.rounds",
    "train_project_head": "mmcurate.rounds",
    "export_curated": "mmcurate.export",
    "add_pairs": "mmcurate.stream",
    # what they return
    "Ranking": "mmcurate.results",
    "Batch": "mmcurate.results",
    "TrainResult": "mmcurate.results",
    "ExportResult": "mmcurate.results",
    "AddResult": "mmcurate.results",
    # strategies, selectors and input formats: the registries and the doors for your own
    "STRATEGIES": "mmcurate.rank",
    "SELECTORS": "mmcurate.select",
    "register_strategy": "mmcurate.rank",
    "register_selector": "mmcurate.select",
    "register_format": "mmcurate.data",
}
_SUBMODULES = ("viz",)

__all__ = [  # spelled out for linters; the same names as _LAZY and _SUBMODULES (tests/test_results.py)
    "SELECTORS",
    "STRATEGIES",
    "AddResult",
    "Batch",
    "ExportResult",
    "ModelSpec",
    "Project",
    "Ranking",
    "TrainResult",
    "__version__",
    "add_pairs",
    "create_project",
    "export_curated",
    "import_labels",
    "open_project",
    "rank_project",
    "register_format",
    "register_selector",
    "register_strategy",
    "select_batch",
    "train_project_head",
    "viz",
]

if TYPE_CHECKING:  # what the lazy names are, for type checkers and editors
    from mmcurate import viz
    from mmcurate.data import register_format
    from mmcurate.embed.model import ModelSpec
    from mmcurate.export import export_curated
    from mmcurate.project import Project, create_project, open_project
    from mmcurate.rank import STRATEGIES, register_strategy
    from mmcurate.results import AddResult, Batch, ExportResult, Ranking, TrainResult
    from mmcurate.rounds import import_labels, rank_project, select_batch, train_project_head
    from mmcurate.select import SELECTORS, register_selector
    from mmcurate.stream import add_pairs


def __getattr__(name: str) -> Any:  # lazy: keep `import mmcurate` light (no torch, no faiss)
    if name in _LAZY:
        value = getattr(import_module(_LAZY[name]), name)
    elif name in _SUBMODULES:
        value = import_module(f"mmcurate.{name}")
    else:
        raise AttributeError(f"module 'mmcurate' has no attribute {name!r}")
    globals()[name] = value  # once: later lookups skip this function
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
