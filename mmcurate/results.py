"""One result type per verb of the loop: what ``rank``, ``select``, ``train``, ``export`` and ``add``
return, in the library and in the CLI alike.

Each result is a frozen dataclass: the table a user works with is a DataFrame field, how it was made
(provenance, round, rejects) are fields beside it (pandas ``attrs`` do not survive ``merge``), and
``summary()`` (also ``str(result)``) gives the lines the CLI prints. The CLI prints from the same
object the API returns, so there is one formatting path.

Assumptions: this module sits low in the import graph (pandas and the standard library only); the
verbs that build these objects live in :mod:`mmcurate.rounds`, :mod:`mmcurate.export` and
:mod:`mmcurate.stream`.
"""

from __future__ import annotations

import textwrap
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

__all__ = ["AddResult", "Batch", "ExportResult", "Ranking", "TrainResult", "model_words", "score_table"]


def _short(text: str, width: int) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= width else text[: width - 1] + "…"


def score_table(df: pd.DataFrame, columns: Sequence[str], n: int, *, caption_width: int = 52) -> str:
    """The top ``n`` rows as a narrow aligned table: #, pair_id, score columns (3 decimals), caption.

    Examples
    --------
    >>> df = pd.DataFrame({"pair_id": ["a", "b"], "score": [0.9, 0.1], "caption": ["a red cat", "x"]})
    >>> print(score_table(df, ["score"], 1))
      #  pair_id   score  caption
      1  a         0.900  a red cat
    """
    top = df.head(n)
    id_width = max([7, *(len(str(p)) for p in top["pair_id"])])
    id_width = min(id_width, 20)
    widths = [max(6, len(c)) for c in columns]
    head = f"{'#':>3}  {'pair_id':<{id_width}}  " + "  ".join(f"{c:>{w}}" for c, w in zip(columns, widths))
    lines = [head + "  caption"]
    for i, row in enumerate(top.itertuples(index=False), start=1):
        rec = row._asdict()
        cells = "  ".join(f"{float(rec[c]):>{w}.3f}" for c, w in zip(columns, widths))
        lines.append(f"{i:>3}  {_short(rec['pair_id'], id_width):<{id_width}}  {cells}  "
                     f"{_short(rec['caption'], caption_width)}")
    return "\n".join(lines)


def model_words(head_round: Any, uses_head: bool = False) -> str:
    """Which trained model produced a ranking, in words.

    Examples
    --------
    >>> model_words(None)
    'the zero-label prior (no trained model in use)'
    >>> model_words(2, uses_head=True)
    'model 2 with its projection head (trained on the labels so far)'
    """
    if head_round is None or pd.isna(head_round):
        return "the zero-label prior (no trained model in use)"
    head = " with its projection head" if uses_head else ""
    return f"model {int(head_round)}{head} (trained on the labels so far)"


# -- rank -----------------------------------------------------------------------------------------------
@dataclass(frozen=True, eq=False)
class Ranking:
    """Every pair scored: what :func:`mmcurate.rounds.rank_project` (``mmcurate rank``) returns.

    Attributes
    ----------
    table : DataFrame
        One row per pair in the project's order: ``pair_id``, ``score`` (higher = review first) and
        one column per signal.
    provenance : dict
        Model, pretrained tag, weights hash, ``head_round`` (None: the zero-label prior),
        strategies, ``k``, ``random_state``, ``n_labels``, options, engine, time.
    strategies : tuple of str
        The strategies as asked for; ``score`` is their combination.
    uses_head : bool
        Whether the model in use transformed the vectors with its projection head.

    Examples
    --------
    >>> r = Ranking(pd.DataFrame({"pair_id": ["a", "b"], "score": [0.2, 0.7]}),
    ...             {"head_round": None}, ("margin",))
    >>> r.table.merge(pd.DataFrame({"pair_id": ["a"]}), on="pair_id").shape, r.head_round
    ((1, 2), None)
    >>> print(r.summary())
    ranked 2 pairs by margin; higher = review first
    scored with the zero-label prior (no trained model in use)
    """

    table: pd.DataFrame = field(repr=False)
    provenance: dict[str, Any]
    strategies: tuple[str, ...]
    uses_head: bool = False

    @property
    def head_round(self) -> int | None:
        """The model round that ranked (None: the zero-label prior)."""
        return self.provenance.get("head_round")

    def __len__(self) -> int:
        return len(self.table)

    def review_order(self, captions: pd.DataFrame | None = None) -> pd.DataFrame:
        """The table sorted by ``score`` (highest first, ties in pair order), with ``captions``
        (``pair_id``, ``caption``) joined when given."""
        table = self.table if captions is None else self.table.merge(captions, on="pair_id")
        return table.sort_values("score", ascending=False, kind="stable")

    def headline(self) -> list[str]:
        """What was ranked and with which model: the first lines ``mmcurate rank`` prints."""
        return [f"ranked {len(self.table)} pairs by {' + '.join(self.strategies)}; higher = review first",
                f"scored with {model_words(self.head_round, self.uses_head)}"]

    def top(self, ordered: pd.DataFrame, n: int = 10) -> str:
        """The first ``n`` rows of ``ordered`` (:meth:`review_order` with captions) as a table: the
        score, and each strategy's column when several were combined."""
        columns = ["score"] + ([c for c in self.strategies if c in ordered.columns and c != "score"]
                               if len(self.strategies) > 1 else [])
        return score_table(ordered, columns, n)

    def summary(self, captions: pd.DataFrame | None = None, *, n: int = 10) -> str:
        """The headline, and the top ``n`` pairs when ``captions`` (``pair_id``, ``caption``) are given."""
        lines = self.headline()
        if captions is not None:
            lines.append(self.top(self.review_order(captions), n))
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.summary()


# -- select ---------------------------------------------------------------------------------------------
@dataclass(frozen=True, eq=False)
class Batch:
    """A round's review batch: what :func:`mmcurate.rounds.select_batch` (``mmcurate select``) returns.

    Attributes
    ----------
    round : int
        The round number recorded in the ledger.
    table : DataFrame
        One row per queued pair (``pair_id``, ``position``, ``score``, ``reason``, ``stratum``,
        ``image``, ``caption``, ...).
    strategy : str
        The strategy that ranked the exploit part.
    params : dict
        The selection's parameters as recorded (budget, diversity, k, random_state, explore, ...).
    head_round : int or None
        The model round that ranked (None: the zero-label prior).
    uses_head : bool
        Whether that model used its projection head.

    Examples
    --------
    >>> b = Batch(3, pd.DataFrame({"pair_id": ["a"], "position": [0], "score": [0.5],
    ...                            "stratum": ["explore"], "caption": ["a cat"]}),
    ...           strategy="margin", params={"diversity": "none"})
    >>> print(b.summary().splitlines()[0])
    round 3: 1 pairs queued for review (0 by margin, 1 drawn at random; diversity=none)
    """

    round: int
    table: pd.DataFrame = field(repr=False)
    strategy: str = ""
    params: dict[str, Any] = field(default_factory=dict)
    head_round: int | None = None
    uses_head: bool = False

    def __len__(self) -> int:
        return len(self.table)

    @property
    def n_explore(self) -> int:
        """How many pairs were drawn at random (the explore stratum)."""
        return int((self.table["stratum"] == "explore").sum()) if "stratum" in self.table.columns else 0

    def summary(self, *, n: int = 10) -> str:
        """What ``mmcurate select`` prints: the round, who ranked it and the first ``n`` pairs."""
        balance = self.params.get("balance")
        shares = f", balance={balance} ({self.params.get('balance_mode')})" if balance else ""
        n_pairs = len(self.table)
        lines = [f"round {self.round}: {n_pairs} pairs queued for review ({n_pairs - self.n_explore} "
                 f"by {self.strategy}, {self.n_explore} drawn at random; "
                 f"diversity={self.params.get('diversity')}{shares})",
                 f"ranked with {model_words(self.head_round, self.uses_head)}"]
        order = self.table.sort_values("position") if "position" in self.table.columns else self.table
        lines.append(score_table(order, ["score"], n))
        if len(self.table) > n:
            lines.append(f"    ... {len(self.table) - n} more")
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.summary()


# -- train ----------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class TrainResult:
    """A trained model and its verdict: what :func:`mmcurate.rounds.train_project_head`
    (``mmcurate train``) returns.

    Attributes
    ----------
    round : int
        The model round recorded in the ledger.
    accepted : bool
        Whether the model is used from now on (it did not lose on held-out labels).
    reason : str
        The verdict in words.
    metrics : dict
        Everything recorded: ``validation``, ``recalibration``, ``reviewer``, ``use_head``,
        ``replaces`` (the model in use before), the head's training metrics when one was trained.

    Examples
    --------
    >>> t = TrainResult(2, True, "held-out AUROC 0.97 vs prior 0.95",
    ...                 {"validation": {"n_labels": 40}, "replaces": 1})
    >>> print(t.summary())
    model 2: fitted on 40 decisions
      verdict  used: held-out AUROC 0.97 vs prior 0.95
      ranking  select ranks with model 2
    """

    round: int
    accepted: bool
    reason: str
    metrics: dict[str, Any] = field(default_factory=dict)

    @property
    def in_use(self) -> int | None:
        """The model round that ranks from now on (None: the zero-label prior)."""
        return self.round if self.accepted else self.metrics.get("replaces")

    def lines(self) -> list[str]:
        """What ``train`` did, as short aligned lines: the verdict, its evidence, the head, what
        ranks next."""
        metrics = self.metrics
        val = metrics.get("validation") or {}
        n_pos, n_neg = metrics.get("n_pos"), metrics.get("n_neg")
        counts = f" ({n_pos} aligned, {n_neg} misaligned)" if n_pos is not None else ""
        lines = [f"model {self.round}: fitted on {val.get('n_labels', '?')} decisions{counts}"]
        rows = [("verdict", ("used" if self.accepted else "not used") + f": {self.reason}")]
        if val.get("auroc_new") is not None and val.get("auroc_prior") is not None:
            rows.append(("held-out", f"AUROC {val['auroc_new']:.4f} (this model) vs {val['auroc_prior']:.4f} "
                                     f"(zero-label prior), labels cross-fitted"))
        if val.get("incumbent") not in (None, "prior") and val.get("auroc_incumbent") is not None:
            rows.append(("vs in use", f"AUROC {val['auroc_new']:.4f} vs {val['auroc_incumbent']:.4f} "
                                      f"({val['incumbent']}, held out); refused only "
                                      f"below by > {val.get('margin', 0.0):.4f}"))
        recal = metrics.get("recalibration") or {}
        if recal:
            rows.append(("calibration", f"logit shift {recal['b']:+.3f} (held-out, weighted 1/inclusion); "
                                        f"l2 {recal['l2']:g}; reviewer errors {recal['error_rate']:.1%}"))
        reviewer = metrics.get("reviewer") or {}
        if reviewer.get("n"):
            rows.append(("reviewer", reviewer_words(reviewer)))
        head = metrics.get("head")
        if "cv_auroc" in metrics:
            used = "used" if metrics.get("use_head") else "not used"
            rows.append(("head", f"{used}: cross-validated AUROC {metrics['cv_auroc']:.3f} vs plain CLIP "
                                 f"{metrics['cv_auroc_identity']:.3f}"))
        elif head:
            rows.append(("head", str(head)))
        in_use = self.in_use
        rows.append(("ranking", f"select ranks with model {in_use}" if in_use
                     else "select ranks with the zero-label prior"))
        width = max(len(k) for k, _ in rows)
        return lines + [f"  {k:<{width}}  {v}" for k, v in rows]

    def summary(self) -> str:
        """:meth:`lines` joined: what ``mmcurate train`` prints."""
        return "\n".join(self.lines())

    def __str__(self) -> str:
        return self.summary()


# -- export ---------------------------------------------------------------------------------------------
def reviewer_words(reviewer: dict[str, Any]) -> str:
    """The reviewer's estimated error rate in words (``reviewer``: what
    :func:`mmcurate.learn.reviewer_error_rate` returns): ``train``, ``status`` and the export report."""
    weighed = int(reviewer.get("n_labels", 0) or 0)
    against = f", weighed against the model on {weighed} decided pairs" if weighed > reviewer["n"] else ""
    return (f"errs on about {reviewer['error_rate']:.1%} of decisions (95% {reviewer['low']:.1%}-"
            f"{reviewer['high']:.1%}), from {reviewer['n']} pairs seen twice{against}")


def clean_floor_line(estimates: dict[str, Any]) -> str | None:
    """What the clean-pairs floor estimates (:func:`mmcurate.learn.clean_floor`) when it set the
    export's threshold, in one line for the summary and the report; None when it did not."""
    floor = estimates.get("clean_floor") or {}
    if floor.get("threshold") is None or estimates.get("threshold") != floor["threshold"]:
        return None
    se = floor["se"] / floor["est_clean"]
    return (f"lowered to keep {floor['keep']:.0%} of all clean pairs: {floor['est_clean_kept']:.1%} kept "
            f"by the estimate from {floor['n']} random labels ({floor['rounds']} rounds), SE {se:.1%} of "
            f"the clean pairs, {floor['z']:g} SE kept in reserve")


@dataclass(frozen=True)
class ExportResult:
    """What an export wrote and why: what :func:`mmcurate.export.export_curated` (``mmcurate export``)
    returns. Counts are pairs; paths are strings.

    Attributes
    ----------
    pairs, rejected_at_input : int
        Pairs in the project; rows rejected when the project was created.
    reviewed, accepted, rejected, fixed : int
        Reviewed pairs and their decisions.
    auto, unverified, below_threshold, left_out, embed_failures : int
        Unreviewed pairs kept by the model, kept without a verdict, dropped below the threshold,
        left out (reviewed-only export); pairs whose image could not be embedded.
    curated, dropped : int
        Rows of the curated and dropped tables.
    format : str
        ``csv``, ``jsonl``, ``parquet`` or ``webdataset``.
    threshold : float or None
        The P(aligned) threshold used (None: none).
    estimates : dict
        How the threshold was chosen and checked (:func:`mmcurate.export.curate_pairs`).
    dropped_path, report_md, report_html : str
        Files written.
    curated_path : str or None
        The curated table (None for WebDataset).
    shards : tuple of str
        WebDataset shards (empty for tables).
    plots : tuple of str
        The report's plots.
    duplicate_groups, duplicates_dropped, unreadable_images : int
        Duplicate groups found and copies dropped; images unreadable when writing shards.
    groups_by_kind : dict
        Groups per kind (``exact``, ``near``, ``boilerplate``, ...), for the report.
    disputed : int
        Accepted pairs held back: given the model and the reviewer's estimated error rate they are
        more likely misaligned than aligned (``select`` queues them for second opinions).
    """

    pairs: int
    rejected_at_input: int
    reviewed: int
    accepted: int
    rejected: int
    fixed: int
    auto: int
    unverified: int
    below_threshold: int
    embed_failures: int
    left_out: int
    curated: int
    dropped: int
    format: str
    threshold: float | None
    estimates: dict[str, Any]
    dropped_path: str
    report_md: str
    report_html: str
    curated_path: str | None = None
    shards: tuple[str, ...] = ()
    plots: tuple[str, ...] = ()
    duplicate_groups: int = 0
    duplicates_dropped: int = 0
    unreadable_images: int = 0
    groups_by_kind: dict[str, int] = field(default_factory=dict)
    disputed: int = 0

    def lines(self) -> list[str]:
        """What ``export`` wrote, as short aligned lines (counts, the threshold and its check, files)."""
        est = self.estimates or {}
        w = len(str(self.pairs))
        unverified = self.unverified
        rows = [("curated", f"{self.curated:>{w}}  {self.reviewed} reviewed ({self.accepted} "
                            f"accepted, {self.fixed} fixed) + {self.auto} kept by the model"
                            + (f" + {unverified} unverified" if unverified else "")),
                ("dropped", f"{self.dropped:>{w}}  {self.rejected} rejected by a reviewer, "
                            + (f"{self.disputed} disputed, " if self.disputed else "")
                            + f"{self.below_threshold} below the threshold, {self.embed_failures} "
                            f"unreadable, {self.rejected_at_input} rejected at init")]
        if self.disputed:
            rows.append(("disputed", f"{self.disputed:>{w}}  accepted pairs held back: the model contradicts "
                                     f"them and the reviewer errs (pairs seen twice); select queues them for "
                                     f"second opinions"))
        if self.duplicate_groups:
            rows.append(("duplicates", f"{self.duplicates_dropped:>{w}}  copies dropped (one pair kept per "
                                       f"group of {self.duplicate_groups}; --keep-duplicates keeps all)"))
        if self.left_out:
            rows.append(("no verdict", f"{self.left_out:>{w}}  unreviewed pairs (--reviewed-only)"))
        if est and not est.get("verified", True):
            why = textwrap.wrap(f"{unverified} unreviewed pairs kept without a verdict: {est.get('why')}", 90)
            rows += [("unverified" if i == 0 else "", line) for i, line in enumerate(why)]
            rows.append(("", "to let the model decide: review more batches and train, or pass --threshold"))
        elif est:
            rows.append(("threshold", f"P(aligned) >= {est['threshold']:.3f} keeps {est['n_kept']} "
                                      f"unreviewed pairs: estimated {est['est_noise_kept']:.1%} noise"))
            rows.append(("", f"and {est['est_clean_kept']:.1%} of the clean unreviewed pairs kept"))
            floor_line = clean_floor_line(est)
            if floor_line:
                rows.append(("clean floor", floor_line))
            check = est.get("exploration_check") or {}
            if check.get("n"):
                rows.append(("check", f"{check['noise']:.1%} misaligned among the {check['n']} random "
                                      f"reviewed pairs it keeps (95% interval {check['low']:.1%}–"
                                      f"{check['high']:.1%})"))
        written = (self.curated_path if self.curated_path is not None
                   else f"{len(self.shards)} WebDataset shard(s) {self.shards[0]} ...")
        rows += [("files", f"{written}, {self.dropped_path}"),
                 ("report", str(self.report_html))]
        width = max(len(k) for k, _ in rows)
        return [f"{k:<{width}}  {v}" for k, v in rows]

    def summary(self) -> str:
        """:meth:`lines` joined: what ``mmcurate export`` prints after its first line."""
        return "\n".join(self.lines())

    def __str__(self) -> str:
        return self.summary()


# -- add ------------------------------------------------------------------------------------------------
@dataclass(frozen=True, eq=False)
class AddResult:
    """One arriving batch added to a project: what :func:`mmcurate.stream.add_pairs`
    (``mmcurate add``, each batch of ``mmcurate stream``) returns.

    Attributes
    ----------
    table : DataFrame
        One row per arrival added (columns :data:`mmcurate.stream.LOG_COLUMNS`): score, queued, round.
    rejects : DataFrame
        Rows of the batch that were not added (``source``, ``row``, ``pair_id``, ``column``,
        ``reason``, ``detail``); also appended to the project's rejects file.
    round : int or None
        The review round of the queued arrivals (None when nothing was queued).
    batch_id : int
        The stream's batch number.
    source, sha256 : str
        The batch's file or folder and its content hash.
    rejects_file : str
        Where the project keeps every reject.

    Examples
    --------
    >>> a = AddResult(pd.DataFrame({"pair_id": ["a", "b"], "queued": [True, False]}),
    ...               pd.DataFrame(columns=["source", "row", "pair_id", "column", "reason", "detail"]),
    ...               round=4, batch_id=2, source="new.csv")
    >>> print(a.summary())
    new.csv: batch 2: 2 pairs added, 1 queued for review (round 4), 1 passed, 0 rejected
    """

    table: pd.DataFrame = field(repr=False)
    rejects: pd.DataFrame = field(repr=False)
    round: int | None
    batch_id: int
    source: str
    sha256: str = ""
    rejects_file: str = ""

    def __len__(self) -> int:
        return len(self.table)

    @property
    def n_queued(self) -> int:
        """Arrivals queued for review."""
        return int(self.table["queued"].sum())

    def summary(self, *, n: int = 10) -> str:
        """What ``mmcurate add`` prints: counts, then the first ``n`` rejects."""
        rejects = self.rejects.to_dict("records")
        lines = [f"{self.source}: batch {self.batch_id}: {len(self.table)} pairs added, {self.n_queued} "
                 f"queued for review" + (f" (round {self.round})" if self.round else "")
                 + f", {len(self.table) - self.n_queued} passed, {len(rejects)} rejected"]
        lines += [f"  rejected {rec['source']} row {rec['row']}: {rec['reason']} ({rec['column']}) "
                  f"{rec['detail']}" for rec in rejects[:n]]
        if len(rejects) > n:
            lines.append(f"  ... {len(rejects) - n} more in {self.rejects_file}")
        return "\n".join(lines)

    def brief(self, name: str, *, n: int = 5) -> list[str]:
        """What ``mmcurate stream`` logs for this batch (``name``: the arriving file's name)."""
        rejects = self.rejects.to_dict("records")
        lines = [f"{name}: batch {self.batch_id}: {len(self.table)} added, {self.n_queued} queued "
                 f"(round {self.round}), {len(rejects)} rejected"]
        lines += [f"  rejected row {rec['row']}: {rec['reason']} ({rec['column']}) {rec['detail']}"
                  for rec in rejects[:n]]
        if len(rejects) > n:
            lines.append(f"  ... {len(rejects) - n} more in {self.rejects_file}")
        return lines

    def __str__(self) -> str:
        return self.summary()
