"""Plugins for the command line: your own strategies, selectors and input formats.

A plugin is a Python module (an importable name, or a ``.py`` file) that registers what it adds
when it is imported, with :func:`mmcurate.rank.register_strategy`,
:func:`mmcurate.select.register_selector` or :func:`mmcurate.data.register_format`. The CLI imports
the plugins named by ``mmcurate --plugin MODULE_OR_FILE COMMAND ...`` (repeatable, before the
command) and by the environment variable ``MMCURATE_PLUGINS`` (comma-separated), before it reads
the rest of the command line, so a plugin's names are valid ``--strategy``, ``--diversity`` and
``--format`` values and are listed by ``mmcurate strategies``. A module is imported once per
process. In Python, import your module (or call the ``register_*`` functions) instead.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import os
import sys
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from types import ModuleType

__all__ = ["ENV_VAR", "load_plugins", "plugin_specs"]

ENV_VAR = "MMCURATE_PLUGINS"


def plugin_specs(argv: Sequence[str], environ: Mapping[str, str] | None = None) -> list[str]:
    """The plugins to load: ``MMCURATE_PLUGINS`` (comma-separated), then each ``--plugin X`` /
    ``--plugin=X`` given before the command in ``argv``.

    Examples
    --------
    >>> plugin_specs(["--plugin", "my_strats", "--plugin=fmt.py", "rank", "p"], {"MMCURATE_PLUGINS": "a, b"})
    ['a', 'b', 'my_strats', 'fmt.py']
    """
    env = (os.environ if environ is None else environ).get(ENV_VAR, "")
    specs = [s.strip() for s in env.split(",") if s.strip()]
    i = 0
    while i < len(argv) and argv[i].startswith("-"):  # the top-level options, up to the command
        if argv[i] == "--plugin" and i + 1 < len(argv):
            specs.append(argv[i + 1])
            i += 2
            continue
        if argv[i].startswith("--plugin="):
            specs.append(argv[i].split("=", 1)[1])
        i += 1
    return specs


def load_plugins(specs: Iterable[str]) -> list[ModuleType]:
    """Import each plugin (a module name, or a path to a ``.py`` file) once; returns the modules.

    A plugin that cannot be found or fails while registering raises ``ValueError`` naming it.
    """
    return [_load(spec) for spec in specs]


def _load(spec: str) -> ModuleType:
    try:
        if spec.endswith(".py") or os.sep in spec or "/" in spec:
            return _load_file(Path(spec))
        return importlib.import_module(spec)
    except ValueError as err:
        raise ValueError(f"plugin {spec!r} failed: {err}") from err
    except (ImportError, OSError) as err:
        raise ValueError(f"cannot load plugin {spec!r} ({err}); give an importable module name "
                         f"(on PYTHONPATH) or the path of a .py file") from err


def _load_file(path: Path) -> ModuleType:
    path = path.resolve()
    if not path.is_file():
        raise FileNotFoundError(f"no file {path}")
    name = f"mmcurate_plugin_{path.stem}_{hashlib.sha1(str(path).encode()).hexdigest()[:8]}"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise ImportError(f"{path} is not a Python module")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        del sys.modules[name]
        raise
    return module
