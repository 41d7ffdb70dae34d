"""Parameter sweeps and Monte Carlo over scenarios, on a local process pool or a Ray cluster.

- :mod:`~deleverage.sweep.experiment`: the experiment (base scenario, design over named
  parameters, seeds, metrics), validated, from TOML;
- :mod:`~deleverage.sweep.executors`: the local and Ray backends and :func:`run_sweep`;
- :mod:`~deleverage.sweep.results`: the Parquet results folder (atomic part files, resume);
- :mod:`~deleverage.sweep.report`: the HTML report with confidence intervals across seeds.
"""

from deleverage.sweep.executors import (
    LocalExecutor,
    RayExecutor,
    SweepProgress,
    SweepSummary,
    make_executor,
    run_sweep,
)
from deleverage.sweep.experiment import (
    Experiment,
    ParameterSpec,
    cell_id,
    derived_metrics,
    load_experiment,
    run_seed,
)
from deleverage.sweep.report import confidence_interval, sweep_report
from deleverage.sweep.results import ResultStore, read_results

__all__ = [
    "Experiment",
    "LocalExecutor",
    "ParameterSpec",
    "RayExecutor",
    "ResultStore",
    "SweepProgress",
    "SweepSummary",
    "cell_id",
    "confidence_interval",
    "derived_metrics",
    "load_experiment",
    "make_executor",
    "read_results",
    "run_seed",
    "run_sweep",
    "sweep_report",
]
