"""mmcurate: curate image-caption datasets with CLIP embeddings and active learning."""

from __future__ import annotations

import importlib

__version__ = "0.1.0"

__all__ = ["__version__", "create_project", "open_project", "register_format", "register_selector",
           "register_strategy"]

_REGISTER = {"register_strategy": "mmcurate.rank", "register_selector": "mmcurate.select",
             "register_format": "mmcurate.data"}
"""The doors for your own strategies, selectors and input formats, and the module each lives in."""


def __getattr__(name: str):  # lazy: keep `import mmcurate` light (no torch, no faiss)
    if name in ("open_project", "create_project", "Project"):
        from mmcurate import project  # lazy: `import mmcurate` loads nothing

        return getattr(project, name)
    if name in _REGISTER:
        return getattr(importlib.import_module(_REGISTER[name]), name)
    raise AttributeError(f"module 'mmcurate' has no attribute {name!r}")
