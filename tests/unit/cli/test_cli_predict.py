"""``deleverage predict train | evaluate | policy`` end to end on a small world, and bad input.

Numbers checked against outside sources: the scores file against scikit-learn's Brier score
recomputed here from the saved models and dataset; seeds as the options name them.
"""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path

import numpy as np
import pytest
from sklearn.metrics import brier_score_loss

from cli_contract import assert_contract, call
from deleverage.predict.dataset import read_dataset, split_by_seed
from deleverage.predict.models import load_model

SMALL = ("--positions", "300", "--sample-every", "20", "--horizon", "60", "--window", "60")


@pytest.fixture(scope="module")
def small_world(tmp_path_factory: pytest.TempPathFactory) -> Path:
    source = resources.files("deleverage") / "data" / "predict" / "predict-jumps.toml"
    text = source.read_text().replace("duration_s = 1800", "duration_s = 400")
    text = text.replace("leverage_median = 20.0", "leverage_median = 40.0")
    path = tmp_path_factory.mktemp("world") / "small.toml"
    path.write_text(text)
    return path


@pytest.fixture(scope="module")
def trained(small_world: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("predict") / "out"
    outcome = call(
        "predict", "train", "--scenario", str(small_world), "--seeds", "3", "--test-seeds", "2",
        "--first-seed", "1", *SMALL, "--out", str(out),
    )  # fmt: skip
    assert outcome.code == 0, outcome.text[-800:]
    return out


def test_train_writes_the_dataset_and_three_models_on_the_named_seeds(trained: Path) -> None:
    data = read_dataset(trained / "dataset")

    assert data.meta["seeds"] == [1, 2, 3, 4, 5]
    assert data.meta["test_seeds"] == [4, 5]
    for kind in ("baseline", "logistic", "gbt"):
        model = load_model(trained / "models" / f"{kind}.joblib")
        assert model.meta.training_seeds == (1, 2, 3)
        assert model.meta.dataset_hash == data.meta["content_hash"]


def test_evaluate_scores_the_held_out_seeds_and_writes_the_model_card(trained: Path) -> None:
    outcome = call("predict", "evaluate", "--from", str(trained), "--json")

    assert_contract(outcome)
    assert outcome.code == 0
    report = json.loads(outcome.out)
    data = read_dataset(trained / "dataset")
    _, test = split_by_seed(data.accounts, [4, 5])
    gbt = load_model(trained / "models" / "gbt.joblib")
    expected = brier_score_loss(test["liquidated"], gbt.predict_proba(test))
    scores = {row["model"]: row for row in report["scores"]}
    assert scores["gbt"]["brier"] == pytest.approx(expected)
    assert scores["gbt"]["rows"] == len(test)
    assert isinstance(report["gbt_beats_baseline"], bool)
    assert any("analytic baseline" in v for v in report["verdicts"])
    _, markets = split_by_seed(data.markets, [4, 5])
    cascade_p = np.clip(markets["cascade_first_passage"], 1e-6, 1 - 1e-6)
    assert report["market_cascade_baseline"]["brier"] == pytest.approx(
        brier_score_loss(markets["cascade"], cascade_p)
    )
    card = (trained / "model_card.html").read_text()
    assert "Reliability diagram" in card
    assert "Limitations" in card


def test_evaluate_on_another_scenario_builds_its_dataset(trained: Path, small_world: Path) -> None:
    outcome = call(
        "predict", "evaluate", "--from", str(trained), "--scenario", str(small_world),
        "--seeds", "2", "--first-seed", "7", "--positions", "300",
    )  # fmt: skip

    assert outcome.code == 0, outcome.text[-600:]
    assert "seeds [7, 8]" in outcome.text


@pytest.mark.slow
def test_evaluate_on_the_bundled_crash_windows_scores_each_window_as_a_seed(
    trained: Path,
) -> None:
    # The models were trained for H = 60 s; the replays run with the dataset's own settings.
    outcome = call(
        "predict", "evaluate", "--from", str(trained), "--crash-windows", "--positions", "200",
        "--first-seed", "11", "--json",
    )  # fmt: skip

    assert outcome.code == 0, outcome.text[-600:]
    report = json.loads(outcome.out)
    assert "btcusdt-1m-2020-03-12 (seed 11)" in report["scored_on"]
    assert "btcusdt-1m-2025-10-10 (seed 12)" in report["scored_on"]
    assert "over 2 seeds" in " ".join(report["verdicts"])


def test_policy_prints_each_metric_with_an_interval_and_a_verdict(
    small_world: Path, tmp_path: Path
) -> None:
    outcome = call(
        "predict", "policy", "--scenario", str(small_world), "--policy", "deleveraging",
        "--seeds", "2", "--first-seed", "3", "--positions", "300", "--out", str(tmp_path / "p"),
    )  # fmt: skip

    assert outcome.code == 0, outcome.text[-600:]
    assert "sudden_events" in outcome.text
    assert "the policy" in outcome.text
    report = json.loads((tmp_path / "p" / "policy.json").read_text())
    assert {e["metric"] for e in report["effects"]} >= {"sudden_events", "bad_debt"}
    assert np.isfinite(report["effects"][0]["mean_off"])


def test_a_split_by_time_trains_before_the_cut_and_scores_after_it(
    small_world: Path, tmp_path: Path
) -> None:
    out = tmp_path / "by-time"
    trained = call(
        "predict", "train", "--scenario", str(small_world), "--seeds", "3", "--test-seeds", "0",
        "--cut", "250", *SMALL, "--out", str(out),
    )  # fmt: skip
    assert trained.code == 0, trained.text[-600:]

    outcome = call("predict", "evaluate", "--from", str(out), "--json")

    assert outcome.code == 0, outcome.text[-600:]
    report = json.loads(outcome.out)
    data = read_dataset(out / "dataset")
    late = data.accounts[data.accounts["t_s"] >= 250]
    assert report["scores"][0]["rows"] == len(late)
    assert report["scored_on"].startswith("t >= 250 s")
    # The models learned only from rows whose label window ends by the cut.
    model = load_model(out / "models" / "gbt.joblib")
    early = data.accounts[data.accounts["t_s"] + 60 <= 250]
    assert model.meta.rows == len(early)


@pytest.mark.parametrize(
    ("args", "name"),
    [
        (("predict", "train", "--seeds", "0"), "--seeds"),
        (("predict", "train", "--horizon", "-5"), "horizon_s"),
        (("predict", "train", "--positions", "0"), "--positions"),
        (("predict", "evaluate", "--level", "1.5"), "--level"),
        (("predict", "policy", "--policy", "everything"), "--policy"),
        (("predict", "policy", "--seeds", "1"), "seeds"),
        (("predict", "train", "--cut", "100"), "--test-seeds"),
        (("predict", "evaluate", "--crash-windows", "--scenario", "x"), "--crash-windows"),
    ],
)
def test_bad_input_exits_2_naming_the_option(args: tuple[str, ...], name: str) -> None:
    outcome = call(*args)

    assert_contract(outcome, names=(name,))
    assert outcome.code == 2


def test_evaluate_refuses_a_folder_without_models(tmp_path: Path) -> None:
    outcome = call("predict", "evaluate", "--from", str(tmp_path))

    assert_contract(outcome)
    assert outcome.code == 2
