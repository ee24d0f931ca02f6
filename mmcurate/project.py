"""The project directory: the unit a CLI command and a notebook both open.

Layout::

    PROJECT/
      project.json          kind (images | external), source, image_root, columns, model spec
      pairs.parquet         the PairTable: pair_id, image, caption, extra columns (row i = vector i)
      rejects.csv           rows that did not make it in: source, row, pair_id, column, reason, detail
                            (``row`` empty for pairs set aside by ``embed``)
      embeddings/           manifest.json, parts/ while embedding, image.npy / text.npy / ids.npy
      embed_failures.csv    pairs whose image could not be read (or gave non-finite vectors) at
                            embedding time; they move from pairs.parquet to rejects.csv
      index/                faiss indexes + fingerprint.json (rebuilt when embeddings change)
      labels.sqlite         rounds, batches and decisions (the ledger)
      heads/                head-NNNN.safetensors + .json per trained round
      stream/               stream-based selection (mmcurate.stream): state.json, log/, journal
      .lock                 write lock (fcntl): one writer at a time

Stages live in their own modules; this class only wires them to the directory.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
import time
from collections.abc import Iterator, Sequence
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd

from mmcurate._fileio import atomic_write_frame, atomic_write_json
from mmcurate.embed.model import ModelSpec
from mmcurate.embed.store import EmbeddingStore
from mmcurate.exceptions import DataError, ProjectError, ProjectLockedError

__all__ = ["Project", "create_project", "open_project", "project_lock"]

FORMAT_VERSION = 1
_CONFIG = "project.json"


class Project:
    """An mmcurate project directory.

    Examples
    --------
    >>> proj = open_project("my_project")  # doctest: +SKIP
    >>> proj.pairs.head()  # doctest: +SKIP
    >>> img = proj.image_embeddings()  # (N, D) float16; row i = pairs row i  # doctest: +SKIP
    """

    def __init__(self, root: str | os.PathLike) -> None:
        self.root = Path(root)
        cfg_path = self.root / _CONFIG
        if not cfg_path.is_file():
            raise ProjectError(
                f"{self.root} is not an mmcurate project (no {_CONFIG}); create one with "
                f"`mmcurate init {self.root} --pairs FILE --image-root DIR` or `--embeddings DIR`."
            )
        self.config: dict[str, Any] = json.loads(cfg_path.read_text(encoding="utf-8"))

    # -- basic properties -------------------------------------------------------------------
    @property
    def kind(self) -> str:
        """``images`` (pairs with image files, embedded here) or ``external`` (imported vectors)."""
        return str(self.config["kind"])

    @property
    def image_root(self) -> Path | None:
        root = self.config.get("image_root")
        return Path(root) if root else None

    @property
    def model_spec(self) -> ModelSpec | None:
        spec = self.config.get("model")
        return ModelSpec(spec["model"], spec.get("pretrained")) if spec else None

    @cached_property
    def pairs(self) -> pd.DataFrame:
        """The pairs table: ``pair_id``, ``image``, ``caption`` and any extra columns."""
        return pd.read_parquet(self.root / "pairs.parquet")

    @property
    def rejects(self) -> pd.DataFrame:
        path = self.root / "rejects.csv"
        return pd.read_csv(path) if path.is_file() and path.stat().st_size else pd.DataFrame()

    @property
    def store(self) -> EmbeddingStore:
        return EmbeddingStore(self.root / "embeddings")

    @cached_property
    def ledger(self):
        """The SQLite labels ledger (rounds, batches, decisions)."""
        from mmcurate.labels import Ledger

        return Ledger(self.root / "labels.sqlite")

    def refresh(self) -> None:
        """Forget the pairs table and faiss indexes read so far, so the next use reads the
        directory again (after a stage rewrote ``pairs.parquet`` or the vectors)."""
        for cached in ("pairs", "index"):
            self.__dict__.pop(cached, None)  # functools.cached_property keeps its value here

    def save_config(self) -> None:
        atomic_write_json(self.root / _CONFIG, self.config)

    # -- locking ----------------------------------------------------------------------------
    def lock(self, *, wait: bool = False) -> contextlib.AbstractContextManager[None]:
        """Hold the project's write lock (one writing process at a time)."""
        return project_lock(self.root, wait=wait)

    # -- embeddings -------------------------------------------------------------------------
    def embed(self, *, batch_size: int | None = None, num_workers: int | None = None,
              progress: bool = True, reembed: bool = False, allow_download: bool = False,
              allow_random: bool = False, device: str = "auto", precision: str = "auto",
              decode: str = "cpu", reduced_decode: bool = True):
        """Embed every pair that has no vectors yet (resumable); returns an ``EmbedReport``.

        ``device``: ``auto`` (CUDA if present, else CPU), ``cpu``, ``cuda``, ``cuda:N``, ``mps``;
        ``precision``: ``auto`` (bf16/fp16 autocast on CUDA, fp32 elsewhere), ``fp32``, ``fp16``,
        ``bf16`` (recorded in the manifest). ``batch_size`` defaults to 32 on CPU, 256 on CUDA.
        ``decode="gpu"`` decodes JPEGs with nvJPEG on the GPU. ``allow_random`` permits a model
        without pretrained weights (benchmarks only).
        """
        if self.kind == "external":
            raise ProjectError(f"{self.root} was built from imported embeddings; nothing to embed.")
        from mmcurate.data import open_image
        from mmcurate.embed.device import resolve_device
        from mmcurate.embed.encoder import load_encoder
        from mmcurate.embed.run import embed_pairs

        choice = resolve_device(device, precision=precision)  # fails fast, before the lock and model
        with self.lock():
            encoder = load_encoder(self.model_spec, allow_download=allow_download,
                                   allow_random=allow_random, weights_sha256=self.weights_sha256,
                                   device=choice)
            store = self.store
            store.bind(encoder.info, reembed=reembed)
            report = embed_pairs(self.pairs, store, encoder, image_root=self.image_root,
                                 open_image=open_image, batch_size=batch_size,
                                 num_workers=num_workers, progress=progress, decode=decode,
                                 reduced_decode=reduced_decode)
            self._record_failures(report.failures)
            self._set_aside_failures(store)
            if not store.missing(self.pairs["pair_id"].tolist()):
                store.compact(self.pairs["pair_id"].tolist())
        return report

    def set_model(self, spec: ModelSpec, *, reembed: bool = False, allow_download: bool = False) -> bool:
        """Switch the model that embeds this project (saved in ``project.json``); returns whether
        it changed.

        The weights are resolved first, so nothing changes when they are missing
        (:class:`~mmcurate.exceptions.ModelNotAvailableError`). Vectors of the old model are
        discarded at the next :meth:`embed` only with ``reembed``; a project with trained models
        (fitted on the old vectors) is not switched.

        Examples
        --------
        >>> proj.set_model(ModelSpec("local-dir:/models/my-clip", None))  # doctest: +SKIP
        True
        """
        from mmcurate.embed.model import resolve_model
        from mmcurate.exceptions import ModelMismatchError

        if self.kind == "external":
            raise ProjectError(f"{self.root} was built from imported embeddings; it has no model to switch.")
        if spec == self.model_spec:
            return False
        resolve_model(spec, allow_download=allow_download)
        manifest = self.store.manifest()
        if manifest and (manifest.get("model"), manifest.get("pretrained")) != (spec.model, spec.pretrained):
            if not reembed:
                raise ModelMismatchError(
                    f"{self.root} holds vectors of {manifest.get('model')} / {manifest.get('pretrained')}; "
                    f"add --reembed to discard them and embed with {spec.model}.")
            if (self.root / "labels.sqlite").is_file() and len(self.ledger.heads()):
                raise ProjectError(
                    f"{self.root} has models trained on the {manifest.get('model')} vectors; start a "
                    f"new project for {spec.model}: mmcurate init NEW_PROJECT --pairs SOURCE "
                    f"--model {spec.model}" + (f" --pretrained {spec.pretrained}" if spec.pretrained else ""))
        with self.lock():
            self.config["model"] = {"model": spec.model, "pretrained": spec.pretrained}
            self.save_config()
        return True

    @property
    def weights_sha256(self) -> str | None:
        """The sha256 the manifest records for the weights of the project's model, when that file
        is still the one hashed (same size and mtime); None otherwise (the caller hashes it).

        Lets every stage that loads the project's encoder skip re-hashing a large weights file.
        """
        manifest = self.store.manifest() or {}
        path = manifest.get("weights_path")
        spec = self.model_spec
        if path and spec and os.path.isfile(path) and manifest.get("model") == spec.model:
            stamp = manifest.get("weights_stamp")
            st = os.stat(path)
            if stamp == [st.st_size, int(st.st_mtime)]:
                return manifest.get("weights_sha256")
        return None

    def _record_failures(self, failures: list[dict[str, Any]]) -> None:
        if not failures:
            return
        path = self.root / "embed_failures.csv"
        old = pd.read_csv(path) if path.is_file() else pd.DataFrame()
        new = pd.concat([old, pd.DataFrame(failures)], ignore_index=True)
        atomic_write_frame(new.drop_duplicates("pair_id", keep="last"), path)

    def _set_aside_failures(self, store: EmbeddingStore) -> None:
        """Move pairs that failed to embed and have no vectors out of the pairs table into
        ``rejects.csv`` (``row`` empty: no source row; reason from ``embed_failures.csv``), so one
        unreadable image never blocks rank, select or train. Caller holds the lock."""
        path = self.root / "embed_failures.csv"
        if not path.is_file():
            return
        failures = pd.read_csv(path, dtype=str, keep_default_na=False).drop_duplicates("pair_id", keep="last")
        failures = failures.reindex(columns=["pair_id", "image", "reason", "detail"], fill_value="")
        stored = store.stored_ids()
        failed = failures[failures["pair_id"].isin(set(self.pairs["pair_id"])) &
                          ~failures["pair_id"].isin(stored)]
        if failed.empty:
            return
        records = pd.DataFrame({
            "source": self.config.get("source"), "row": pd.array([pd.NA] * len(failed), dtype="Int64"),
            "pair_id": failed["pair_id"].to_numpy(), "column": "image",
            "reason": failed["reason"].replace("", "unreadable_image").to_numpy(),
            "detail": [f"set aside at embedding ({img}): {d}; fix the image and add the pair again "
                       f"(mmcurate add)" for img, d in zip(failed["image"], failed["detail"])],
        })
        old = self.rejects
        atomic_write_frame(pd.concat([old, records], ignore_index=True) if len(old) else records,
                           self.root / "rejects.csv")
        kept = self.pairs[~self.pairs["pair_id"].isin(set(failed["pair_id"]))]
        atomic_write_frame(kept.reset_index(drop=True), self.root / "pairs.parquet")
        self.refresh()

    @property
    def n_embedded(self) -> int:
        ids = set(self.pairs["pair_id"])
        return len(ids & self.store.stored_ids())

    def image_embeddings(self) -> npt.NDArray[np.float16]:
        """Image vectors ``(N, D)``, float16, L2-normalised, memory-mapped; row i = pairs row i."""
        return self.store.load("image", self.pairs["pair_id"].tolist())

    def text_embeddings(self) -> npt.NDArray[np.float16]:
        """Caption vectors ``(N, D)``, float16, L2-normalised, memory-mapped; row i = pairs row i."""
        return self.store.load("text", self.pairs["pair_id"].tolist())

    @cached_property
    def index(self):
        """faiss indexes over the image and caption vectors (built once, saved under index/)."""
        from mmcurate.project_index import ProjectIndex

        return ProjectIndex(self.root / "index", self.image_embeddings(), self.text_embeddings(),
                            fingerprint=self.embeddings_fingerprint())

    def embeddings_fingerprint(self) -> str:
        manifest = self.store.manifest() or {}
        ids = self.root / "embeddings" / "ids.npy"
        stamp = ids.stat().st_mtime_ns if ids.is_file() else 0
        return f"{manifest.get('weights_sha256') or manifest.get('source')}:{len(self.pairs)}:{stamp}"

    # -- ranking -----------------------------------------------------------------------------
    def rank(self, strategy: str | Sequence[str] | None = None, *,
             strategies: Sequence[str] | None = None, k: int = 10, random_state: int = 0,
             options: dict[str, Any] | None = None, engine: str = "local",
             address: str | None = None) -> pd.DataFrame:
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
        DataFrame
            ``pair_id``, ``score`` and one column per signal, row i = pair i; provenance in
            ``df.attrs["provenance"]``.

        Examples
        --------
        >>> ranked = proj.rank(strategy="margin")  # doctest: +SKIP
        >>> ranked.nlargest(10, "score")  # doctest: +SKIP
        """
        from mmcurate.rounds import rank_project

        if strategy is not None and strategies is not None:
            raise ValueError(f"give strategy= or strategies=, not both; got strategy={strategy!r} and "
                             f"strategies={strategies!r}")
        names = [strategy] if isinstance(strategy, str) else strategy if strategy is not None else strategies
        if names is None:
            return rank_project(self, k=k, random_state=random_state, options=options, engine=engine,
                                address=address)
        return rank_project(self, list(names), k=k, random_state=random_state, options=options,
                            engine=engine, address=address)

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
            "embed_failures": _count_rows(self.root / "embed_failures.csv"),
            "model": {
                "name": manifest.get("model") or spec.get("model"),
                "pretrained": manifest.get("pretrained") or spec.get("pretrained"),
                "weights_path": manifest.get("weights_path"),
                "weights_sha256": manifest.get("weights_sha256"),
                "kind": manifest.get("kind") or ("external" if self.kind == "external" else None),
                "dim": manifest.get("dim"),
            },
        }
        if (self.root / "labels.sqlite").is_file():
            from mmcurate.rounds import rounds_status

            rounds = rounds_status(self)
            out["model"].update(rounds.pop("model"))  # + which trained model ranks (in_use, latest, ...)
            out.update(rounds)
        return out


@contextlib.contextmanager
def project_lock(root: str | os.PathLike, *, wait: bool = False) -> Iterator[None]:
    """Hold the write lock of the project directory ``root`` (created if missing).

    Raises :class:`ProjectLockedError` when another process holds it and ``wait`` is False.
    """
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    with open(root / ".lock", "a+") as fh:
        flags = fcntl.LOCK_EX if wait else fcntl.LOCK_EX | fcntl.LOCK_NB
        try:
            fcntl.flock(fh.fileno(), flags)
        except BlockingIOError as err:
            raise ProjectLockedError(
                f"another mmcurate process is writing {root} (lock {root / '.lock'}); "
                f"wait for it to finish."
            ) from err
        fh.seek(0)
        fh.truncate()
        fh.write(f"{os.getpid()}\n")
        fh.flush()
        try:
            yield
        finally:
            fcntl.flock(fh.fileno(), fcntl.LOCK_UN)


def _count_rows(path: Path) -> int:
    return len(pd.read_csv(path)) if path.is_file() else 0


def open_project(root: str | os.PathLike) -> Project:
    """Open an existing project directory.

    Examples
    --------
    >>> proj = open_project("my_project")  # doctest: +SKIP
    """
    return Project(root)


def create_project(
    root: str | os.PathLike,
    *,
    pairs: str | os.PathLike | None = None,
    image_root: str | os.PathLike | None = None,
    embeddings: str | os.PathLike | None = None,
    model: ModelSpec | None = None,
    columns: dict[str, str] | None = None,
    fmt: str | None = None,
    check_images: bool | str = True,
    progress: bool = True,
    overwrite: bool = False,
) -> Project:
    """Create a project from a pairs source (``pairs=``) or an embedding folder (``embeddings=``).

    Validation problems never stop the load: bad rows go to ``rejects.csv`` with file, row and
    reason. The new source is read and validated before anything of an old project is touched;
    with ``overwrite`` the old state is then moved to ``replaced-<time>/``, all under the project
    lock (a running ``embed`` makes this raise :class:`ProjectLockedError`). Returns the opened
    project.

    Examples
    --------
    >>> proj = create_project("proj", pairs="captions.csv", image_root="images/")  # doctest: +SKIP
    >>> proj = create_project("proj2", embeddings="laion_embeddings/")  # doctest: +SKIP
    """
    if (pairs is None) == (embeddings is None):
        raise ValueError("give exactly one of pairs= (a pairs file/folder) or embeddings= (a folder)")
    root = Path(root)
    with project_lock(root):
        if (root / _CONFIG).exists() and not overwrite:
            raise ProjectError(f"{root} already holds a project; open it, or pass overwrite=True (CLI: "
                               f"--force) to start over (the old state is moved to replaced-<time>/).")
        config: dict[str, Any] = {"format_version": FORMAT_VERSION,
                                  "created": time.strftime("%FT%TZ", time.gmtime())}
        staging = root / f".incoming-{os.getpid()}"
        try:
            if embeddings is not None:
                table, rejects = _import_source(config, embeddings, staging)
            else:
                table, rejects, config = _load_source(config, pairs, image_root, columns, fmt,
                                                      check_images, progress, model)
            _set_aside(root)  # an old project (overwrite) or leftovers of a failed init
            if (staging / "embeddings").is_dir():
                os.replace(staging / "embeddings", root / "embeddings")
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        atomic_write_frame(table.reset_index(drop=True), root / "pairs.parquet")
        atomic_write_frame(rejects, root / "rejects.csv")
        atomic_write_json(root / _CONFIG, config)
    return Project(root)


def _import_source(config: dict[str, Any], embeddings, staging: Path):
    """Import an embedding folder into ``staging/embeddings``; the pairs and rejects tables."""
    from mmcurate.embed.importer import import_embedding_folder

    result = import_embedding_folder(embeddings, EmbeddingStore(staging / "embeddings"))
    if result.pairs.empty:
        raise DataError(f"{embeddings} holds no usable pairs ({len(result.rejects)} rejected); "
                        f"expected at least one row with finite vectors and a caption")
    config.update(kind="external", source=str(Path(embeddings).resolve()), image_root=None, model=None)
    return result.pairs, result.rejects


_DERIVED = ("embeddings", "index", "labels.sqlite", "heads", "state.json", "embed_failures.csv",
            "stream", "stream_state.json")


def _set_aside(root: Path) -> Path | None:
    """Starting over: move the old project's state into ``replaced-<time>/`` (never deleted).

    Stored vectors are keyed by pair_id, so keeping them would silently reuse vectors of changed
    captions; labels and heads belong to the old pairs. Moving is a rename, so it is cheap.
    """
    present = [root / name for name in (*_DERIVED, "pairs.parquet", "rejects.csv", _CONFIG)
               if (root / name).exists()]
    if not present:
        return None
    aside = root / time.strftime("replaced-%Y%m%dT%H%M%S")
    n = 0
    while aside.exists():
        n += 1
        aside = root / (time.strftime("replaced-%Y%m%dT%H%M%S") + f"-{n}")
    aside.mkdir()
    for path in present:
        os.replace(path, aside / path.name)
    return aside


def _load_source(config, pairs, image_root, columns, fmt, check_images, progress, model):
    from mmcurate.data import Columns, load_pairs

    cols = Columns(**(columns or {}))
    src = Path(pairs)
    if image_root is None:
        image_root = src if src.is_dir() else src.parent
    result = load_pairs(src, image_root=image_root, columns=cols, fmt=fmt,
                        check_images=check_images, progress=progress)
    spec = model or ModelSpec()
    config.update(kind="images", source=str(src.resolve()), image_root=str(Path(image_root).resolve()),
                  columns={"id": cols.id, "image": cols.image, "caption": cols.caption},
                  model={"model": spec.model, "pretrained": spec.pretrained})
    return result.pairs, result.rejects, config
