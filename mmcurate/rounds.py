"""One active-learning round on a project: rank, select a batch, import decisions, train the head.

These functions read and write the project directory through its stages (``rank``, ``select``,
``labels``, ``head``) and return pandas objects, so the CLI and a notebook share them.

Labels: ``accept`` marks the pair aligned (y = 1); ``reject`` and ``fix`` mark the pair *as it
stands* misaligned (y = 0). A fix's corrected caption is additionally a new positive for the head
when the project has a model to embed it (image projects); imported-embedding projects cannot
embed new text, so there a fix counts only as a negative.
"""

from __future__ import annotations

import time
from collections.abc import Collection
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd

from mmcurate._fileio import atomic_write_json
from mmcurate.exceptions import NotEmbeddedError

__all__ = [
    "apply_head",
    "current_embeddings",
    "import_labels",
    "labelled_arrays",
    "load_latest_head",
    "rank_project",
    "rounds_status",
    "select_batch",
    "train_project_head",
]


def labelled_arrays(proj) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64], pd.DataFrame]:
    """Row indices of decided pairs, their labels (1 aligned, 0 not) and the fix rows."""
    decisions = proj.ledger.decisions()
    if decisions.empty:
        return np.zeros(0, np.int64), np.zeros(0, np.int64), decisions
    row_of = pd.Series(np.arange(len(proj.pairs)), index=proj.pairs["pair_id"].to_numpy())
    decisions = decisions[decisions["pair_id"].isin(row_of.index)]
    rows = row_of.loc[decisions["pair_id"]].to_numpy(np.int64)
    y = (decisions["decision"].to_numpy() == "accept").astype(np.int64)
    is_fix = decisions["decision"].to_numpy() == "fix"
    fixes = decisions[is_fix].assign(row=rows[is_fix])
    return rows, y, fixes


def _head_path(proj, head_round: int) -> Path:
    return proj.root / "heads" / f"head-{head_round:04d}.safetensors"


def load_latest_head(proj):
    """The latest trained projection head and its round, or ``(None, None)`` before any."""
    latest = proj.ledger.latest_head() if (proj.root / "labels.sqlite").is_file() else None
    if not latest:
        return None, None
    from mmcurate.head import ProjectionHead

    checkpoint = Path(latest["checkpoint"])
    head = ProjectionHead.load(checkpoint if checkpoint.is_absolute() else proj.root / checkpoint)
    return head, int(latest["head_round"])


def current_embeddings(proj) -> tuple[np.ndarray, np.ndarray, int | None]:
    """Image and caption vectors after the latest trained head (raw CLIP vectors before any).

    Above ``rank.APPROXIMATE_FROM`` pairs the adapted vectors are lazy views
    (:class:`mmcurate.head.TransformedView`) computed chunk by chunk when read.
    """
    head, head_round = load_latest_head(proj)
    return (*apply_head(head, proj.image_embeddings(), proj.text_embeddings()), head_round)


def apply_head(head, image, text):
    """``(image, text)`` adapted by ``head`` (unchanged when None); lazy views above
    ``rank.APPROXIMATE_FROM`` pairs, so large pools never get a float32 copy."""
    from mmcurate.rank import APPROXIMATE_FROM

    if head is None:
        return image, text
    if len(image) > APPROXIMATE_FROM:
        return head.view(image, "image"), head.view(text, "text")
    return head.transform_images(image), head.transform_texts(text)


def _provenance(proj, head_round: int | None, **params: Any) -> dict[str, Any]:
    manifest = proj.store.manifest() or {}
    return {"model": manifest.get("model"), "pretrained": manifest.get("pretrained"),
            "weights_sha256": manifest.get("weights_sha256"), "embeddings": manifest.get("kind"),
            "head_round": head_round, **params,
            "created": time.strftime("%FT%TZ", time.gmtime())}


def rank_project(proj, strategies: list[str] | tuple[str, ...] = ("disagreement",), *, k: int = 10,
                 random_state: int = 0, options: dict[str, Any] | None = None, engine: str = "local",
                 address: str | None = None) -> pd.DataFrame:
    """Score every pair; a DataFrame with ``pair_id``, ``score`` and one column per signal.

    ``df.attrs["provenance"]`` records model, pretrained tag, head round, strategies and parameters.
    ``engine="ray"`` scores with Ray tasks over shards (:mod:`mmcurate.engine.ray_score`; a local
    Ray, or the cluster at ``address``); it always uses the approximate neighbour search.

    Examples
    --------
    >>> ranked = rank_project(proj, ["margin", "disagreement"])  # doctest: +SKIP
    >>> ranked.sort_values("score", ascending=False).head()  # doctest: +SKIP
    """
    from mmcurate.rank import compute_ranking

    if engine not in ("local", "ray"):
        raise ValueError(f"engine must be 'local' or 'ray', got {engine!r}")
    rows, y, _ = labelled_arrays(proj) if (proj.root / "labels.sqlite").is_file() else (
        np.zeros(0, np.int64), np.zeros(0, np.int64), None)
    categories = proj.pairs["category"].to_numpy() if "category" in proj.pairs.columns else None
    if engine == "ray":
        table, head_round = _rank_ray(proj, strategies, rows, y, k=k, random_state=random_state,
                                      options=options, address=address)
        if categories is not None:
            table["category"] = categories
    else:
        image, text, head_round = current_embeddings(proj)
        table = compute_ranking(image, text, strategies=tuple(strategies), indices_labeled=rows,
                                labels=y, k=k, random_state=random_state, categories=categories,
                                options=options)
    table.insert(0, "pair_id", proj.pairs["pair_id"].to_numpy())
    table.attrs["provenance"] = _provenance(proj, head_round, strategies=list(strategies), k=k,
                                            random_state=random_state, n_labels=len(rows),
                                            options=options or {}, engine=engine)
    _save_state(proj, table)
    return table


def _rank_ray(proj, strategies, rows, y, *, k, random_state, options, address):
    from mmcurate.engine.ray_score import rank_with_ray

    ids = proj.pairs["pair_id"].tolist()
    if not proj.store.is_compact_for(ids):
        with proj.lock():
            proj.store.compact(ids)
    latest = proj.ledger.latest_head() if (proj.root / "labels.sqlite").is_file() else None
    head = None
    if latest:
        checkpoint = Path(latest["checkpoint"])
        head = checkpoint if checkpoint.is_absolute() else proj.root / checkpoint
    table = rank_with_ray(proj.store.root / "image.npy", proj.store.root / "text.npy",
                          strategies=tuple(strategies), indices_labeled=rows, labels=y, k=k,
                          random_state=random_state, head=head, address=address, options=options)
    return table, (int(latest["head_round"]) if latest else None)


def _save_state(proj, table: pd.DataFrame) -> None:
    if "p_aligned" in table.columns:
        atomic_write_json(proj.root / "state.json", {
            "estimated_noise_rate": float(1.0 - np.mean(table["p_aligned"])),
            "from": table.attrs.get("provenance", {}),
        })


def select_batch(proj, *, budget: int, strategy: str = "disagreement", diversity: str = "none",
                 k: int = 10, random_state: int = 0, exclude: Collection[str] | None = None,
                 ranked: pd.DataFrame | None = None, balance: str | None = None,
                 balance_mode: str = "uniform") -> tuple[int, pd.DataFrame]:
    """Rank, pick ``budget`` pairs never labelled or queued before, and save them as a round.

    ``exclude``: pair_ids never to select (e.g. a held-out evaluation set). ``ranked``: a ranking
    :func:`rank_project` just made for ``strategy`` on the current labels and head (saves ranking
    twice when the caller also needs the scores); ranked here when None. ``balance="categories"``:
    every value of the pairs' ``category`` column gets a share of the batch (``balance_mode``
    ``uniform`` or ``proportional``, floor 1; :func:`mmcurate.select.select_balanced`), each share
    chosen by ``diversity``.

    Returns the round number and the batch (``pair_id``, ``score``, ``reason``, caption, image).
    """
    from mmcurate.rank import selection_vectors

    with proj.lock():
        selector = _batch_selector(proj, diversity, balance, balance_mode)
        if ranked is None:
            ranked = rank_project(proj, [strategy], k=k, random_state=random_state)
        _check_ranking(proj, ranked, strategy)
        queued = proj.ledger.queued_pair_ids()
        labelled = set(proj.ledger.decisions()["pair_id"]) if len(proj.ledger.decisions()) else set()
        unavailable = queued | labelled | set(exclude or ())
        excluded_rows = np.flatnonzero(ranked["pair_id"].isin(unavailable).to_numpy())
        image, text, _ = current_embeddings(proj)
        joint = selection_vectors(image, text, random_state=random_state)
        picked = selector(ranked["score"].to_numpy(np.float64), n=budget, embeddings=joint,
                          exclude=excluded_rows, random_state=random_state)
        chosen = ranked.iloc[picked]
        params = {"budget": budget, "diversity": diversity, "k": k, "random_state": random_state}
        if balance not in (None, "none"):
            params.update(balance=balance, balance_mode=balance_mode)
        prov = ranked.attrs["provenance"]
        round_id = proj.ledger.create_round(
            chosen["pair_id"].tolist(), strategy=strategy, params=params,
            model={key: prov[key] for key in ("model", "pretrained", "weights_sha256", "embeddings")},
            head_round=prov["head_round"], scores=chosen["score"].astype(float).tolist(),
            reasons=[f"{strategy}={s:.3f}" for s in chosen["score"]],
        )
    batch = proj.ledger.batch(round_id).merge(proj.pairs[["pair_id", "image", "caption"]], on="pair_id")
    return round_id, batch


def _batch_selector(proj, diversity: str, balance: str | None, balance_mode: str):
    """The selector for :func:`select_batch`: ``diversity``, or it per category when balancing."""
    from functools import partial

    from mmcurate.select import get_selector, select_balanced

    if balance in (None, "none"):
        return get_selector(diversity)
    if balance != "categories":
        raise ValueError(f"balance must be None, 'none' or 'categories', got {balance!r}")
    if balance_mode not in ("uniform", "proportional"):
        raise ValueError(f"balance_mode must be 'uniform' or 'proportional', got {balance_mode!r}")
    if "category" not in proj.pairs.columns:
        raise ValueError(f"balance='categories' needs a `category` column in the project's pairs, "
                         f"but {proj.root} has only {', '.join(map(str, proj.pairs.columns))}. Add a "
                         f"`category` column to the pairs file (or to the embedding folder's "
                         f"metadata) and create the project again (mmcurate init --force), or select "
                         f"without balance.")
    categories = proj.pairs["category"].astype("string").fillna("<missing>").to_numpy(dtype=object)
    get_selector(diversity)  # an unknown name fails here, before ranking
    return partial(select_balanced, categories=categories, mode=balance_mode, within=diversity)


def _check_ranking(proj, ranked: pd.DataFrame, strategy: str) -> None:
    """A ranking passed to :func:`select_batch` must be of ``strategy`` on the current state."""
    from mmcurate.signals import STRATEGIES

    prov = ranked.attrs.get("provenance") or {}
    latest = proj.ledger.latest_head()
    expected = (STRATEGIES.get(strategy).name, len(labelled_arrays(proj)[0]),
                int(latest["head_round"]) if latest else None)
    found = (STRATEGIES.get(prov["strategies"][0]).name if prov.get("strategies") else None,
             prov.get("n_labels"), prov.get("head_round"))
    if found != expected or len(ranked) != len(proj.pairs):
        raise ValueError(f"ranked= must come from rank_project(proj, [{strategy!r}]) on the current "
                         f"labels and head: expected (strategy, labels, head round) {expected}, got "
                         f"{found} over {len(ranked)} rows; rank again or pass ranked=None.")


def import_labels(proj, source: str | Path | pd.DataFrame, *, round_id: int | None = None,
                  source_name: str | None = None):
    """Import decisions (a CSV/JSONL file or a DataFrame) into the ledger in one transaction."""
    if source_name is None and not isinstance(source, pd.DataFrame):
        source_name = Path(source).name
    return proj.ledger.import_decisions(source, known_pair_ids=set(proj.pairs["pair_id"]),
                                        source_name=source_name, round_id=round_id)


def _fixed_texts(proj, fixes: pd.DataFrame):
    if fixes is None or fixes.empty or proj.kind == "external":
        return None
    from mmcurate.embed.encoder import load_encoder

    manifest = proj.store.manifest() or {}
    encoder = load_encoder(proj.model_spec, weights_sha256=manifest.get("weights_sha256"))
    vectors = encoder.encode_texts(fixes["caption"].astype(str).tolist())
    return fixes["row"].to_numpy(np.int64), vectors


def train_project_head(proj, *, config=None) -> tuple[int, dict[str, Any]]:
    """Fit the projection head on every decision so far; saves ``heads/head-NNNN`` and records it."""
    from mmcurate.head import HeadConfig, train_head

    rows, y, fixes = labelled_arrays(proj)
    if len(rows) == 0:
        raise NotEmbeddedError("no decisions yet: review a batch (mmcurate review / label) first")
    with proj.lock():
        head, metrics = train_head(proj.image_embeddings(), proj.text_embeddings(),
                                   positives=rows[y == 1], negatives=rows[y == 0],
                                   fixed_texts=_fixed_texts(proj, fixes), config=config or HeadConfig())
        n_heads = len(proj.ledger.heads())
        path = _head_path(proj, n_heads + 1)
        path.parent.mkdir(parents=True, exist_ok=True)
        head.save(path)
        head_round = proj.ledger.record_head(checkpoint=path.relative_to(proj.root).as_posix(),
                                             metrics=_jsonable(metrics),
                                             n_labels=len(rows))
    return head_round, metrics


def _jsonable(metrics: dict[str, Any]) -> dict[str, Any]:
    out = {}
    for key, value in metrics.items():
        if isinstance(value, np.ndarray):
            value = value.tolist()
        elif isinstance(value, np.generic):
            value = value.item()
        out[key] = value
    return out


def rounds_status(proj) -> dict[str, Any]:
    """Rounds, decisions, conflicts, head metrics and the estimated noise rate."""
    ledger = proj.ledger
    decisions = ledger.decisions()
    counts = decisions["decision"].value_counts().to_dict() if len(decisions) else {}
    latest = ledger.latest_head()
    state_path = proj.root / "state.json"
    import json

    state = json.loads(state_path.read_text()) if state_path.is_file() else {}
    reviewed = len(decisions)
    return {
        "rounds": len(ledger.rounds()),
        "decisions": {"total": reviewed, **{d: int(counts.get(d, 0)) for d in ("accept", "reject", "fix")}},
        "conflicts": len(ledger.conflicts()),
        "head": ({"round": latest["head_round"], "n_labels": latest.get("n_labels"),
                  "metrics": {k: v for k, v in (latest.get("metrics") or {}).items()
                              if not isinstance(v, list)}} if latest else None),
        "reviewed_noise_rate": (float((decisions["decision"] != "accept").mean()) if reviewed else None),
        "estimated_noise_rate": state.get("estimated_noise_rate"),
    }
