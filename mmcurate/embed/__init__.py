"""Embedding stage: the open_clip encoder, the float16 embedding store and embedding import.

This package is the only place that imports open_clip; torch is imported lazily inside functions
so that ``import mmcurate.embed`` stays cheap.
"""

from __future__ import annotations

from mmcurate.embed.encoder import load_encoder
from mmcurate.embed.importer import ImportResult, import_embedding_folder
from mmcurate.embed.model import DEFAULT_MODEL, DEFAULT_PRETRAINED, ModelSpec, resolve_model
from mmcurate.embed.store import EmbeddingStore

__all__ = [
    "DEFAULT_MODEL",
    "DEFAULT_PRETRAINED",
    "EmbeddingStore",
    "ImportResult",
    "ModelSpec",
    "import_embedding_folder",
    "load_encoder",
    "resolve_model",
]

