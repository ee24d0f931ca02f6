"""The project directory: the unit a CLI command and a notebook both open.

Layout::

    PROJECT/
      project.json          kind (images | external), source, image_root, columns, model spec
      pairs.parquet         the PairTable: pair_id, image, caption, extra columns (row i = vector i)
      rejects.csv           rows that did not make it in: source, row, pair_id, column, reason, detail
                            (``row`` empty for pairs set aside by ``embed``)
      embeddings/           manifest.json, parts/ while embedding, image.npy / text.npy / ids.npy,
                            checksums.json (verified on open, fully by ``mmcurate check``)
      embed_failures.csv    pairs whose image could not be read (or gave non-finite vectors) at
                            embedding time; they move from pairs.parquet to rejects.csv
      index/                faiss indexes + fingerprint.json (rebuilt when embeddings change)
      labels.sqlite         rounds, batches and decisions (the ledger)
      heads/                head-NNNN.safetensors + model-NNNN.json per trained round
      state.json            the last ranking's noise estimate (what ``status`` reports)
      duplicates.parquet    duplicate and boilerplate groups (+ duplicates.json, duplicate_splits.json)
      stream/               stream-based selection (mmcurate.stream): state.json, log/, journal
      .cache/               derived files, never backed up (the review page's reduced images)
      .lock                 write lock (fcntl): one writer at a time

Each name is spelled once, in :class:`~mmcurate.project.layout.ProjectLayout`; every stage reaches
a file through it (``proj.ledger_path``, ``proj.has_ledger()``, ...).

Stages live in their own modules; :class:`Project` only wires them to the directory.

Modules: :mod:`~mmcurate.project.create` (:func:`create_project`: read and validate a source,
start over safely), :mod:`~mmcurate.project.lock` (:func:`project_lock`),
:mod:`~mmcurate.project.layout` (where each file lives), :mod:`~mmcurate.project.files` (the
directory's files: config, pairs, rejects, store, ledger),
:mod:`~mmcurate.project.embedding` (embedding the pairs, the model, the vectors and indexes),
:mod:`~mmcurate.project.directory` (:class:`Project`: all of them, plus rank and status;
:func:`open_project`).
"""

from mmcurate.project.create import FORMAT_VERSION as FORMAT_VERSION
from mmcurate.project.create import create_project
from mmcurate.project.directory import Project, open_project
from mmcurate.project.lock import project_lock

__all__ = ["Project", "create_project", "open_project", "project_lock"]
