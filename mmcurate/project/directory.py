"""The :class:`Project`: a project directory opened, with its rank and status; :func:`open_project`."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from mmcurate.groups import GroupParams
from mmcurate.groups.hooks import reject_boilerplate
from mmcurate.groups.project import compute_duplicates, duplicates_status, load_duplicates, split_group
from mmcurate.project.embedding import ProjectEmbeddings
from mmcurate.project_index import search_pairs
from mmcurate.results import Ranking
from mmcurate.rounds import rank_project, rounds_status


class Project(ProjectEmbeddings):
    """An mmcurate project directory.

    Examples
    --------
    Usage (not run as a doctest: it needs data of your own)::

        proj = open_project("my_project")
        proj.pairs.head()
        img = proj.image_embeddings()  # (N, D) float16; row i = pairs row i
    """

    # -- ranking -----------------------------------------------------------------------------
    def rank(self, strategy: str | Sequence[str] | None = None, *,
             strategies: Sequence[str] | None = None, k: int = 10, random_state: int = 0,
             options: dict[str, Any] | None = None, engine: str = "local",
             address: str | None = None) -> Ranking:
        """Score every pair under the current model: :func:`mmcurate.rounds.rank_project`.

        Parameters
        ----------
        strategy : str or list of str, optional
            A registered strategy name (``mmcurate strategies`` lists them), or several.
        strategies : list of str, optional
            The same as a list; give ``strategy`` or ``strategies``, not both. Neither:
            ``rank_project``'s default.
        k, random_state, options, engine, address
            As :func:`~mmcurate.rounds.rank_project`.

        Returns
        -------
        Ranking
            ``table``: ``pair_id``, ``score`` and one column per signal, row i = pair i;
            ``provenance``: model, head round, strategies and parameters.

        Examples
        --------
        Usage (not run as a doctest: it needs data of your own)::

            ranked = proj.rank(strategy="margin")
            ranked.table.nlargest(10, "score")
        """
        if strategy is not None and strategies is not None:
            raise ValueError(f"give strategy= or strategies=, not both; got strategy={strategy!r} and "
                             f"strategies={strategies!r}")
        names = [strategy] if isinstance(strategy, str) else strategy if strategy is not None else strategies
        if names is None:
            return rank_project(self, k=k, random_state=random_state, options=options, engine=engine,
                                address=address)
        return rank_project(self, list(names), k=k, random_state=random_state, options=options,
                            engine=engine, address=address)

    # -- search ------------------------------------------------------------------------------
    def search(self, *, text: str | None = None, image: str | os.PathLike | None = None,
               pair_id: str | None = None, k: int = 50, on: str = "image") -> pd.DataFrame:
        """The ``k`` pairs nearest to a text query, an example image or an example pair:
        :func:`mmcurate.project_index.search_pairs`.

        Examples
        --------
        Usage (not run as a doctest: it needs data of your own)::

            proj.search(text="a dog on a beach", k=20)
        """
        return search_pairs(self, text=text, image=image, pair_id=pair_id, k=k, on=on)

    # -- groups (mmcurate.groups) -------------------------------------------------------------
    def duplicates(self, *, random_state: int = 0, progress: bool = False, **options: Any) -> pd.DataFrame:
        """Find exact and near duplicates and boilerplate captions; writes ``duplicates.parquet``.

        ``options``: the fields of :class:`mmcurate.groups.GroupParams` (``image_threshold``,
        ``caption_threshold``, ``near``, ``k``, ``boilerplate_threshold``, ``verify`` (``auto``: near
        pairs of an image project confirmed by their pixels), ``pixel_threshold``, ``candidate_threshold``,
        ``boilerplate_text_overlap``, ...). Returns the table
        (``pair_id``, ``group_id``, ``kind``, ``similarity``):
        :func:`mmcurate.groups.project.compute_duplicates`.

        Examples
        --------
        Usage (not run as a doctest: it needs data of your own)::

            groups = proj.duplicates(image_threshold=0.9)
            groups.groupby("kind")["group_id"].nunique()
        """
        with self.lock():
            return compute_duplicates(self, params=GroupParams(**options), random_state=random_state,
                                      progress=progress).groups

    def groups(self) -> pd.DataFrame | None:
        """The groups ``duplicates`` found (recomputed when the vectors changed), or None."""
        with self.lock():
            return load_duplicates(self)

    def split_group(self, pair_ids: str | Sequence[str]) -> pd.DataFrame:
        """Take pairs out of their duplicate groups: :func:`mmcurate.groups.project.split_group`."""
        with self.lock():
            return split_group(self, pair_ids)

    def reject_boilerplate(self, group_id: int, *, reviewer: str | None = None) -> int:
        """Reject a boilerplate group in one action: :func:`mmcurate.groups.hooks.reject_boilerplate`."""
        with self.lock():
            return reject_boilerplate(self, group_id, reviewer=reviewer)

    # -- status -----------------------------------------------------------------------------
    def status(self) -> dict[str, Any]:
        """A summary as a JSON-ready dict (what `mmcurate status --json` prints)."""
        manifest = self.store.manifest() or {}
        spec = self.config.get("model") or {}
        out: dict[str, Any] = {
            "project": str(self.root),
            "kind": self.kind,
            "pairs": len(self.pairs),
            "rejected": len(self.rejects),
            "embedded": self.n_embedded,
            "embed_failures": _count_rows(self.embed_failures_path),
            "model": {
                "name": manifest.get("model") or spec.get("model"),
                "pretrained": manifest.get("pretrained") or spec.get("pretrained"),
                "weights_path": manifest.get("weights_path"),
                "weights_sha256": manifest.get("weights_sha256"),
                "kind": manifest.get("kind") or ("external" if self.kind == "external" else None),
                "dim": manifest.get("dim"),
            },
        }
        if self.has_ledger():
            rounds = rounds_status(self)
            out["model"].update(rounds.pop("model"))  # + which trained model ranks (in_use, latest, ...)
            out.update(rounds)
        groups = duplicates_status(self)
        if groups is not None:
            out["duplicates"] = groups
        return out


def _count_rows(path: Path) -> int:
    return len(pd.read_csv(path)) if path.is_file() else 0


def open_project(root: str | os.PathLike) -> Project:
    """Open an existing project directory.

    Examples
    --------
    Usage (not run as a doctest: it needs data of your own)::

        proj = open_project("my_project")
    """
    return Project(root)
