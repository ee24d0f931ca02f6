"""Select a round's batch: the exploit part by rank (optionally balanced), the explore part at random."""

from __future__ import annotations

from collections.abc import Collection
from functools import partial
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from mmcurate._util import RandomState, check_random_state
from mmcurate.groups.hooks import annotate_reasons, selection_exclude
from mmcurate.learn import (
    AUDIT_SHARE,
    CONTRADICTION,
    DEFAULT_STRATEGY,
    EXPLORE,
    LABEL_NOISE_FLOOR,
    MIN_FLIP_RATE,
    SECOND_OPINION_FLOOR,
    SECOND_OPINION_SHARE,
    exploration_draw,
    second_opinion_gain,
    split_budget,
    worth_second_opinions,
)
from mmcurate.project_index import focus_scores
from mmcurate.rank import STRATEGIES, selection_vectors
from mmcurate.results import Batch, Ranking
from mmcurate.rounds.labelling import labelled_arrays, repeated_opinions
from mmcurate.rounds.model import current_embeddings, load_model
from mmcurate.rounds.project_ranking import rank_project
from mmcurate.select import get_selector, select_balanced

if TYPE_CHECKING:
    from mmcurate.project import Project
    from mmcurate.project.files import ProjectFiles


def select_batch(proj: Project, *, budget: int, strategy: str = DEFAULT_STRATEGY, diversity: str = "none",
                 k: int = 10, random_state: int = 0, exclude: Collection[str] | None = None,
                 ranked: Ranking | None = None, explore: float = EXPLORE,
                 balance: str | None = None, balance_mode: str = "uniform",
                 second_opinions: float = SECOND_OPINION_SHARE, audit: float = AUDIT_SHARE,
                 query: str | None = None) -> Batch:
    """Rank, pick ``budget`` pairs never labelled or queued before, and save them as a round.

    ``exclude``: pair_ids never to select (e.g. a held-out evaluation set); unlike the pairs already
    labelled or queued (the selector's ``indices_labeled``), they do not shape diversity (core-set
    centres). ``ranked``: a ranking
    :func:`rank_project` just made for ``strategy`` on the current labels and head (saves ranking
    twice when the caller also needs the scores); ranked here when None. ``explore``: the share of
    the batch drawn at random from the pairs the strategy did not pick (recorded as the
    ``explore`` stratum with its inclusion probability; it lets the next model correct for the
    queue's bias and gives unbiased estimates of the noise left, see :mod:`mmcurate.learn`).
    ``balance="categories"``: every value of the pairs' ``category`` column gets a share of the
    exploit part (``balance_mode`` ``uniform`` or ``proportional``, floor 1;
    :func:`mmcurate.select.select_balanced`), each share chosen by ``diversity``.
    ``second_opinions``: the most of the batch given to decided pairs whose decision the model in
    use contradicts (P of the other verdict >= :data:`mmcurate.learn.CONTRADICTION`), strongest
    first; ``audit``: the share given to decided pairs drawn at random (the reviewer's error rate
    is estimated from them). Both are shown again as stratum ``second_opinion`` (0 turns them off).
    ``query``: a text (``"medical images"``) that focuses the exploit part on the pairs whose
    images match it best (:func:`mmcurate.project_index.focus_scores`); the explore part stays
    uniform over the pool.

    Returns a :class:`~mmcurate.results.Batch`: the round number and the batch table
    (``pair_id``, ``score``, ``reason``, ``stratum``, caption, image).

    Examples
    --------
    Usage (not run as a doctest: it needs data of your own)::

        batch = select_batch(proj, budget=100)
        batch.round, batch.table["stratum"].value_counts()
        # exploit    90
        # explore    10
    """
    with proj.lock():
        selector = _batch_selector(proj, diversity, balance, balance_mode)
        ranking = rank_project(proj, [strategy], k=k, random_state=random_state) if ranked is None else ranked
        _check_ranking(proj, ranking, strategy)
        table = ranking.table
        queued = proj.ledger.queued_pair_ids()
        decided = proj.ledger.decisions()  # one read of the ledger's decisions
        labelled = set(decided["pair_id"]) if len(decided) else set()
        exclude = _group_exclude(proj, table, queued | labelled, exclude)
        # labelled or queued pairs seed diversity (core-set centres); held-out pairs are only skipped
        labelled_rows = np.flatnonzero(table["pair_id"].isin(queued | labelled).to_numpy())
        held_out_rows = np.flatnonzero(table["pair_id"].isin(set(exclude or ())).to_numpy())
        excluded_rows = np.union1d(labelled_rows, held_out_rows)
        image, text, _ = current_embeddings(proj)
        joint = selection_vectors(image, text, random_state=random_state)
        scores = table["score"].to_numpy(np.float64)
        again = _second_opinions(proj, table, int(budget), second_opinions, audit, random_state,
                                 queue_p=_queue_p_misaligned(table, scores, excluded_rows,
                                                             split_budget(int(budget), explore)[0]))
        n_exploit, n_explore = split_budget(int(budget) - len(again), explore)
        picked = selector(_query_focus(proj, scores, query, n_exploit), n=n_exploit, embeddings=joint,
                          indices_labeled=labelled_rows,
                          exclude=np.setdiff1d(held_out_rows, labelled_rows), random_state=random_state)
        # the random baseline stays uniform, exploration included
        suspicion = (1.0 - table["p_aligned"].to_numpy(np.float64)
                     if "p_aligned" in table.columns and _canonical(strategy) != "random" else None)
        explored, inclusion = _explore(len(table), np.r_[excluded_rows, picked], n_explore, random_state,
                                       suspicion=suspicion)
        chosen = table.iloc[np.r_[picked, explored]]
        params = {"budget": budget, "diversity": diversity, "k": k, "random_state": random_state,
                  "explore": explore}
        if query:
            params["query"] = query
        if balance not in (None, "none"):
            params.update(balance=balance, balance_mode=balance_mode)
        prov = ranking.provenance
        reasons = [f"{strategy}={s:.3f}" for s in scores[picked]]
        reasons += [f"explore: drawn at random (p={p:.2g}); {strategy}={s:.3f}"
                    for p, s in zip(inclusion, scores[explored])]
        reasons = _group_reasons(proj, chosen["pair_id"].tolist(), reasons)
        round_id = proj.ledger.create_round(
            chosen["pair_id"].tolist(), strategy=strategy, params=params,
            model={key: prov[key] for key in ("model", "pretrained", "weights_sha256", "embeddings")},
            head_round=prov["head_round"], scores=chosen["score"].astype(float).tolist(),
            reasons=reasons, strata=["exploit"] * len(picked) + ["explore"] * len(explored),
            inclusion=[1.0] * len(picked) + [float(p) for p in inclusion], second_opinions=again,
        )
    batch = proj.ledger.batch(round_id).merge(proj.pairs[["pair_id", "image", "caption"]], on="pair_id")
    return Batch(round_id, batch, strategy=strategy, params=params, head_round=prov["head_round"],
                 uses_head=ranking.uses_head)


def _explore(n: int, taken: np.ndarray, n_explore: int, random_state: RandomState, *,
             suspicion: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """``n_explore`` rows drawn from those not ``taken`` and their inclusion probabilities
    (:func:`mmcurate.learn.exploration_draw`: part uniform, part by ``suspicion``, the model's
    P(misaligned); uniform without it)."""
    mask = np.ones(n, bool)
    mask[np.asarray(taken, np.int64)] = False
    rest = np.flatnonzero(mask)
    rng = check_random_state(random_state, stream=0x6578706C)  # an int seed: its own stream
    chosen, pi = exploration_draw(np.ones(len(rest)) if suspicion is None else suspicion[rest],
                                  n_explore, rng)
    return rest[chosen].astype(np.int64), pi


def _second_opinions_pay(proj: ProjectFiles) -> bool:
    """Whether second opinions still change decisions: the flip rate of those given so far (a
    Beta(1, 1) posterior mean) is at least :data:`mmcurate.learn.MIN_FLIP_RATE`. A reviewer who
    never errs stops costing labels after about ten confirmed decisions; audits go on at half
    their share (at least one), and flips in them that raise the rate to the line again turn
    second opinions and the full audit share back on."""
    pairs = repeated_opinions(proj)
    flips = sum((first == "accept") != (second == "accept") for _, _, first, second in pairs)
    n = len(pairs)
    return (flips + 1) / (n + 2) >= MIN_FLIP_RATE


def _queue_p_misaligned(table: pd.DataFrame, scores: np.ndarray, excluded_rows: np.ndarray,
                        n: int) -> np.ndarray | None:
    """P(misaligned) of the ``n`` pairs the queue would pick first (by score, in its order)."""
    if "p_aligned" not in table.columns or n <= 0:
        return None
    open_rows = np.setdiff1d(np.arange(len(table)), excluded_rows)
    top = open_rows[np.argsort(-np.nan_to_num(scores[open_rows], nan=-np.inf), kind="stable")[:n]]
    return 1.0 - np.nan_to_num(table["p_aligned"].to_numpy(np.float64)[top], nan=0.5)


def _second_opinions(proj: ProjectFiles, ranked: pd.DataFrame, budget: int, share: float, audit: float,
                     random_state: RandomState, *, queue_p: np.ndarray | None = None
                     ) -> list[tuple[str, float, str]]:
    """Decided pairs to show again: contradicted by the model (strongest first) while each sets
    more decisions right than the queue pick it replaces would find (:func:`mmcurate.learn.
    worth_second_opinions`; ``queue_p``: the queue's P(misaligned) in order), then audits."""
    if budget < 10 or (share <= 0 and audit <= 0):
        return []
    resolved = proj.ledger.resolved()
    resolved = resolved[resolved["decision"].isin(["accept", "reject"])]
    if resolved.empty:
        return []
    shown = proj.ledger.second_opinions()["pair_id"].value_counts()
    resolved = resolved[resolved["pair_id"].map(shown).fillna(0).to_numpy() < 2]
    out: list[tuple[str, float, str]] = []
    pay = _second_opinions_pay(proj)
    if share > 0 and "p_aligned" in ranked.columns and pay:
        # held out where the model in use has it (a fit that saw a decision cannot doubt it),
        # calibrated on the labelled pairs; the ranking's P for decisions made since
        model = load_model(proj)
        reviewer = model.info.get("reviewer") or {}
        held = model.held_out_calibrated(resolved["pair_id"])
        p = np.where(np.isfinite(held), held, resolved["pair_id"].map(
            ranked.set_index("pair_id")["p_aligned"]).to_numpy(np.float64))
        other = np.where(resolved["decision"].to_numpy() == "accept", 1.0 - p, p)
        strong = np.flatnonzero(np.nan_to_num(other) >= CONTRADICTION)  # NaN: no probability, no doubt
        strong = strong[np.argsort(-other[strong], kind="stable")][: round(share * budget)]
        if queue_p is not None and len(strong):
            rate = float(reviewer.get("error_rate", np.nan)) if reviewer.get("n", 0) >= 10 else np.nan
            error_rate = max(rate, LABEL_NOISE_FLOOR) if np.isfinite(rate) else LABEL_NOISE_FLOOR
            gains = second_opinion_gain(other[strong], error_rate)  # sorted as other: descending
            floor = round(SECOND_OPINION_FLOOR * budget)
            strong = strong[: max(floor, worth_second_opinions(gains, queue_p, len(strong)))]
        # the reason is shown to the reviewer: it must not say what was decided before (blind)
        out += [(str(resolved["pair_id"].iloc[i]), float(other[i]), "second opinion: shown again")
                for i in strong]
    n_audit = round(audit * budget)
    if not pay and n_audit > 1:  # a reviewer whose second looks do not change decisions: half, to watch
        n_audit = (n_audit + 1) // 2
    taken = {pid for pid, _, _ in out}
    once = resolved["n_opinions"].to_numpy() == 1
    rest = np.flatnonzero(~resolved["pair_id"].isin(taken).to_numpy() & once)
    if n_audit and len(rest):
        rng = check_random_state(random_state, stream=0x61756474)
        for i in np.sort(rng.choice(rest, size=min(n_audit, len(rest)), replace=False)):
            out.append((str(resolved["pair_id"].iloc[i]), float("nan"), "audit: shown again"))
    return out


def _batch_selector(proj: ProjectFiles, diversity: str, balance: str | None, balance_mode: str):
    """The selector for :func:`select_batch`: ``diversity``, or it per category when balancing."""
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


def _canonical(strategy: str) -> str:
    return STRATEGIES.get(strategy).name


def _check_ranking(proj: ProjectFiles, ranked: Ranking, strategy: str) -> None:
    """A ranking passed to :func:`select_batch` must be of ``strategy`` on the current state."""
    prov = ranked.provenance
    expected = (STRATEGIES.get(strategy).name, len(labelled_arrays(proj)[0]), load_model(proj).round)
    found = (STRATEGIES.get(prov["strategies"][0]).name if prov.get("strategies") else None,
             prov.get("n_labels"), prov.get("head_round"))
    if found != expected or len(ranked) != len(proj.pairs):
        raise ValueError(f"ranked= must come from rank_project(proj, [{strategy!r}]) on the current "
                         f"labels and head: expected (strategy, labels, head round) {expected}, got "
                         f"{found} over {len(ranked)} rows; rank again or pass ranked=None.")


# -- groups (mmcurate.groups): one representative per duplicate / boilerplate group -------------
def _group_exclude(proj: Project, ranked: pd.DataFrame, taken: set[str],
                   exclude: Collection[str] | None) -> set[str]:
    """``exclude`` plus the group members that must not enter this batch
    (:func:`mmcurate.groups.hooks.selection_exclude`)."""
    return selection_exclude(proj, ranked, taken, exclude)


def _group_reasons(proj: Project, pair_ids: list[str], reasons: list[str]) -> list[str]:
    """Reasons with the group size of a representative (:func:`mmcurate.groups.hooks.annotate_reasons`)."""
    return annotate_reasons(proj, pair_ids, reasons)


def _query_focus(proj: Project, scores: np.ndarray, query: str | None, n: int) -> np.ndarray:
    """``scores`` with the pairs matching ``query`` first (:func:`mmcurate.project_index.focus_scores`)."""
    if not query:
        return scores
    return focus_scores(proj, scores, query, n=n)
