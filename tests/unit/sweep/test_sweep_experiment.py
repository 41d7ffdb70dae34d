"""Experiments: validation, the design's cells, seeds that do not depend on order."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import deleverage.sweep as sweep
from deleverage.errors import ConfigError
from deleverage.sweep import Experiment, load_experiment, run_seed
from deleverage.sweep.experiment import derived_metrics

SMALL_BASE = {
    "markets.0.population.n_positions": 300,
    "duration_s": 240,
}


def _data(**changes: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "name": "tiny",
        "seed": 11,
        "base": "adl-exhaustion",
        "overrides": dict(SMALL_BASE),
        "seeds_per_cell": 2,
        "metrics": ["bad_debt", "liquidations"],
        "parameters": {
            "drop": {"path": "markets.0.price.drop_fraction", "values": [0.1, 0.2, 0.3]},
            "fund": {"path": "insurance.fund", "low": 10.0, "high": 1000.0, "num": 3,
                     "scale": "log"},
        },
    }  # fmt: skip
    data.update(changes)
    return data


def test_public_names_are_pinned() -> None:
    assert sweep.__all__ == sorted(sweep.__all__)
    assert sweep.__all__ == [
        "Experiment", "LocalExecutor", "ParameterSpec", "RayExecutor", "ResultStore",
        "SweepProgress", "SweepSummary", "cell_id", "confidence_interval", "derived_metrics",
        "load_experiment", "make_executor", "read_results", "run_seed", "run_sweep",
        "sweep_report",
    ]  # fmt: skip


def test_grid_crosses_values_and_log_range_in_row_major_order() -> None:
    # Arrange: 3 crash sizes x a log range 10..1000 in 3 points (10, 100, 1000)
    experiment = Experiment.from_mapping(_data())

    # Act
    cells = experiment.cells()

    # Assert
    assert len(cells) == 9
    assert [c.values["drop"] for c in cells[:3]] == [0.1, 0.1, 0.1]
    assert [c.values["fund"] for c in cells[:3]] == pytest.approx([10.0, 100.0, 1000.0])
    assert cells[4].overrides == {
        "markets.0.price.drop_fraction": 0.2,
        "insurance.fund": pytest.approx(100.0),
    }
    assert len(experiment.tasks()) == 18
    assert len({c.cell_id for c in cells}) == 9


def test_linear_range_gives_evenly_spaced_points() -> None:
    data = _data()
    data["parameters"]["fund"] = {"path": "insurance.fund", "low": 0.0, "high": 1.0, "num": 5}

    cells = Experiment.from_mapping(data).cells()

    assert sorted({c.values["fund"] for c in cells}) == [0.0, 0.25, 0.5, 0.75, 1.0]


def test_random_design_draws_within_bounds_and_earlier_samples_do_not_change() -> None:
    data = _data(design="random", samples=20)
    data["parameters"]["policy"] = {
        "path": "markets.0.spec_overrides.adl.ranking",
        "values": ["pnl_leverage", "pro_rata"],
    }
    data["parameters"]["fund"].pop("num")

    many = Experiment.from_mapping(data).cells()
    few = Experiment.from_mapping({**data, "samples": 5}).cells()

    assert [c.values for c in few] == [c.values for c in many[:5]]
    assert all(10.0 <= c.values["fund"] <= 1000.0 for c in many)
    assert {c.values["drop"] for c in many} <= {0.1, 0.2, 0.3}
    assert {c.values["policy"] for c in many} == {"pnl_leverage", "pro_rata"}


@given(
    st.lists(st.sampled_from([0.1, 0.2, 0.3]), min_size=1, max_size=3, unique=True),
    st.permutations([0, 1, 2]),
)
def test_seed_of_a_cell_does_not_depend_on_the_other_cells_or_their_order(
    drops: list[float], order: list[int]
) -> None:
    # Arrange: the full grid, and a sub-grid with some values, in another order
    full = Experiment.from_mapping(_data())
    values = [drops[i] for i in order if i < len(drops)]
    part = _data()
    part["parameters"]["drop"]["values"] = values

    # Act
    full_seeds = {(t.cell.cell_id, t.replicate): t.seed for t in full.tasks()}
    part_seeds = {
        (t.cell.cell_id, t.replicate): t.seed for t in Experiment.from_mapping(part).tasks()
    }

    # Assert: every cell of the sub-grid runs with the seeds it has in the full grid
    assert part_seeds
    for key, seed in part_seeds.items():
        assert full_seeds[key] == seed


def test_seeds_differ_between_replicates_and_cells_unless_common_random_numbers() -> None:
    own = Experiment.from_mapping(_data()).tasks()
    common = Experiment.from_mapping(_data(common_random_numbers=True)).tasks()

    assert len({t.seed for t in own}) == len(own)
    assert {t.seed for t in common} == {
        run_seed(11, "", 0, common_random_numbers=True),
        run_seed(11, "", 1, common_random_numbers=True),
    }
    # the seed is the first 64-bit word of SeedSequence(root, spawn_key=(1, r)), top bit cleared
    word = np.random.SeedSequence(11, spawn_key=(1, 0)).generate_state(1, np.uint64)[0]
    assert run_seed(11, "", 0, common_random_numbers=True) == int(word) & (2**63 - 1)


def test_load_experiment_resolves_a_relative_base_path(tmp_path: Path) -> None:
    (tmp_path / "base.toml").write_text(
        'name = "b"\nduration_s = 60\n[[markets]]\nprice = { process = "gbm", s0 = 100.0 }\n'
    )
    (tmp_path / "exp.toml").write_text(
        'base = "base.toml"\n[parameters]\n'
        'sigma = { path = "markets.0.price.sigma", values = [0.5, 1.0] }\n'
    )

    experiment = load_experiment(tmp_path / "exp.toml")

    assert experiment.check().name == "b"
    assert len(experiment.cells()) == 2


@pytest.mark.parametrize(
    ("change", "field", "words"),
    [
        ({"parameters": {}}, "parameters", "at least one parameter"),
        ({"parameters": {"x": {"path": "insurance.fund", "values": []}}}, "values", "at least 1"),
        ({"parameters": {"x": {"path": "insurance.fund", "low": "a", "high": 2.0, "num": 2}}},
         "low", "valid number"),
        ({"parameters": {"x": {"path": "insurance.fund", "low": 3.0, "high": 2.0, "num": 2}}},
         "high", "high must be >= low"),
        ({"parameters": {"x": {"path": "insurance.fund", "low": 1.0, "high": 2.0}}},
         "num", "num is required"),
        ({"parameters": {"x": {"path": "insurance.fund", "values": [1.0, "a"]}}},
         "values", "one kind"),
        ({"parameters": {"bad_debt": {"path": "insurance.fund", "values": [1.0]}}},
         "parameters", "not result columns"),
        ({"parameters": {"s": {"path": "seed", "values": [1]}}}, "path", "must not be `seed`"),
        ({"metrics": ["cascade_amplification"]}, "metrics", "feedback_twin = true"),
        ({"metrics": ["bad_dept"]}, "metrics", "must be among"),
        ({"design": "random"}, "samples", "required"),
        ({"seeds_per_cell": 0}, "seeds_per_cell", "greater than or equal to 1"),
    ],
)  # fmt: skip
def test_bad_experiment_is_rejected_naming_the_field(
    change: dict[str, Any], field: str, words: str
) -> None:
    with pytest.raises(ConfigError) as info:
        Experiment.from_mapping(_data(**change))

    assert field in str(info.value)
    assert words in str(info.value)


def test_unknown_parameter_path_is_rejected_before_any_run() -> None:
    data = _data()
    data["parameters"]["depth"] = {"path": "markets.0.liquidity.dept_per_pct", "values": [1.0]}
    experiment = Experiment.from_mapping(data)

    with pytest.raises(ConfigError) as info:
        experiment.check()

    message = str(info.value)
    assert "parameters.depth.path" in message
    assert "markets.0.liquidity.dept_per_pct" in message
    assert "must name a field of the base scenario" in message


def test_out_of_range_market_index_is_rejected_before_any_run() -> None:
    data = _data()
    data["parameters"]["drop"]["path"] = "markets.3.price.drop_fraction"

    with pytest.raises(ConfigError, match=r"parameters\.drop\.path"):
        Experiment.from_mapping(data).check()


def test_invalid_fixed_override_is_rejected_before_any_run() -> None:
    experiment = Experiment.from_mapping(_data(overrides={"insurance.fund": -5.0}))

    with pytest.raises(ConfigError, match=r"insurance\.fund"):
        experiment.check()


def test_unknown_base_scenario_is_rejected() -> None:
    with pytest.raises(ConfigError, match="built-in scenario"):
        Experiment.from_mapping(_data(base="no-such-scenario")).check()


def test_derived_metrics_edge_cases_of_the_amplification() -> None:
    summary = {"adl_rounds": 0.0, "bad_debt": 5.0, "insurance_fund_start": 0.0,
               "insurance_fund_min": 0.0, "max_drawdown_mark": 0.1,
               "max_drawdown_exogenous": 0.1, "liquidated_notional": 0.0}  # fmt: skip

    none_either = derived_metrics(summary, {"liquidated_notional": 0.0, "bad_debt": 0.0})
    only_feedback = derived_metrics(
        {**summary, "liquidated_notional": 7.0}, {"liquidated_notional": 0.0, "bad_debt": 0.0}
    )

    assert none_either["cascade_amplification"] == 1.0
    assert none_either["bad_debt_occurred"] == 1.0
    assert none_either["adl_occurred"] == 0.0
    assert math.isnan(none_either["fund_drawdown"])
    assert only_feedback["cascade_amplification"] == math.inf
    assert "cascade_amplification" not in derived_metrics(summary)


def test_bundled_example_experiment_is_valid() -> None:
    # Arrange
    from importlib import resources

    path = resources.files("deleverage") / "data" / "experiments" / "shock-fund-depth.toml"

    # Act
    experiment = load_experiment(str(path))
    base = experiment.check()

    # Assert: 4 crash sizes x 3 depths x 4 funds x 2 rankings, 4 seeds each
    assert base.name == "adl-exhaustion"
    assert len(experiment.cells()) == 96
    assert len(experiment.tasks()) == 384


def test_random_design_keeps_equal_draws_apart() -> None:
    # Arrange: 12 draws among 2 values must repeat values
    data = _data(design="random", samples=12)
    data["parameters"] = {"drop": {"path": "markets.0.price.drop_fraction", "values": [0.1, 0.2]}}

    # Act
    tasks = Experiment.from_mapping(data).tasks()

    # Assert
    assert len({t.key for t in tasks}) == 24
    assert len({t.seed for t in tasks}) == 24


@pytest.mark.parametrize("design", ["sobol", "latin_hypercube"])
def test_quasi_random_designs_put_one_point_in_each_stratum(design: str) -> None:
    # A Latin hypercube of n points has one point in each [i/n, (i+1)/n) of every coordinate;
    # the first 2^m points of a scrambled Sobol sequence too (a (0, m, 1)-net in each
    # coordinate, Owen 1998). Here n = 8: "drop" has 4 values (each drawn twice), "fund" maps
    # log-uniformly from [10, 1000], so u = log(fund / 10) / log(100).
    data = _data(design=design, samples=8)
    data["parameters"] = {
        "drop": {"path": "markets.0.price.drop_fraction", "values": [0.1, 0.2, 0.3, 0.4]},
        "fund": {"path": "insurance.fund", "low": 10.0, "high": 1000.0, "scale": "log"},
    }
    cells = Experiment.from_mapping(data).cells()

    drops = sorted(c.values["drop"] for c in cells)
    u = np.array([math.log(c.values["fund"] / 10.0) / math.log(100.0) for c in cells])

    assert drops == [0.1, 0.1, 0.2, 0.2, 0.3, 0.3, 0.4, 0.4]
    assert sorted(np.floor(u * 8).astype(int).tolist()) == list(range(8))
    again = Experiment.from_mapping(data).cells()
    assert [c.cell_id for c in again] == [c.cell_id for c in cells]
