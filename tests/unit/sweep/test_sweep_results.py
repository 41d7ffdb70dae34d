"""The results folder: atomic part files, duplicate keys, another experiment's folder, DuckDB."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import duckdb
import pandas as pd
import pytest

from deleverage.errors import ConfigError
from deleverage.sweep import Experiment, ResultStore, confidence_interval, read_results
from deleverage.sweep.report import aggregate


def _experiment(**changes: Any) -> Experiment:
    data: dict[str, Any] = {
        "name": "store",
        "seed": 3,
        "base": "adl-exhaustion",
        "seeds_per_cell": 2,
        "metrics": ["bad_debt"],
        "parameters": {
            "sigma": {"path": "markets.0.price.drop_fraction", "values": [0.1, 0.2]},
            "policy": {"path": "markets.0.spec_overrides.adl.ranking",
                       "values": ["pnl_leverage", "pro_rata"]},
        },
    }  # fmt: skip
    data.update(changes)
    return Experiment.from_mapping(data)


def _rows(experiment: Experiment, bad_debt: dict[tuple[int, int], float]) -> list[dict[str, Any]]:
    rows = []
    for task in experiment.tasks():
        value = bad_debt.get((task.cell.index, task.replicate), 0.0)
        rows.append({"cell": task.cell.index, "cell_id": task.cell.cell_id,
                     "replicate": task.replicate, "seed": task.seed, **task.cell.values,
                     "bad_debt": value, "error": None, "run_s": 0.01, "cpu_s": 0.01})  # fmt: skip
    return rows


def test_rows_round_trip_sorted_and_duplicates_keep_the_first(tmp_path: Path) -> None:
    # Arrange
    experiment = _experiment()
    store = ResultStore(tmp_path, experiment)
    rows = _rows(experiment, {(0, 0): 1.5})
    duplicate = {**rows[0], "bad_debt": 99.0}

    # Act: two parts in reverse order, then the first row again
    store.append(rows[4:])
    store.append(rows[:4])
    store.append([duplicate])
    frame = read_results(tmp_path)

    # Assert
    assert len(frame) == 8
    assert list(zip(frame["cell"], frame["replicate"], strict=True)) == [
        (c, r) for c in range(4) for r in range(2)
    ]
    assert frame.loc[0, "bad_debt"] == 1.5
    assert store.done_keys() == {t.key for t in experiment.tasks()}
    assert not list(tmp_path.glob(".*tmp"))


def test_a_leftover_temporary_file_is_not_read(tmp_path: Path) -> None:
    experiment = _experiment()
    store = ResultStore(tmp_path, experiment)
    store.append(_rows(experiment, {})[:2])
    (tmp_path / ".part-9-9-000001.parquet.tmp").write_bytes(b"half a file")

    assert len(read_results(tmp_path)) == 2


def test_folder_of_another_experiment_is_refused(tmp_path: Path) -> None:
    ResultStore(tmp_path, _experiment())

    with pytest.raises(ConfigError, match="--out"):
        ResultStore(tmp_path, _experiment(seed=4))


def test_renaming_an_experiment_keeps_its_results(tmp_path: Path) -> None:
    ResultStore(tmp_path, _experiment())

    ResultStore(tmp_path, _experiment(name="renamed", description="same runs"))

    assert json.loads((tmp_path / "experiment.json").read_text())["experiment"]["name"] == "store"


def test_results_folder_must_hold_an_experiment(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="RESULTS_DIR"):
        read_results(tmp_path)


def test_documented_duckdb_query_gives_the_mean_per_policy_and_sigma(tmp_path: Path) -> None:
    # Arrange: bad debt 1 and 3 in cell 0 (sigma 0.1, pnl_leverage), a failed run in cell 3
    experiment = _experiment()
    store = ResultStore(tmp_path, experiment)
    rows = _rows(experiment, {(0, 0): 1.0, (0, 1): 3.0, (3, 0): 10.0})
    rows[7] = {**rows[7], "bad_debt": math.nan, "error": "ValueError: boom"}
    store.append(rows[:3])
    store.append(rows[3:])

    # Act: the query of docs/sweeps.md
    query = f"""
        SELECT policy, sigma, count(*) AS runs, avg(bad_debt) AS bad_debt,
               1.96 * stddev_samp(bad_debt) / sqrt(count(*)) AS ci95
        FROM read_parquet('{tmp_path}/part-*.parquet')
        WHERE error IS NULL
        GROUP BY policy, sigma
        ORDER BY policy, sigma
    """
    out = duckdb.sql(query).df()

    # Assert: mean (1+3)/2 = 2, s = sqrt(2), 1.96 sqrt(2)/sqrt(2) = 1.96
    first = out.iloc[0]
    assert (first["policy"], first["sigma"], first["runs"]) == ("pnl_leverage", 0.1, 2)
    assert first["bad_debt"] == pytest.approx(2.0)
    assert first["ci95"] == pytest.approx(1.96)
    assert out["runs"].tolist() == [2, 2, 2, 1]
    assert out.iloc[3]["bad_debt"] == pytest.approx(10.0)


def test_confidence_interval_uses_students_t() -> None:
    # 2, 4, 4, 4, 5, 5, 7, 9: mean 5, sample variance 32/7; t(0.975, 7) = 2.364624 (t tables)
    mean, half, n = confidence_interval([2, 4, 4, 4, 5, 5, 7, 9, math.nan])

    assert (mean, n) == (5.0, 8)
    assert half == pytest.approx(2.364624 * math.sqrt(32 / 7) / math.sqrt(8), rel=1e-6)
    # two seeds: t(0.975, 1) = 12.706205, six and a half times the normal's 1.96
    assert confidence_interval([4.0, 6.0])[1] == pytest.approx(12.706205, rel=1e-6)
    assert math.isnan(confidence_interval([1.0])[1])
    assert math.isnan(confidence_interval([])[0])


def test_aggregate_skips_failed_runs() -> None:
    frame = pd.DataFrame({"x": [1, 1, 1, 2], "m": [1.0, 3.0, 100.0, 4.0],
                          "error": [None, None, "E: failed", None]})  # fmt: skip

    out = aggregate(frame, ["x"], "m")

    assert out["mean"].tolist() == [2.0, 4.0]
    assert out["n"].tolist() == [2, 1]


def test_report_without_policy_or_fund_parameters_explains_the_missing_figures(
    tmp_path: Path,
) -> None:
    # Arrange: one numeric parameter only, results for every run
    experiment = _experiment(
        parameters={"sigma": {"path": "markets.0.price.drop_fraction", "values": [0.1, 0.2]}}
    )
    store = ResultStore(tmp_path, experiment)
    store.append(_rows(experiment, {(1, 0): 4.0, (1, 1): 6.0}))

    # Act
    from deleverage.sweep import sweep_report

    page = sweep_report(tmp_path, tmp_path / "page.html").read_text()

    # Assert
    assert "Bad debt vs volatility, per policy" in page
    assert "needs a parameter at insurance.fund" in page
    assert "needs two numeric parameters" in page
    # cell 1 ran 4 and 6: mean 5, s = sqrt(2), half-width t(0.975, 1) sqrt(2) / sqrt(2) = 12.7
    assert "<td>5 ± 13</td>" in page  # two significant digits
