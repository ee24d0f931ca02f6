"""Embedding a project: its model, the embedding run, failures set aside, the vectors and indexes."""

from __future__ import annotations

import os
from functools import cached_property
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd

from mmcurate._fileio import atomic_write_frame
from mmcurate.data import open_image
from mmcurate.embed.device import resolve_device
from mmcurate.embed.encoder import load_encoder
from mmcurate.embed.model import ModelSpec, resolve_model
from mmcurate.embed.run import embed_pairs
from mmcurate.embed.store import EmbeddingStore
from mmcurate.exceptions import ModelMismatchError, ProjectError
from mmcurate.project.files import ProjectFiles
from mmcurate.project_index import ProjectIndex


class ProjectEmbeddings(ProjectFiles):
    """The embedding part of :class:`~mmcurate.project.Project`."""

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
        Usage (not run as a doctest: it needs data of your own)::

            proj.set_model(ModelSpec("local-dir:/models/my-clip", None))
            # True
        """
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
            if self.has_ledger() and len(self.ledger.heads()):
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
        path = self.embed_failures_path
        old = pd.read_csv(path) if path.is_file() else pd.DataFrame()
        new = pd.concat([old, pd.DataFrame(failures)], ignore_index=True)
        atomic_write_frame(new.drop_duplicates("pair_id", keep="last"), path)

    def _set_aside_failures(self, store: EmbeddingStore) -> None:
        """Move pairs that failed to embed and have no vectors out of the pairs table into
        ``rejects.csv`` (``row`` empty: no source row; reason from ``embed_failures.csv``), so one
        unreadable image never blocks rank, select or train. Caller holds the lock."""
        path = self.embed_failures_path
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
                           self.rejects_path)
        kept = self.pairs[~self.pairs["pair_id"].isin(set(failed["pair_id"]))]
        atomic_write_frame(kept.reset_index(drop=True), self.pairs_path)
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
        return ProjectIndex(self.index_dir, self.image_embeddings(), self.text_embeddings(),
                            fingerprint=self.embeddings_fingerprint())

    def embeddings_fingerprint(self) -> str:
        manifest = self.store.manifest() or {}
        ids = self.store.array_path("ids")
        stamp = ids.stat().st_mtime_ns if ids.is_file() else 0
        return f"{manifest.get('weights_sha256') or manifest.get('source')}:{len(self.pairs)}:{stamp}"
