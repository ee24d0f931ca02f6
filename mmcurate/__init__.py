"""mmcurate: curate image-caption datasets with CLIP embeddings and active learning."""

from __future__ import annotations

__version__ = "0.1.0"

__all__ = ["__version__", "create_project", "open_project"]


def __getattr__(name: str):  # lazy: keep `import mmcurate` light (no torch, no faiss)
    if name in ("open_project", "create_project", "Project"):
        from mmcurate import project

        return getattr(project, name)
    raise AttributeError(f"module 'mmcurate' has no attribute {name!r}")
