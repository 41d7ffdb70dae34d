"""Datasets: no feature uses the future, same seeds give the same data, the schema is checked."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from predict_worlds import CONFIG, HORIZON_S, tiny_world

from deleverage.errors import DataError, ValidationError
from deleverage.predict.dataset import (
    Dataset,
    build_dataset,
    read_dataset,
    split_by_seed,
    split_by_time,
)
from deleverage.predict.features import ACCOUNT_FEATURES, MARKET_FEATURES, FeatureRecorder
from deleverage.sim.runner import Simulation


def _features(duration_s: float) -> tuple[pd.DataFrame, pd.DataFrame]:
    sim = Simulation(tiny_world(duration_s=duration_s))
    recorder = FeatureRecorder(sim, CONFIG, seed=1)
    sim.run(observer=recorder)
    return recorder.account_frame(), recorder.market_frame()


def test_features_at_t_are_the_same_when_the_run_stops_at_t() -> None:
    # Arrange: the same world run for 400 s and stopped at 200 s (the price path of the short
    # run is the start of the long one). A feature that looked past t would differ.
    full_accounts, full_markets = _features(400.0)
    cut_accounts, cut_markets = _features(200.0)

    # Act
    early = full_accounts[full_accounts["t_s"] <= 200.0].reset_index(drop=True)
    early_markets = full_markets[full_markets["t_s"] <= 200.0].reset_index(drop=True)

    # Assert
    assert len(cut_accounts) > 0
    assert full_accounts["t_s"].max() > 200.0
    pd.testing.assert_frame_equal(early, cut_accounts)
    pd.testing.assert_frame_equal(early_markets, cut_markets)


def test_a_label_starts_after_its_features_and_stays_within_the_horizon(
    tiny_dataset: Dataset,
) -> None:
    rows = tiny_dataset.accounts
    positive = rows[rows["liquidated"] == 1]

    assert len(positive) > 0
    assert (positive["time_to_liquidation_s"] > 0).all()
    assert (positive["time_to_liquidation_s"] <= HORIZON_S).all()
    later = rows["time_to_liquidation_s"].dropna()
    assert (later > 0).all()


def test_the_same_seeds_give_the_same_dataset_hash(tiny_dataset: Dataset) -> None:
    again = build_dataset(tiny_world(), [1, 2, 3, 4], config=CONFIG)

    assert again.content_hash == tiny_dataset.content_hash


def test_another_seed_gives_another_dataset() -> None:
    one = build_dataset(tiny_world(duration_s=200.0), [1], config=CONFIG)
    other = build_dataset(tiny_world(duration_s=200.0), [2], config=CONFIG)

    assert one.content_hash != other.content_hash


def test_features_are_finite_and_in_their_ranges(tiny_dataset: Dataset) -> None:
    rows = tiny_dataset.accounts
    values = rows[list(ACCOUNT_FEATURES)].to_numpy(np.float64)

    assert np.isfinite(values).all()
    assert set(np.unique(rows["side"])) <= {-1.0, 1.0}
    assert rows["first_passage_probability"].between(0, 1).all()
    assert rows["adl_rank_pct"].between(0, 1).all()
    assert (rows["position_age_s"] >= 0).all()
    assert np.isfinite(tiny_dataset.markets[list(MARKET_FEATURES)].to_numpy()).all()


def test_a_dataset_round_trips_through_parquet(tiny_dataset: Dataset, tmp_path: Path) -> None:
    tiny_dataset.write(tmp_path)

    back = read_dataset(tmp_path)

    assert back.content_hash == tiny_dataset.content_hash
    assert back.meta["schema_version"] == 1
    assert back.meta["seeds"] == [1, 2, 3, 4]


def test_a_file_of_another_schema_version_is_refused(tiny_dataset: Dataset, tmp_path: Path) -> None:
    # Arrange: rewrite accounts.parquet with schema_version 99 in its metadata.
    tiny_dataset.write(tmp_path)
    path = tmp_path / "accounts.parquet"
    table = pq.read_table(path)
    meta = json.loads(table.schema.metadata[b"deleverage.predict"])
    meta["schema_version"] = 99
    pq.write_table(
        table.replace_schema_metadata({b"deleverage.predict": json.dumps(meta).encode()}), path
    )

    # Act / Assert
    with pytest.raises(DataError, match="schema_version"):
        read_dataset(tmp_path)


def test_a_file_missing_a_feature_column_is_refused(tiny_dataset: Dataset, tmp_path: Path) -> None:
    tiny_dataset.write(tmp_path)
    path = tmp_path / "markets.parquet"
    table = pq.read_table(path)
    pq.write_table(table.drop_columns(["realized_volatility"]), path)

    with pytest.raises(DataError, match="realized_volatility"):
        read_dataset(tmp_path)


@settings(max_examples=50, deadline=None)
@given(
    seeds=st.lists(st.integers(0, 20), min_size=2, max_size=30),
    times=st.lists(st.floats(0, 1000), min_size=30, max_size=30),
    cut=st.floats(0, 1000),
    horizon=st.floats(1, 300),
)
def test_splits_never_share_a_seed_or_a_label_window(
    seeds: list[int], times: list[float], cut: float, horizon: float
) -> None:
    frame = pd.DataFrame({"seed": (seeds * 30)[:30], "t_s": times, "row": range(30)})
    held_out = [seeds[0]]
    if set(frame["seed"]) == {seeds[0]}:
        with pytest.raises(ValidationError, match="test_seeds"):
            split_by_seed(frame, held_out)
        return

    train, test = split_by_seed(frame, held_out)
    early, late = split_by_time(frame, cut_s=cut, horizon_s=horizon)

    assert set(train["seed"]).isdisjoint(test["seed"])
    assert len(train) + len(test) == len(frame)
    if len(early) and len(late):
        assert early["t_s"].max() + horizon <= late["t_s"].min()
    assert set(early["row"]).isdisjoint(late["row"])
