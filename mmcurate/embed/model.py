"""Find CLIP weights on this machine and load an open_clip encoder, never downloading silently.

Model names follow open_clip:

- ``ViT-B-32`` + pretrained tag ``laion2b_s34b_b79k`` (the default): the weights must already be in
  the Hugging Face cache (``HF_HOME`` / ``HF_HUB_CACHE``) or open_clip's URL cache
  (``~/.cache/clip``); they got there the first time open_clip fetched them on a connected machine.
- ``ViT-B-32`` + a local weights file (``--pretrained /path/to/open_clip_pytorch_model.bin``).
- ``local-dir:DIR``: a folder holding ``open_clip_config.json`` (with ``model_cfg``) and a weights
  file. open_clip itself only logs a warning and returns a *random* model when the weights file is
  missing; we refuse instead.
- ``hf-hub:ORG/NAME``: resolved from the local Hugging Face cache.

Downloads happen only when asked for (``allow_download=True``, CLI ``--allow-download``); then the
hub's reachability is checked within a few seconds first, instead of open_clip's ~46 s of retries.
Otherwise every open_clip call that could reach the hub runs under :func:`hub_offline`, which holds
huggingface_hub offline for that call only and leaves the process as it found it.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from mmcurate._integrity import file_sha256
from mmcurate._util import temporarily
from mmcurate.exceptions import ModelNotAvailableError

__all__ = [
    "DEFAULT_MODEL",
    "DEFAULT_PRETRAINED",
    "ModelSpec",
    "ResolvedModel",
    "file_sha256",
    "format_fixes",
    "hub_offline",
    "import_open_clip",
    "resolve_model",
    "supply_weights_help",
    "trained_tiny_clip",
]

DEFAULT_MODEL = "ViT-B-32"
DEFAULT_PRETRAINED = "laion2b_s34b_b79k"
_WEIGHT_NAMES = (
    "open_clip_model.safetensors",
    "open_clip_pytorch_model.safetensors",
    "open_clip_pytorch_model.bin",
    "open_clip_pytorch_model.pth",
    "model.safetensors",
    "pytorch_model.bin",
)
TINY_VERSION = "v2"
"""The tiny stand-in model's recipe version (:mod:`mmcurate.embed.tiny`), part of its cache folder's name."""


def _checkout_root() -> Path | None:
    """The source checkout this package runs from (``<repo>/pyproject.toml`` beside ``mmcurate/``),
    or None for an installed copy (site-packages)."""
    repo = Path(__file__).resolve().parents[2]
    return repo if (repo / "pyproject.toml").is_file() and (repo / "mmcurate").is_dir() else None


def _cache_root() -> Path:
    """Where the tiny model lives: ``$MMCURATE_CACHE`` if set; else ``<checkout>/.cache/mmcurate`` when
    running from a source checkout (each clone has its own, so two clones can test at once, and
    nothing is shared through the home folder); else ``~/.cache/mmcurate`` for an installed package."""
    env = os.environ.get("MMCURATE_CACHE")
    if env:
        return Path(env).expanduser()
    checkout = _checkout_root()
    if checkout is not None:
        return checkout / ".cache" / "mmcurate"
    return Path.home() / ".cache" / "mmcurate"


def trained_tiny_clip(*, seed: int = 0) -> Path | None:
    """The tiny model folder when it is trained already (by ``mmcurate demo`` or the tests), else
    None; never trains."""
    folder = _cache_root() / f"tiny-clip-{TINY_VERSION}-seed{seed}"
    return folder if (folder / "open_clip_model.safetensors").is_file() else None


def supply_weights_help(project: str = "PROJECT", *, look_for_tiny: bool = True) -> str:
    """The ways to supply weights, as ``mmcurate`` command lines for ``project`` (every flag shown
    is one the named command accepts; tested). When the tiny stand-in model is trained already
    (``look_for_tiny``), its ``local-dir:`` path is given instead of ``mmcurate demo``."""
    fixes = [
        (f"mmcurate embed {project} --model ViT-B-32 --pretrained FILE", "a local weights file "
         "(.bin/.safetensors)"),
        (f"mmcurate embed {project} --model local-dir:DIR", "a folder: open_clip_config.json + weights"),
        (f"mmcurate embed {project} --allow-download", "on a connected machine; or copy its "
         "~/.cache/huggingface here"),
        (f"mmcurate init {project} --force --embeddings DIR", "or import existing embeddings"),
    ]
    tiny = None
    if look_for_tiny:
        tiny = trained_tiny_clip()
    fixes.append((f"mmcurate embed {project} --model local-dir:{tiny}", "offline: the tiny stand-in model "
                  "the demo trained (not CLIP)") if tiny else
                 ("mmcurate demo", "offline: trains a tiny stand-in model (not CLIP)"))
    return format_fixes("Supply weights with one of:", fixes)


def format_fixes(title: str, fixes: list[tuple[str, str]]) -> str:
    """``title`` then one aligned ``command  # why`` line per fix."""
    width = max(len(cmd) for cmd, _ in fixes)
    return "\n".join([title, *(f"  {cmd:<{width}}  # {why}" for cmd, why in fixes)])


_HOW_TO = supply_weights_help(look_for_tiny=False)  # the CLI gives its own, with the tiny model's path


@dataclass(frozen=True)
class ModelSpec:
    """What the user asked for: an open_clip model name and a pretrained tag or weights path."""

    model: str = DEFAULT_MODEL
    pretrained: str | None = DEFAULT_PRETRAINED

    @classmethod
    def from_names(cls, model: str | None, pretrained: str | None) -> ModelSpec:
        """A spec from optional CLI values: the default model, and the default pretrained tag only
        for plain open_clip names (``local-dir:``/``hf-hub:`` carry their own weights)."""
        name = model or DEFAULT_MODEL
        if pretrained is None and not name.startswith(("local-dir:", "hf-hub:")):
            pretrained = DEFAULT_PRETRAINED
        return cls(name, pretrained)


@dataclass(frozen=True)
class ResolvedModel:
    """A model whose weights are on local disk, ready for open_clip without any network."""

    model: str
    pretrained: str | None
    open_clip_name: str
    open_clip_pretrained: str | None
    weights_path: str | None
    info: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@contextlib.contextmanager
def hub_offline(enabled: bool = True) -> Iterator[None]:
    """Hold the Hugging Face hub offline for the block (when ``enabled``), then restore it.

    huggingface_hub reads ``HF_HUB_OFFLINE`` once, when it is imported, into
    ``huggingface_hub.constants.HF_HUB_OFFLINE``, and checks that flag before every request
    (``constants.is_offline_mode()``); offline, a lookup fails at once instead of open_clip's
    ~46 s of retries. So the flag itself is set for the block and put back after
    (:func:`mmcurate._util.temporarily`); the environment is never touched, so a later import of
    huggingface_hub, another library, or a subprocess sees the user's own setting. huggingface_hub
    is imported first, outside the block, so it reads that setting. No huggingface_hub: nothing
    can reach the hub, nothing to do.

    Examples
    --------
    Usage (not run as a doctest: it needs data of your own)::

        with hub_offline():
            open_clip.get_tokenizer(name)  # a hub lookup raises at once instead of retrying
    """
    hub: Any = None
    if enabled:
        try:
            from huggingface_hub import constants as hub  # heavy: huggingface_hub
        except ImportError:
            pass
    if hub is None:
        yield
        return
    with temporarily(lambda: hub.HF_HUB_OFFLINE, lambda value: setattr(hub, "HF_HUB_OFFLINE", value),
                     True):
        yield


def import_open_clip(*, allow_download: bool = False):
    """Import open_clip, under :func:`hub_offline` unless downloads are allowed (the import itself
    makes no hub request today; the calls that can are guarded where they are made)."""
    with hub_offline(not allow_download):
        import open_clip  # heavy: open_clip

    return open_clip


def _weights_in_dir(folder: Path) -> Path | None:
    for name in _WEIGHT_NAMES:
        if (folder / name).is_file():
            return folder / name
    return None


def _resolve_local_dir(spec: ModelSpec, folder: Path) -> ResolvedModel:
    config = folder / "open_clip_config.json"
    if not folder.is_dir():
        raise ModelNotAvailableError(f"model folder {folder} does not exist.", _HOW_TO)
    if not config.is_file():
        raise ModelNotAvailableError(
            f"{folder} has no open_clip_config.json; a local-dir: model needs it (with a "
            f"'model_cfg' key) next to the weights.",
            _HOW_TO,
        )
    try:
        cfg = json.loads(config.read_text(encoding="utf-8"))
    except (OSError, ValueError) as err:
        raise ModelNotAvailableError(f"{config} is not valid JSON: {err}") from err
    if "model_cfg" not in cfg:
        raise ModelNotAvailableError(f"{config} has no 'model_cfg' key (keys: {sorted(cfg)}).")
    weights = _weights_in_dir(folder)
    if weights is None:
        raise ModelNotAvailableError(
            f"{folder} has open_clip_config.json but no weights file (looked for "
            f"{', '.join(_WEIGHT_NAMES)}); open_clip would silently build a random model, so "
            f"mmcurate refuses.",
            _HOW_TO,
        )
    return ResolvedModel(spec.model, None, f"local-dir:{folder}", None, str(weights))


def _hub_reachable(timeout: float = 3.0) -> bool:
    try:
        with socket.create_connection(("huggingface.co", 443), timeout=timeout):
            return True
    except OSError:
        return False


def _from_hf_cache(repo_id: str, filenames: tuple[str, ...]) -> Path | None:
    from huggingface_hub import try_to_load_from_cache  # heavy: huggingface_hub

    for name in filenames:
        hit = try_to_load_from_cache(repo_id, name)
        if isinstance(hit, str) and os.path.isfile(hit):
            return Path(hit)
    return None


def _download(repo_id: str, filename: str) -> Path:
    if not _hub_reachable():
        raise ModelNotAvailableError(
            f"--allow-download was given but the Hugging Face hub is unreachable from this machine "
            f"(could not connect within 3 s) while fetching {repo_id}/{filename}.",
            _HOW_TO,
        )
    from huggingface_hub import hf_hub_download  # heavy: huggingface_hub

    return Path(hf_hub_download(repo_id, filename))


def _resolve_hf_hub(spec: ModelSpec, repo_id: str, allow_download: bool) -> ResolvedModel:
    config = _from_hf_cache(repo_id, ("open_clip_config.json",))
    if config is None and allow_download:
        config = _download(repo_id, "open_clip_config.json")
    if config is None:
        raise ModelNotAvailableError(
            f"hf-hub:{repo_id} is not in the local Hugging Face cache and downloads are off.",
            _HOW_TO,
        )
    folder = config.parent
    if _weights_in_dir(folder) is None and allow_download:
        _download(repo_id, "open_clip_model.safetensors")
    resolved = _resolve_local_dir(spec, folder)
    return ResolvedModel(spec.model, None, resolved.open_clip_name, None, resolved.weights_path)


def _resolve_tag(spec: ModelSpec, open_clip, allow_download: bool) -> ResolvedModel:
    name = spec.model.replace("/", "-")
    if name not in open_clip.list_models():
        raise ValueError(
            f"unknown open_clip model {spec.model!r}; known models include "
            f"{', '.join(open_clip.list_models()[:12])}, ... (open_clip.list_models() lists all), "
            f"or use local-dir:DIR / hf-hub:ORG/NAME."
        )
    tag = spec.pretrained or ""
    if os.path.isfile(tag):
        return ResolvedModel(spec.model, tag, name, tag, tag)
    cfg = open_clip.get_pretrained_cfg(name, tag)
    if not cfg:
        tags = open_clip.list_pretrained_tags_by_model(name)
        raise ModelNotAvailableError(
            f"{tag!r} is neither a file nor a pretrained tag of {name} (tags: {', '.join(tags)})."
        )
    weights = _cached_tag_weights(cfg, allow_download)
    if weights is None:
        raise ModelNotAvailableError(
            f"weights for {name}/{tag} are not on this machine (looked in the Hugging Face cache and "
            f"~/.cache/clip) and downloads are off.",
            _HOW_TO,
        )
    return ResolvedModel(spec.model, tag, name, str(weights), str(weights))


def _cached_tag_weights(cfg: dict, allow_download: bool) -> Path | None:
    if cfg.get("file"):
        return Path(cfg["file"]) if os.path.isfile(cfg["file"]) else None
    if cfg.get("hf_hub"):
        hub = cfg["hf_hub"]
        repo_id, filename = (hub[:-1], "") if hub.endswith("/") else os.path.split(hub)
        names: tuple[str, ...] = (filename,) if filename else ()
        names = (*names, "open_clip_model.safetensors", "open_clip_pytorch_model.bin")
        hit = _from_hf_cache(repo_id, names)
        if hit is None and allow_download:
            hit = _download(repo_id, names[0])
        return hit
    if cfg.get("url"):
        local = Path("~/.cache/clip").expanduser() / os.path.basename(cfg["url"])
        return local if local.is_file() else None
    return None


def resolve_model(spec: ModelSpec, *, allow_download: bool = False,
                  allow_random: bool = False) -> ResolvedModel:
    """Find the weights for ``spec`` on local disk (or download them when explicitly allowed).

    Raises
    ------
    ModelNotAvailableError
        The weights are not on this machine; the message lists the ways to supply them.

    Examples
    --------
    Usage (not run as a doctest: it needs data of your own)::

        resolve_model(ModelSpec("local-dir:/nonexistent"))
        # Traceback (most recent call last):
        # mmcurate.exceptions.ModelNotAvailableError: model folder /nonexistent does not exist. ...
    """
    if spec.model.startswith("local-dir:"):
        return _resolve_local_dir(spec, Path(spec.model[len("local-dir:"):]).expanduser())
    open_clip = import_open_clip(allow_download=allow_download)
    if spec.model.startswith("hf-hub:"):
        return _resolve_hf_hub(spec, spec.model[len("hf-hub:"):], allow_download)
    if not spec.pretrained:
        if not allow_random:
            raise ModelNotAvailableError(
                f"no pretrained weights named for {spec.model}: a randomly initialised model gives "
                f"meaningless embeddings.",
                _HOW_TO,
            )
        return ResolvedModel(spec.model, None, spec.model.replace("/", "-"), None, None)
    return _resolve_tag(spec, open_clip, allow_download)
