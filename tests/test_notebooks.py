"""Every notebook in ``notebooks/`` is committed without outputs and runs top to bottom.

Each notebook runs in a fresh kernel of *this* interpreter, importing the package from *this*
checkout: the test writes a ``python3`` kernelspec pointing at ``sys.executable`` into a temporary
``JUPYTER_PATH`` (searched before the user's and the environment's kernelspecs), puts the checkout
first on ``PYTHONPATH``, and prepends a guard cell (to the in-memory copy only) that fails when the
kernel's interpreter or the imported ``mmcurate`` is a different one. The kernel's working directory
is a temporary folder, so notebooks writing relative paths (``_out/``) never touch the checkout.
New notebooks are picked up by the glob; nothing needs registering.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

REPO = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((REPO / "notebooks").glob("*.ipynb"))
CELL_TIMEOUT = 600  # seconds per cell; the first run may train the tiny stand-in model (~5 min)

GUARD = f"""\
import sys
from pathlib import Path
import mmcurate
assert sys.executable == {sys.executable!r}, f"kernel runs {{sys.executable}}, not the test's interpreter"
assert sys.prefix == {sys.prefix!r}, f"kernel's environment is {{sys.prefix}}"
assert Path(mmcurate.__file__).resolve().is_relative_to({str(REPO)!r}), (
    f"kernel imported mmcurate from {{mmcurate.__file__}}, not from the checkout under test")
"""


@pytest.fixture
def kernel_env(tmp_path, monkeypatch) -> Path:
    """A ``python3`` kernelspec for this interpreter and an environment importing this checkout."""
    spec_dir = tmp_path / "jupyter" / "kernels" / "python3"
    spec_dir.mkdir(parents=True)
    (spec_dir / "kernel.json").write_text(json.dumps({
        "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "Python 3 (mmcurate tests)", "language": "python",
    }))
    monkeypatch.setenv("JUPYTER_PATH", os.pathsep.join(
        p for p in (str(tmp_path / "jupyter"), os.environ.get("JUPYTER_PATH")) if p))
    monkeypatch.setenv("JUPYTER_PLATFORM_DIRS", "1")
    monkeypatch.setenv("IPYTHONDIR", str(tmp_path / "ipython"))  # no user profile or startup files
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(
        p for p in (str(REPO), os.environ.get("PYTHONPATH")) if p))
    workdir = tmp_path / "work"
    workdir.mkdir()
    return workdir


def _execute(nb: nbformat.NotebookNode, workdir: Path) -> nbformat.NotebookNode:
    nb.cells.insert(0, nbformat.v4.new_code_cell(GUARD))
    client = NotebookClient(nb, kernel_name="python3", timeout=CELL_TIMEOUT,
                            resources={"metadata": {"path": str(workdir)}})
    return client.execute()  # raises CellExecutionError (with the cell and traceback) on any error


def test_notebooks_are_found():
    assert NOTEBOOKS, f"no notebooks in {REPO / 'notebooks'}"
    assert "01_quickstart.ipynb" in [p.name for p in NOTEBOOKS]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_is_committed_without_outputs(path):
    nb = nbformat.read(path, as_version=4)
    nbformat.validate(nb)
    dirty = [i for i, cell in enumerate(nb.cells) if cell.cell_type == "code"
             and (cell.outputs or cell.execution_count is not None)]
    assert not dirty, (f"{path.name}: code cells {dirty} hold outputs or execution counts; clear all "
                       f"outputs (Jupyter: Edit > Clear Outputs of All Cells) and save before committing")
    assert nb.metadata.get("kernelspec", {}).get("name") == "python3", (
        f"{path.name}: kernelspec must be 'python3' (the kernel the tests and readers run)")


def _checkout_state() -> str | None:
    """``git status`` of the checkout (tracked and untracked, ignored files aside), None without git."""
    try:
        done = subprocess.run(["git", "-C", str(REPO), "status", "--porcelain", "--untracked-files=all"],
                              capture_output=True, text=True, timeout=60, check=False)
    except OSError:
        return None
    return done.stdout if done.returncode == 0 else None


@pytest.mark.slow
@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_runs(path, kernel_env, tiny_clip_dir):
    # tiny_clip_dir: the notebooks use the tiny stand-in model; asking for it here has it trained
    # before the first test (conftest), not inside a cell under CELL_TIMEOUT on a loaded machine
    before = _checkout_state()
    nb = _execute(nbformat.read(path, as_version=4), kernel_env)
    errors = [o for cell in nb.cells if cell.cell_type == "code" for o in cell.outputs
              if o.output_type == "error"]  # cells tagged raises-exception may not error either
    assert not errors, errors
    assert _checkout_state() == before, f"{path.name} changed files in the checkout; write under _out/"


@pytest.mark.slow
def test_viz_figures_render_once_as_png_in_a_kernel(kernel_env):
    """A figure returned by a viz helper shows as one PNG (not ``<Figure ...>`` text, not twice)."""
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(
        "import pandas as pd\nfrom mmcurate import viz\n"
        "viz.score_histograms(pd.DataFrame({'a': [0.1, 0.5, 0.9], 'b': [1.0, 2.0, 3.0]}), ['a', 'b'])")])
    outputs = _execute(nb, kernel_env).cells[-1].outputs
    assert [o.output_type for o in outputs] == ["execute_result"]
    assert "image/png" in outputs[0].data


@pytest.mark.slow
def test_simulation_figures_render_once_as_png_in_a_kernel(kernel_env):
    """Notebook 02's figures (``mmcurate.simulate.plots``) show as one PNG, not ``<Figure ...>``."""
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(
        "import pandas as pd\nfrom mmcurate.simulate import plots\n"
        "metrics = pd.DataFrame({'strategy': ['random'] * 4, 'diversity': ['none'] * 4,\n"
        "                        'seed': [0, 0, 1, 1], 'round': [0, 1, 0, 1], 'labels': [0, 20, 0, 20],\n"
        "                        'recall': [0.0, 0.2, 0.0, 0.3], 'n_pool': [100] * 4, 'n_noisy': [20] * 4})\n"
        "plots.learning_curves(metrics, 'recall')")])
    outputs = _execute(nb, kernel_env).cells[-1].outputs
    assert [o.output_type for o in outputs] == ["execute_result"], outputs
    assert "image/png" in outputs[0].data
