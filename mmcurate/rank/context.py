"""The arrays of one ranking: embeddings → neighbours → alignment features → calibrator → ….

:class:`RankContext` computes each array a strategy may read lazily and at most once (its names:
:meth:`RankContext.array_names`); an engine that computed some elsewhere hands them in with
:meth:`RankContext.provide`, or builds a context of them alone with
:meth:`RankContext.from_arrays`. A strategy reads a :class:`ContextView`: only the arrays it
declares (:attr:`mmcurate.rank.Strategy.needs`) and the ranking's parameters.

Neighbour searches go through :mod:`mmcurate.index` and :meth:`RankContext.neighbours`, which runs
each distinct search once per ranking and shares it among the strategies: image→text and
text→image (the alignment features and, by default, the neighbourhood agreements), joint-space
neighbours for ``density`` (exact up to ``APPROXIMATE_FROM`` pairs; above it taken from the two
cross-modal searches' candidates, :attr:`RankContext.density_candidates`); image→image and
text→text only with ``agreement="same"``. Inputs may
be float16 memory maps; they are read in chunks.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping
from functools import cached_property
from typing import Any

import numpy as np
import numpy.typing as npt

from mmcurate import index as ix
from mmcurate._fileio import iter_chunks
from mmcurate.learn import Validation, fit_validated
from mmcurate.signals import alignment, committee, crossmodal, density

__all__ = ["APPROXIMATE_FROM", "FROM_FEATURES", "ContextView", "RankContext", "density_candidates",
           "joint_vectors", "selection_vectors", "without_own"]


def _retrieval_rows(own: np.ndarray, sims: np.ndarray, idx: np.ndarray, temperature: float) -> np.ndarray:
    """Softmax over the own item and its k alternatives (own skipped if among them): ``(N, k+1)``."""
    rows = np.arange(len(own))[:, None]
    alt = np.where((idx >= 0) & (idx != rows), sims, -np.inf)
    logits = np.column_stack([own, alt]) / temperature
    logits -= logits.max(1, keepdims=True)
    e = np.exp(logits)
    return e / e.sum(1, keepdims=True)


def without_own(idx: np.ndarray, k: int, *, offset: int = 0) -> np.ndarray:
    """Each row's first ``k`` neighbours other than its own pair (row ``offset + i``), -1 where fewer.

    Applied to the image→text neighbours it gives the captions the image retrieves besides its own,
    which :attr:`RankContext.agree_v` compares the pair's caption with (``agreement="cross"``).
    """
    keep = idx != offset + np.arange(len(idx))[:, None]
    order = np.argsort(~keep, axis=1, kind="stable")[:, :k]
    return np.where(np.take_along_axis(keep, order, 1), np.take_along_axis(idx, order, 1), -1)


APPROXIMATE_FROM = ix.EXACT_MAX
"""Pools larger than this use the reduced, clustered neighbour search (exact below); the same
threshold as :func:`mmcurate.index.build_index`'s flat/IVF choice."""

FROM_FEATURES = frozenset({"calibrator", "proba", "design", "hessian", "committee"})
"""Arrays a context derives from ``features`` and the labels alone (no vectors, no search): an
engine that provides ``features`` serves these too."""


class ContextView:
    """What one strategy may read of a :class:`RankContext`: the arrays it declares and the
    ranking's parameters (:attr:`PARAMETERS`). Reading anything else raises ``AttributeError``, so a
    strategy's declaration stays complete.

    Examples
    --------
    >>> ctx = RankContext.from_arrays(3, {"proba": np.array([0.2, 0.5, 0.9])}, indices_labeled=None,
    ...                               labels=None, k=2, random_state=0)
    >>> view = ctx.view(["proba"], reader="strategy 'margin'")
    >>> view.proba.tolist(), view.n
    ([0.2, 0.5, 0.9], 3)
    >>> view.cosine
    Traceback (most recent call last):
    AttributeError: strategy 'margin' reads 'cosine', which it does not declare (needs: proba)
    """

    PARAMETERS = frozenset({"n", "k", "random_state", "indices_labeled", "labels"})
    __slots__ = ("_ctx", "_names", "_reader")

    def __init__(self, ctx: RankContext, names: Collection[str], *, reader: str) -> None:
        unknown = sorted(set(names) - set(ctx.array_names()))
        if unknown:
            raise ValueError(f"{reader} declares {unknown}, which are not context arrays; known: "
                             f"{', '.join(ctx.array_names())}")
        self._ctx, self._names, self._reader = ctx, tuple(names), reader

    def __getattr__(self, name: str) -> Any:
        if name in self._names or name in self.PARAMETERS:
            return getattr(self._ctx, name)
        raise AttributeError(f"{self._reader} reads {name!r}, which it does not declare "
                             f"(needs: {', '.join(self._names) or 'nothing'})")


class _NoVectors:
    """The vectors of a context made of precomputed arrays: it has a length and nothing else, so
    an array that would need the vectors raises instead of being computed from a placeholder."""

    def __init__(self, n: int) -> None:
        self._n = int(n)

    def __len__(self) -> int:
        return self._n

    def _refuse(self) -> ValueError:
        return ValueError("this ranking context was built from precomputed arrays, without vectors: "
                          "an array it was not given (other than those derived from features) "
                          "cannot be computed here; provide it, or rank with the vectors")

    def __getitem__(self, key: Any) -> Any:
        raise self._refuse()

    def __array__(self, *args: Any, **kwargs: Any) -> Any:
        raise self._refuse()

    @property
    def shape(self) -> tuple[int, ...]:
        raise self._refuse()


class RankContext:
    """Arrays shared by the strategies of one ranking, computed lazily and at most once.

    Up to ``APPROXIMATE_FROM`` pairs every neighbour search is exact in the full embedding space.
    Above it (``approximate=None`` decides by size) the *candidates* are found in a reduced space:
    vectors projected to ``reduced_dim`` dimensions (uncentred PCA fitted on both modalities,
    :func:`mmcurate.index.fit_projection`) and searched with :class:`mmcurate.index.ClusteredIndex`;
    the image↔text candidates are re-scored with the full vectors inside the search
    (``ClusteredIndex.search(full=)``: each query group's candidate rows are read once, by offset),
    so the similarities the features compare (a pair's own cosine against its alternatives') and
    the retrieval softmaxes are exact; only which neighbours were found is approximate.
    Neighbourhood agreements (means over k neighbours) and density's joint-space neighbours (chosen
    among the cross-modal candidates: :attr:`density_candidates`) stay in the reduced space
    (full-space ones would need ``N·k`` more full rows read for little gain; the README's "Large
    pools" section has the figures). ``cosine`` (and so ``clip_score``) is always
    exact. Float16 memory maps are read in chunks (the re-scoring reads only the candidate rows); no
    full-precision copy is made.

    ``agreement``: ``"cross"`` (default) takes the neighbourhood agreements from the image→text and
    text→image neighbours the features already need (``agree_v``: the pair's caption against the
    other captions its image retrieves; ``agree_t`` likewise), so ``disagreement`` costs two
    searches; ``"same"`` searches image→image and text→text for them (four searches).

    Why the re-scoring, and the defaults :data:`mmcurate.index.REDUCED_DIM` = 128 and
    :data:`mmcurate.index.NPROBE` = 2: measured in the README ("Large pools: how neighbours are
    searched"), on ``scripts/bench_select.py``'s data.
    """

    def __init__(self, image_embeddings, text_embeddings, *, indices_labeled, labels, k: int,
                 random_state: int, temperature: float = 0.05, n_members: int = 5,
                 approximate: bool | None = None, reduced_dim: int = ix.REDUCED_DIM, nprobe: int = ix.NPROBE,
                 searcher: Callable[..., tuple[np.ndarray, np.ndarray]] | None = None,
                 calibrator: alignment.Calibrator | str | None = None, agreement: str = "cross") -> None:
        if agreement not in ("same", "cross"):
            raise ValueError(f"agreement must be 'same' or 'cross'; got {agreement!r}")
        self.agreement = agreement
        self.image, self.text = image_embeddings, text_embeddings
        self.n = len(image_embeddings)
        self.k = int(min(k, max(self.n - 1, 1)))
        self.indices_labeled = np.asarray(indices_labeled if indices_labeled is not None else [], np.int64)
        self.labels = np.asarray(labels if labels is not None else [], np.int64)
        self.random_state = random_state
        self.temperature = temperature
        self.n_members = n_members
        self.approximate = self.n > APPROXIMATE_FROM if approximate is None else bool(approximate)
        self.reduced_dim = reduced_dim
        self.nprobe = nprobe
        self.searcher = searcher
        if calibrator is not None and not isinstance(calibrator, str):
            self.__dict__["calibrator"] = calibrator  # a validated model's (mmcurate.learn): as is
        elif calibrator not in (None, "prior"):
            raise ValueError(f"calibrator must be a Calibrator, 'prior' or None; got {calibrator!r}")
        self.use_prior = calibrator == "prior"
        self._validation: Validation | None = None
        self._indexes: dict[str, ix.ClusteredIndex] = {}
        self._searches: dict[tuple[str, str, bool, int], tuple[np.ndarray, np.ndarray]] = {}
        self.search_counts: dict[tuple[str, str, bool, int], int] = {}
        """Searches run, by ``(query, database, exclude_self, k)`` (each should be 1)."""

    @classmethod
    def from_arrays(cls, n: int, arrays: Mapping[str, Any], **params: Any) -> RankContext:
        """A context of ``n`` pairs holding only ``arrays`` (an engine's) and no vectors.

        ``params`` are the constructor's keywords (``indices_labeled``, ``labels``, ``k``,
        ``random_state`` ...). Arrays not given are computed only when they derive from ones that
        were (:data:`FROM_FEATURES`, from ``features``); any other raises ``ValueError``.
        """
        ctx = cls(_NoVectors(n), _NoVectors(n), **params)
        ctx.provide(**arrays)
        return ctx

    @classmethod
    def array_names(cls) -> tuple[str, ...]:
        """The arrays a strategy may read (each computed lazily, once, unless provided)."""
        return tuple(name for name, v in vars(cls).items() if isinstance(v, cached_property))

    def provide(self, **arrays: Any) -> None:
        """Set precomputed arrays (e.g. ``features``, ``agree_v`` from a distributed engine)."""
        unknown = sorted(set(arrays) - set(self.array_names()))
        if unknown:
            raise ValueError(f"cannot provide {unknown}; known arrays: {', '.join(self.array_names())}")
        self.__dict__.update(arrays)

    def view(self, names: Collection[str], *, reader: str) -> ContextView:
        """The arrays ``names`` (and the parameters) for ``reader``, e.g. ``"strategy 'margin'"``."""
        return ContextView(self, names, reader=reader)

    def _space(self, name: str):
        return {"image": self.image_space, "text": self.text_space, "joint": self.joint_space}[name]

    # -- the space neighbours live in ------------------------------------------------------------
    @cached_property
    def basis(self) -> np.ndarray:
        return ix.fit_projection(self.image, self.text, dim=self.reduced_dim, random_state=self.random_state)

    @cached_property
    def _reduced(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Both reduced spaces and each pair's cosine, from one read of the vectors."""
        return ix.project_pairs(self.image, self.text, self.basis)

    @cached_property
    def image_space(self):
        return self._reduced[0] if self.approximate else self.image

    @cached_property
    def text_space(self):
        return self._reduced[1] if self.approximate else self.text

    @cached_property
    def joint_space(self) -> np.ndarray:
        return joint_vectors(self.image_space, self.text_space)

    @property
    def own(self) -> np.ndarray:
        """Each pair's own similarity, compared with its alternatives' (= ``cosine``: both exact)."""
        return self.cosine

    def _full(self, name: str):
        return {"image": self.image, "text": self.text}.get(name)

    def _knn(self, query: str, database: str, k: int, *, exclude_self: bool = False):
        queries = self._space(query)
        if not self.approximate:
            return ix.knn(queries, self._space(database), k, exclude_self=exclude_self)
        index = self._index(database)
        # density's joint-space similarities stay reduced; image/text candidates are re-scored in full
        full = None if database == "joint" else (self._full(query), self._full(database))
        # cross-modal queries are assigned to cells with their own modality's mean removed
        mean = None if query == database else ix.sample_mean(queries, random_state=self.random_state)
        if self.searcher is not None:
            return self.searcher(index, queries, k, exclude_self=exclude_self, full=full, query_mean=mean)
        return index.search(queries, k, nprobe=self.nprobe, exclude_self=exclude_self, full=full,
                            query_mean=mean)

    def _index(self, database: str) -> ix.ClusteredIndex:
        if database not in self._indexes:
            self._indexes[database] = ix.ClusteredIndex(self._space(database), random_state=self.random_state)
        return self._indexes[database]

    def neighbours(self, query: str, database: str, k: int, *, exclude_self: bool = False
                   ) -> tuple[np.ndarray, np.ndarray]:
        """``(sims, indices)`` of the ``k`` nearest ``database`` rows of each pair's ``query`` vector.

        ``query`` / ``database``: ``"image"``, ``"text"`` or ``"joint"``. Every search of a ranking goes
        through here and runs once: a result is kept under ``(query, database, k, exclude_self)``
        and a request for fewer neighbours of the same kind is served from a wider result (its first
        ``k`` columns); :attr:`search_counts` counts the searches actually run.
        """
        kind = (query, database, bool(exclude_self))
        wider = [key for key in self._searches if key[:3] == kind and key[3] >= k]
        if wider:
            sims, idx = self._searches[min(wider, key=lambda key: key[3])]
            return sims[:, :k], idx[:, :k]
        result = self._knn(query, database, k, exclude_self=exclude_self)
        self._searches[(*kind, k)] = result
        self.search_counts[(*kind, k)] = self.search_counts.get((*kind, k), 0) + 1
        return result

    @property
    def i2t(self) -> tuple[np.ndarray, np.ndarray]:
        return self.neighbours("image", "text", self.k + 1)

    @property
    def t2i(self) -> tuple[np.ndarray, np.ndarray]:
        return self.neighbours("text", "image", self.k + 1)

    @property
    def i2i(self) -> tuple[np.ndarray, np.ndarray]:
        return self.neighbours("image", "image", self.k, exclude_self=True)

    @property
    def t2t(self) -> tuple[np.ndarray, np.ndarray]:
        return self.neighbours("text", "text", self.k, exclude_self=True)

    @cached_property
    def cosine(self) -> np.ndarray:
        if "_reduced" in self.__dict__:  # read with the projection already (the same numbers)
            return self._reduced[2]
        return ix.rowwise_cosine(self.image, self.text)

    @cached_property
    def features(self) -> alignment.AlignmentFeatures:
        i2t, t2i = self.i2t, self.t2i  # first: a large pool's projection reads the cosine too
        return alignment.alignment_features(self.cosine, *i2t, *t2i, temperature=self.temperature,
                                            own=self.own)

    @property
    def validation(self) -> Validation | None:
        """The gate's verdict on a calibrator fitted here from the labels (None: none fitted)."""
        self.calibrator  # noqa: B018 - fitting sets the verdict
        return self._validation

    @cached_property
    def calibrator(self) -> alignment.Calibrator:
        """The prior, or a calibrator fitted on the labels and kept only if it passes the gate."""
        prior = alignment.prior_calibrator(self.features)
        if self.use_prior or len(self.indices_labeled) == 0:
            return prior
        fitted, verdict, _ = fit_validated(self.features, self.indices_labeled, self.labels,
                                           random_state=self.random_state)
        self._validation = verdict
        if verdict.accepted:
            return fitted
        return alignment.Calibrator(prior.mean, prior.scale, prior.weights, len(self.indices_labeled))

    @cached_property
    def design(self) -> np.ndarray:
        return self.calibrator.design(self.features)

    @cached_property
    def proba(self) -> np.ndarray:
        return self.calibrator.predict_proba(self.features)

    @cached_property
    def hessian(self) -> np.ndarray:
        return alignment.hessian(self.calibrator, self.features, self.indices_labeled)

    @cached_property
    def committee(self) -> np.ndarray:
        return committee.fit_committee(self.features, self.indices_labeled, self.labels,
                                       n_members=self.n_members, random_state=self.random_state)

    @cached_property
    def retrieval_i2t(self) -> np.ndarray:
        return _retrieval_rows(self.own, *self.i2t, self.temperature)

    @cached_property
    def retrieval_t2i(self) -> np.ndarray:
        return _retrieval_rows(self.own, *self.t2i, self.temperature)

    @property
    def density_candidates(self) -> np.ndarray:
        """Above ``APPROXIMATE_FROM``: the pairs ``density`` looks for its joint-space neighbours
        among, ``(N, 2k)``: the other captions each image retrieves and the other images each
        caption retrieves (the two cross-modal searches the features ran), re-scored in the
        joint space (:func:`mmcurate.index.best_candidates`), so density needs no search of its own."""
        return density_candidates(self.i2t[1], self.t2i[1], self.k)

    @cached_property
    def agree_v(self) -> np.ndarray:
        neighbours = self.i2i[1] if self.agreement == "same" else without_own(self.i2t[1], self.k)
        return crossmodal.neighbourhood_agreement(self.image_space, neighbours, self.text_space)

    @cached_property
    def agree_t(self) -> np.ndarray:
        neighbours = self.t2t[1] if self.agreement == "same" else without_own(self.t2i[1], self.k)
        return crossmodal.neighbourhood_agreement(self.text_space, neighbours, self.image_space)

    @cached_property
    def representativeness(self) -> np.ndarray:
        if self.approximate:
            joint = self.joint_space
            sims, idx = ix.best_candidates(joint, joint, self.density_candidates, self.k)
        else:
            sims, idx = self.neighbours("joint", "joint", self.k, exclude_self=True)
        mask = np.zeros(self.n, bool)
        mask[self.indices_labeled] = True
        return density.representativeness(sims, idx, labeled_mask=mask)


def density_candidates(i2t_idx: np.ndarray, t2i_idx: np.ndarray, k: int, *, offset: int = 0) -> np.ndarray:
    """``(N, 2k)`` candidate joint-space neighbours of rows ``offset + i``: the first ``k`` other
    rows of each image→text and text→image neighbour list (:func:`without_own`), repeats kept
    (:func:`mmcurate.index.best_candidates` drops them)."""
    return np.concatenate([without_own(i2t_idx, k, offset=offset), without_own(t2i_idx, k, offset=offset)], 1)


def joint_vectors(image_embeddings, text_embeddings, *, chunk: int = 65536) -> npt.NDArray[np.float32]:
    """Normalised image + caption vector of each pair, float32 ``(N, D)`` (the joint space)."""
    out = np.empty(image_embeddings.shape, dtype=np.float32)
    for (s, v), (_, t) in zip(iter_chunks(image_embeddings, chunk), iter_chunks(text_embeddings, chunk)):
        v = v + t
        out[s : s + len(v)] = v / np.maximum(np.linalg.norm(v, axis=1, keepdims=True), 1e-12)
    return out


def selection_vectors(image_embeddings, text_embeddings, *, max_dim: int = 128,
                      random_state: int = 0) -> npt.NDArray[np.float32]:
    """Joint vectors for diversity selection; above ``APPROXIMATE_FROM`` pairs projected to ``max_dim``."""
    if len(image_embeddings) <= APPROXIMATE_FROM:
        return joint_vectors(image_embeddings, text_embeddings)
    basis = ix.fit_projection(image_embeddings, text_embeddings, dim=max_dim, random_state=random_state)
    return joint_vectors(ix.project(image_embeddings, basis), ix.project(text_embeddings, basis))
