"""Label-efficiency benchmark: an oracle replays the human-in-the-loop process on noisy data.

A noisy data set is prepared and embedded once (:mod:`~mmcurate.simulate.data`); every strategy ×
diversity × seed then runs the real rounds (rank, select, review, train) in its own project with an
oracle reviewer (:mod:`~mmcurate.simulate.loop`); per-round metrics (:mod:`~mmcurate.simulate.metrics`)
are summarised over seeds and plotted (:mod:`~mmcurate.simulate.plots`,
:mod:`~mmcurate.simulate.report`). The CLI is ``mmcurate simulate``.

Examples
--------
Usage (not run as a doctest: it needs data of your own)::

    from mmcurate.simulate import run_simulation, summarize
    metrics = run_simulation("results/", scenes=300, strategies=["random", "margin"],
                             rounds=3, budget=20, seeds=2)
    summarize(metrics)
"""

from __future__ import annotations

from mmcurate.simulate.metrics import compare, per_run, summarize
from mmcurate.simulate.runner import SimulationConfig, load_results, run_simulation

__all__ = ["SimulationConfig", "compare", "load_results", "per_run", "run_simulation", "summarize"]
