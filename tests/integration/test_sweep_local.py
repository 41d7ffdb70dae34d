"""Sweeps on the local backend: rows equal direct runs, failures stay in their cell, resume."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from deleverage.sim.runner import run
from deleverage.sweep import Experiment, LocalExecutor, SweepProgress, read_results, run_sweep
from deleverage.sweep.experiment import RunTask
from deleverage.sweep.results import TIMING_COLUMNS


def _experiment(**changes: Any) -> Experiment:
    # adl-exhaustion cut to 300 isolated positions and 4 minutes (a few hundredths of a second a
    # run). Isolated only: with cross accounts, runs are not yet reproducible run to run (the
    # cross scan's buffers in Exchange._cross_scan_full start uninitialised).
    data: dict[str, Any] = {
        "name": "tiny",
        "seed": 11,
        "base": "adl-exhaustion",
        "overrides": {"markets.0.population.n_positions": 300, "duration_s": 240,
                      "markets.0.population.isolated_fraction": 1.0,
                      "markets.0.price.start_s": 20.0, "markets.0.price.duration_s": 120.0},
        "seeds_per_cell": 2,
        "metrics": ["bad_debt", "liquidations", "liquidated_notional", "adl_rounds",
                    "cascade_amplification", "twin_liquidated_notional"],
        "feedback_twin": True,
        "parameters": {
            "drop": {"path": "markets.0.price.drop_fraction", "values": [0.1, 0.3]},
            "fund": {"path": "insurance.fund", "values": [100.0, 10000.0]},
        },
    }  # fmt: skip
    data.update(changes)
    return Experiment.from_mapping(data)


def _values(frame: pd.DataFrame) -> pd.DataFrame:
    return frame.drop(columns=list(TIMING_COLUMNS)).reset_index(drop=True)


def test_each_row_equals_a_direct_run_of_its_cell_and_seed(tmp_path: Path) -> None:
    # Arrange
    experiment = _experiment()

    # Act
    summary = run_sweep(experiment, tmp_path, executor=LocalExecutor(0))
    frame = read_results(tmp_path)

    # Assert: the oracle is the runner itself, called with the cell's overrides and seed
    assert (summary.runs_total, summary.runs_done, summary.errors) == (8, 8, 0)
    assert len(frame) == 8
    base = experiment.base_scenario()
    for row in frame.iloc[[0, 5]].itertuples():
        scenario = base.with_overrides({"markets.0.price.drop_fraction": row.drop,
                                        "insurance.fund": row.fund, "seed": row.seed})  # fmt: skip
        direct = run(scenario).summary
        twin = run(scenario, feedback=False).summary
        assert row.liquidations == direct["liquidations"]
        assert row.bad_debt == direct["bad_debt"]
        assert row.twin_liquidated_notional == twin["liquidated_notional"]
        assert row.cascade_amplification == pytest.approx(
            direct["liquidated_notional"] / twin["liquidated_notional"]
        )


def test_process_pool_gives_the_same_rows_as_one_process(tmp_path: Path) -> None:
    experiment = _experiment(feedback_twin=False, metrics=["bad_debt", "liquidations"])

    run_sweep(experiment, tmp_path / "serial", executor=LocalExecutor(0))
    run_sweep(experiment, tmp_path / "pool", executor=LocalExecutor(2), flush_rows=3)

    serial, pool = read_results(tmp_path / "serial"), read_results(tmp_path / "pool")
    pd.testing.assert_frame_equal(_values(serial), _values(pool))
    assert len(list((tmp_path / "pool").glob("part-*.parquet"))) >= 3


def test_an_invalid_value_fails_its_cell_only(tmp_path: Path) -> None:
    # Arrange: a negative insurance fund is invalid, in one cell of the grid
    experiment = _experiment(
        feedback_twin=False,
        metrics=["bad_debt", "liquidations"],
        parameters={
            "drop": {"path": "markets.0.price.drop_fraction", "values": [0.1, 0.3]},
            "fund": {"path": "insurance.fund", "values": [-1.0, 10000.0]},
        },
    )

    # Act
    summary = run_sweep(experiment, tmp_path, executor=LocalExecutor(2))
    frame = read_results(tmp_path)

    # Assert
    failed = frame[frame["error"].notna()]
    assert summary.errors == 4
    assert len(frame) == 8
    assert set(failed["fund"]) == {-1.0}
    assert failed["error"].str.contains("insurance.fund").all()
    assert failed["liquidations"].isna().all()
    assert frame[frame["error"].isna()]["liquidations"].gt(0).all()


def test_an_exception_raised_in_a_run_is_recorded_and_the_sweep_goes_on(tmp_path: Path) -> None:
    def fail_second_cell(task: RunTask) -> None:
        if task.cell.index == 1:
            raise RuntimeError(f"injected failure in cell {task.cell.index}")

    experiment = _experiment(feedback_twin=False, metrics=["liquidations"])

    run_sweep(experiment, tmp_path, executor=LocalExecutor(0), hook=fail_second_cell)
    frame = read_results(tmp_path)

    assert frame["error"].notna().tolist() == [False, False, True, True, False, False,
                                               False, False]  # fmt: skip
    assert frame.loc[2, "error"] == "RuntimeError: injected failure in cell 1"


def test_interrupted_sweep_resumes_to_the_clean_result_without_duplicates(
    tmp_path: Path,
) -> None:
    # Arrange: a clean run, and the same sweep interrupted (Ctrl-C) after 2 finished cells
    experiment = _experiment(feedback_twin=False, metrics=["bad_debt", "liquidations"])
    run_sweep(experiment, tmp_path / "clean", executor=LocalExecutor(0))

    def interrupt(p: SweepProgress) -> None:
        if p.cells_done >= 2:
            raise KeyboardInterrupt

    # Act
    with pytest.raises(KeyboardInterrupt):
        run_sweep(experiment, tmp_path / "resumed", executor=LocalExecutor(0), progress=interrupt,
                  flush_rows=1000)  # fmt: skip
    partial = read_results(tmp_path / "resumed")
    seen: list[SweepProgress] = []
    summary = run_sweep(experiment, tmp_path / "resumed", executor=LocalExecutor(0),
                        progress=seen.append)  # fmt: skip

    # Assert: the interrupted rows were written, and only the rest ran again
    assert len(partial) == 4
    assert (summary.runs_skipped, summary.runs_done) == (4, 4)
    assert seen[0] == SweepProgress(2, 4, 4, 8, 0)
    resumed = read_results(tmp_path / "resumed")
    pd.testing.assert_frame_equal(_values(resumed), _values(read_results(tmp_path / "clean")))
    assert not resumed.duplicated(["cell_id", "replicate"]).any()


def test_a_finished_sweep_run_again_does_nothing(tmp_path: Path) -> None:
    experiment = _experiment(feedback_twin=False, metrics=["liquidations"])
    run_sweep(experiment, tmp_path, executor=LocalExecutor(0))
    parts = sorted(tmp_path.glob("part-*.parquet"))

    summary = run_sweep(experiment, tmp_path, executor=LocalExecutor(0))

    assert (summary.runs_done, summary.runs_skipped) == (0, 8)
    assert sorted(tmp_path.glob("part-*.parquet")) == parts
