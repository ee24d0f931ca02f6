"""One active-learning round on a project: rank, select a batch, import decisions, train the head.

These functions read and write the project directory through its stages (``rank``, ``select``,
``labels``, ``head``) and return pandas objects, so the CLI and a notebook share them.

Labels: ``accept`` marks the pair aligned (y = 1); ``reject`` and ``fix`` mark the pair *as it
stands* misaligned (y = 0). A fix's corrected caption is additionally a new positive for the head
when the project has a model to embed it (image projects); imported-embedding projects cannot
embed new text, so there a fix counts only as a negative.

Modules: :mod:`~mmcurate.rounds.labelling` (decisions in, and as labelled rows),
:mod:`~mmcurate.rounds.model` (the model in use: :class:`Model`, the head applied to the vectors),
:mod:`~mmcurate.rounds.project_ranking` (:func:`rank_project`), :mod:`~mmcurate.rounds.selection`
(:func:`select_batch`: exploit + explore, balance), :mod:`~mmcurate.rounds.training`
(:func:`train_project_head`: fit, validate, keep only a model that does not lose),
:mod:`~mmcurate.rounds.status` (:func:`rounds_status`).
"""

from mmcurate.learn import DEFAULT_STRATEGY as DEFAULT_STRATEGY
from mmcurate.rounds.labelling import import_labels, labelled_arrays
from mmcurate.rounds.model import Model as Model
from mmcurate.rounds.model import apply_head, current_embeddings, load_latest_head, load_model
from mmcurate.rounds.project_ranking import rank_project
from mmcurate.rounds.selection import select_batch
from mmcurate.rounds.status import rounds_status
from mmcurate.rounds.training import train_project_head

__all__ = [
    "apply_head",
    "current_embeddings",
    "import_labels",
    "labelled_arrays",
    "load_latest_head",
    "load_model",
    "rank_project",
    "rounds_status",
    "select_batch",
    "train_project_head",
]
