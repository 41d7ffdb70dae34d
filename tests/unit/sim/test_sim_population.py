"""Seeded populations: reproducibility, distributions, Parquet round trip, validation, loading.

Distribution checks compare sample statistics with closed-form values within 4-5 standard
errors (binomial for fractions, ``1.2533 sigma / sqrt(n)`` for the median of a log-normal in log
space), so a failure is a bug, not bad luck (p < 1e-4 per check, fixed seeds).
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from deleverage import Exchange, MarginMode, MarginTier, MarketSpec
from deleverage.errors import ConfigError, DataError, StateError, ValidationError
from deleverage.sim import Population, PopulationSpec, generate_population
from deleverage.sim.population import COLUMNS
from deleverage.venues import preset

REF = 60_000.0
SIMPLE = MarketSpec.simple(
    "BTCUSDT", max_leverage=100.0, maintenance_rate=0.005, tick_size=0.1, lot_size=0.001
)
# Binance USD-M BTCUSDT brackets (preset): the max leverage falls as the notional grows.
BINANCE = preset("binance", "BTCUSDT")


def _tier_max_oracle(notional: float, tiers: tuple[MarginTier, ...]) -> float:
    # Plain loop over the table: the last tier whose floor is at or below the notional.
    best = tiers[0].max_leverage
    for tier in tiers:
        if notional >= tier.notional_floor:
            best = tier.max_leverage
    return best


def _venue(market: MarketSpec, mark: float = REF) -> Exchange:
    ex = Exchange()
    ex.list_market(market)
    ex.set_mark(market.symbol, mark)
    return ex


# ---------------------------------------------------------------------------- reproducibility


def test_same_seed_gives_identical_frame() -> None:
    # Arrange
    spec = PopulationSpec(n_positions=500, seed=42)
    # Act
    a = generate_population(spec, BINANCE, reference_price=REF)
    b = generate_population(spec, BINANCE, reference_price=REF)
    # Assert
    pd.testing.assert_frame_equal(a.frame, b.frame)
    assert list(a.frame.columns) == list(COLUMNS)


def test_different_seed_gives_different_frame() -> None:
    a = generate_population(PopulationSpec(n_positions=200, seed=1), SIMPLE, reference_price=REF)
    b = generate_population(PopulationSpec(n_positions=200, seed=2), SIMPLE, reference_price=REF)
    assert not a.frame["size"].equals(b.frame["size"])
    assert not a.frame["entry_price"].equals(b.frame["entry_price"])


def test_explicit_rng_overrides_the_spec_seed() -> None:
    spec = PopulationSpec(n_positions=100, seed=1)
    a = generate_population(spec, SIMPLE, reference_price=REF, rng=np.random.default_rng(7))
    b = generate_population(
        spec.model_copy(update={"seed": 7}), SIMPLE, reference_price=REF
    )  # SeedSequence(7) and default_rng(7) give the same stream
    pd.testing.assert_frame_equal(a.frame, b.frame)


# ---------------------------------------------------------------------------- distributions


def test_long_and_isolated_fractions_match_within_sampling_error() -> None:
    n = 20_000
    spec = PopulationSpec(n_positions=n, long_fraction=0.3, isolated_fraction=0.7, seed=3)
    frame = generate_population(spec, SIMPLE, reference_price=REF).frame
    long_share = float((frame["size"] > 0).mean())
    iso_share = float((frame["margin_mode"] == "isolated").mean())
    assert abs(long_share - 0.3) < 4.5 * math.sqrt(0.3 * 0.7 / n)
    assert abs(iso_share - 0.7) < 4.5 * math.sqrt(0.3 * 0.7 / n)
    assert set(frame["side"].unique()) == {-1, 1}
    assert (np.sign(frame["size"]) == frame["side"]).all()


def test_extreme_fractions_give_one_side_and_one_mode() -> None:
    spec = PopulationSpec(n_positions=300, long_fraction=1.0, isolated_fraction=0.0, seed=0)
    frame = generate_population(spec, SIMPLE, reference_price=REF).frame
    assert (frame["size"] > 0).all()
    assert (frame["margin_mode"] == "cross").all()
    assert frame["liquidation_price"].isna().all()


def test_median_leverage_matches_lognormal_median_within_sampling_error() -> None:
    # Tier max 100 and clipping at 1 are > 4.6 sigma away from median 10 in log space, so the
    # clipping leaves the median alone: median(log L) ~ N(log 10, (1.2533 sigma)^2 / n).
    n, sigma = 20_000, 0.5
    spec = PopulationSpec(n_positions=n, leverage_median=10.0, leverage_sigma=sigma, seed=5)
    lev = generate_population(spec, SIMPLE, reference_price=REF).frame["leverage"]
    err = abs(math.log(float(lev.median())) - math.log(10.0))
    assert err < 5 * 1.2533 * sigma / math.sqrt(n)


def test_leverage_never_exceeds_the_tier_max_of_the_entry_notional() -> None:
    # Heavy Pareto sizes reach the Binance brackets where max leverage is 20x and below.
    spec = PopulationSpec(
        n_positions=5_000, leverage_median=80.0, leverage_sigma=1.0, size_min=0.5,
        size_tail_index=1.1, seed=11,
    )  # fmt: skip
    frame = generate_population(spec, BINANCE, reference_price=REF).frame
    notional = frame["size"].abs() * frame["entry_price"]
    caps = np.array([_tier_max_oracle(x, BINANCE.tiers) for x in notional])
    assert (frame["leverage"] <= caps * (1 + 1e-12)).all()
    assert (frame["leverage"] >= 1.0).all()
    assert (caps < BINANCE.max_leverage).any()  # the test does reach the lower tiers
    assert np.isclose(frame["leverage"], caps).any()  # and clipping happens


def test_pareto_sizes_follow_the_closed_form_tail() -> None:
    # P(S > s) = (size_min / s)^alpha; lot 0.001 rounding is negligible at s = 4.
    n, alpha = 20_000, 1.5
    spec = PopulationSpec(n_positions=n, size_min=1.0, size_tail_index=alpha, seed=8)
    size = generate_population(spec, SIMPLE, reference_price=REF).frame["size"].abs()
    p = (1.0 / 4.0) ** alpha  # 0.125
    assert abs(float((size > 4.0).mean()) - p) < 4.5 * math.sqrt(p * (1 - p) / n)
    assert float(size.min()) >= 1.0


def test_sizes_are_whole_lots_never_zero_and_capped() -> None:
    spec = PopulationSpec(
        n_positions=2_000, size_min=0.0001, size_tail_index=0.8, size_max=2.0, seed=4
    )
    size = generate_population(spec, SIMPLE, reference_price=REF).frame["size"].abs()
    lots = size / SIMPLE.lot_size
    assert np.allclose(lots, np.round(lots), atol=1e-6)
    assert (size >= SIMPLE.lot_size - 1e-15).all()  # size_min below one lot -> one lot
    assert (size <= 2.0 + 1e-12).all()


def test_lognormal_sizes_have_the_requested_median() -> None:
    n = 20_000
    spec = PopulationSpec(
        n_positions=n, size_distribution="lognormal", size_min=0.001, size_median=0.5,
        size_sigma=1.0, seed=9,
    )  # fmt: skip
    size = generate_population(spec, SIMPLE, reference_price=REF).frame["size"].abs()
    assert abs(math.log(float(size.median())) - math.log(0.5)) < 5 * 1.2533 / math.sqrt(n)


def test_entries_scatter_around_the_reference_with_the_relative_std() -> None:
    n = 20_000
    spec = PopulationSpec(n_positions=n, entry_rel_std=0.02, seed=6)
    entry = generate_population(spec, SIMPLE, reference_price=REF).frame["entry_price"]
    log_dev = np.log(entry / REF)
    assert abs(float(log_dev.mean())) < 5 * 0.02 / math.sqrt(n)
    assert abs(float(log_dev.std()) - 0.02) < 0.02 * 5 / math.sqrt(2 * n)
    ticks = entry / SIMPLE.tick_size
    assert np.allclose(ticks, np.round(ticks), atol=1e-6)


def test_entries_without_jitter_are_points_of_the_price_path() -> None:
    path = np.array([59_000.0, 59_500.5, 60_100.0, 61_000.2])
    spec = PopulationSpec(n_positions=400, entry_rel_std=0.0, seed=2)
    entry = generate_population(spec, SIMPLE, reference_price=REF, price_path=path).frame[
        "entry_price"
    ]
    assert np.isin(np.round(entry, 6), path).all()
    assert len(np.unique(entry)) == 4  # 400 uniform draws hit all four points


# ---------------------------------------------------------------------------- collateral, liq


def test_collateral_is_entry_margin_plus_taker_fee() -> None:
    frame = generate_population(
        PopulationSpec(n_positions=50, seed=1), BINANCE, reference_price=REF
    ).frame
    notional = frame["size"].abs() * frame["entry_price"]
    expected = notional / frame["leverage"] + notional * BINANCE.taker_fee_rate
    np.testing.assert_allclose(frame["collateral"], expected, rtol=1e-12)


def test_isolated_liquidation_price_matches_the_one_tier_closed_form() -> None:
    # One tier, margin M = |q| e / L: M + q (P - e) = mmr |q| P gives
    # long  P = e (1 - 1/L) / (1 - mmr), short P = e (1 + 1/L) / (1 + mmr)
    # (Binance "How to Calculate Liquidation Price of USDⓈ-M Contracts",
    # https://www.binance.com/en/support/faq/b3c689c1f50a44cabb3a84e663b81d93, with cum = 0).
    spec = PopulationSpec(n_positions=400, isolated_fraction=1.0, size_max=5.0, seed=12)
    frame = generate_population(spec, SIMPLE, reference_price=REF).frame
    e, lev, mmr = frame["entry_price"], frame["leverage"], 0.005
    expected = np.where(
        frame["size"] > 0, e * (1 - 1 / lev) / (1 - mmr), e * (1 + 1 / lev) / (1 + mmr)
    )
    np.testing.assert_allclose(frame["liquidation_price"], expected, rtol=1e-10)


def test_from_frame_derives_liquidation_price_matching_binance_formula_by_hand() -> None:
    # Constructed from the Binance USD-M formula LP = (WB + cum - side |q| EP) / (|q| mmr -
    # side |q|) (https://www.binance.com/en/support/faq/b3c689c1f50a44cabb3a84e663b81d93):
    # 1 BTC long at 8,000 with wallet balance 8,000 / 20 = 400, MMR 0.4%, cum 0, no fee:
    # LP = (400 - 8,000) / (0.004 - 1) = 7,630.522.
    market = MarketSpec.simple(
        "BTCUSDT", max_leverage=125.0, maintenance_rate=0.004, taker_fee_rate=0.0
    )
    frame = pd.DataFrame(
        {"account": [0], "size": [1.0], "entry_price": [8_000.0], "leverage": [20.0],
         "margin_mode": ["isolated"], "collateral": [400.0]}
    )  # fmt: skip
    pop = Population.from_frame(frame, market=market)
    assert pop.frame["liquidation_price"].iloc[0] == pytest.approx(7_630.522, abs=1e-3)


# ---------------------------------------------------------------------------- Parquet


def test_parquet_round_trip_gives_an_equal_frame(tmp_path: Path) -> None:
    pop = generate_population(PopulationSpec(n_positions=300, seed=3), BINANCE, reference_price=REF)
    path = tmp_path / "pop.parquet"
    pop.to_parquet(path)
    back = Population.from_parquet(path, market=BINANCE)
    pd.testing.assert_frame_equal(back.frame, pop.frame)
    assert back.symbol == BINANCE.symbol


def test_parquet_without_derived_columns_recomputes_them(tmp_path: Path) -> None:
    pop = generate_population(PopulationSpec(n_positions=100, seed=3), BINANCE, reference_price=REF)
    path = tmp_path / "venue.parquet"
    pop.frame.drop(columns=["side", "liquidation_price"]).to_parquet(path)
    back = Population.from_parquet(path, market=BINANCE)
    pd.testing.assert_frame_equal(back.frame, pop.frame)


def _frame() -> pd.DataFrame:
    return generate_population(
        PopulationSpec(n_positions=10, seed=1), SIMPLE, reference_price=REF
    ).frame.copy()


@pytest.mark.parametrize(
    ("column", "value", "field", "rule"),
    [
        ("entry_price", np.nan, "entry_price[3]", "finite"),
        ("entry_price", -5.0, "entry_price[3]", "> 0"),
        ("entry_price", 0.0, "entry_price[3]", "> 0"),
        ("size", 0.0, "size[3]", "non-zero"),
        ("collateral", 0.0, "collateral[3]", "> 0"),
        ("leverage", 101.0, "leverage[3]", "tier maximum 100"),
        ("leverage", 0.5, "leverage[3]", ">= 1"),
        ("margin_mode", "portfolio", "margin_mode[3]", "'isolated' or 'cross'"),
        ("account", 0, "account[3]", "distinct"),
        ("side", 7, "side[3]", "sign(size)"),
    ],
)
def test_bad_row_raises_data_error_naming_column_row_and_rule(
    tmp_path: Path, column: str, value: object, field: str, rule: str
) -> None:
    # Arrange
    frame = _frame()
    if column == "margin_mode":
        frame[column] = frame[column].astype(object)
    frame.loc[3, column] = value
    path = tmp_path / "bad.parquet"
    frame.to_parquet(path)
    # Act / Assert
    with pytest.raises(DataError, match="row 3") as info:
        Population.from_parquet(path, market=SIMPLE)
    assert info.value.field == field
    assert rule in info.value.rule


def test_leverage_above_a_lower_tier_cap_is_rejected() -> None:
    # 30 BTC at 60,000 = 1.8M notional: Binance caps it below 125x.
    frame = pd.DataFrame(
        {"account": [0], "size": [30.0], "entry_price": [60_000.0], "leverage": [100.0],
         "margin_mode": ["cross"], "collateral": [20_000.0]}
    )  # fmt: skip
    cap = _tier_max_oracle(1_800_000.0, BINANCE.tiers)
    with pytest.raises(DataError, match=f"tier maximum {cap:g}"):
        Population.from_frame(frame, market=BINANCE)


def test_missing_column_and_missing_file_raise_data_error(tmp_path: Path) -> None:
    path = tmp_path / "p.parquet"
    _frame().drop(columns=["collateral"]).to_parquet(path)
    with pytest.raises(DataError, match="`columns` is a required column"):
        Population.from_parquet(path, market=SIMPLE)
    with pytest.raises(DataError, match="existing Parquet file"):
        Population.from_parquet(tmp_path / "nope.parquet", market=SIMPLE)
    (tmp_path / "junk.parquet").write_text("not parquet")
    with pytest.raises(DataError, match="readable Parquet"):
        Population.from_parquet(tmp_path / "junk.parquet", market=SIMPLE)


@pytest.mark.parametrize(
    "fields",
    [
        {"n_positions": 0},
        {"n_positions": 10, "long_fraction": 1.5},
        {"n_positions": 10, "isolated_fraction": -0.1},
        {"n_positions": 10, "leverage_median": 0.5},
        {"n_positions": 10, "size_min": 0.0},
        {"n_positions": 10, "size_min": 1.0, "size_max": 0.5},
        {"n_positions": 10, "size_distribution": "cauchy"},
        {"n_positions": 10, "colour": "red"},
    ],
)
def test_bad_spec_raises_config_error(fields: dict[str, object]) -> None:
    with pytest.raises(ConfigError):
        PopulationSpec(**fields)


def test_bad_reference_price_or_path_raises_validation_error() -> None:
    spec = PopulationSpec(n_positions=5)
    with pytest.raises(ValidationError, match="`reference_price`"):
        generate_population(spec, SIMPLE, reference_price=-1.0)
    with pytest.raises(ValidationError, match=r"`price_path\[1\]`"):
        generate_population(spec, SIMPLE, reference_price=REF, price_path=[1.0, np.nan])
    with pytest.raises(ValidationError, match="`price_path`"):
        generate_population(spec, SIMPLE, reference_price=REF, price_path=[])


def test_spec_round_trips_through_json() -> None:
    spec = PopulationSpec(n_positions=7, size_distribution="lognormal", seed=3)
    assert PopulationSpec.from_json(spec.to_json()) == spec


@settings(max_examples=20, deadline=None)
@given(
    seed=st.integers(0, 2**32),
    n=st.integers(1, 60),
    long_fraction=st.floats(0, 1),
    tail=st.floats(0.5, 3.0),
)
def test_any_generated_population_passes_validation(
    seed: int, n: int, long_fraction: float, tail: float
) -> None:
    spec = PopulationSpec(
        n_positions=n, long_fraction=long_fraction, size_tail_index=tail, size_min=0.05,
        leverage_median=50.0, leverage_sigma=1.0, seed=seed,
    )  # fmt: skip
    pop = generate_population(spec, BINANCE, reference_price=REF)
    again = Population.from_frame(pop.frame, market=BINANCE)
    pd.testing.assert_frame_equal(again.frame, pop.frame)
    assert (pop.frame["size"] != 0).all()


# ---------------------------------------------------------------------------- load_into


def test_load_into_conserves_money_and_matches_sizes_and_modes() -> None:
    # Arrange: entries spread 1% around the mark, so some rows are in loss and some in profit.
    pop = generate_population(
        PopulationSpec(n_positions=400, seed=21), BINANCE, reference_price=REF
    )
    ex = _venue(BINANCE)
    # Act
    ids = pop.load_into(ex, BINANCE)
    # Assert
    assert ex.conservation().holds
    cols = ex.columns(BINANCE.symbol)
    np.testing.assert_array_equal(cols.size[ids], pop.frame["size"].to_numpy())
    np.testing.assert_allclose(cols.entry[ids], pop.frame["entry_price"].to_numpy(), rtol=1e-12)
    iso = pop.isolated
    assert (cols.mode[ids][iso] == MarginMode.ISOLATED).all()
    assert (cols.mode[ids][~iso] == MarginMode.CROSS).all()
    assert ex.last_step.liquidations == 0


def test_load_into_isolated_margin_equals_collateral_after_fee_where_not_in_loss() -> None:
    pop = generate_population(
        PopulationSpec(n_positions=300, isolated_fraction=1.0, seed=22),
        BINANCE,
        reference_price=REF,
    )
    ex = _venue(BINANCE)
    ids = pop.load_into(ex, BINANCE.symbol)
    f = pop.frame
    fee = f["size"].abs() * f["entry_price"] * BINANCE.taker_fee_rate
    target = (f["collateral"] - fee).to_numpy()
    held = ex.columns(BINANCE.symbol).isolated_margin[ids]
    not_in_loss = (f["size"] * (REF - f["entry_price"]) >= 0).to_numpy()
    np.testing.assert_allclose(held[not_in_loss], target[not_in_loss], rtol=1e-9)
    assert (held[~not_in_loss] >= target[~not_in_loss] - 1e-9).all()  # topped up, safer
    assert ex.conservation().holds


@pytest.mark.parametrize("side", [1, -1])
def test_loaded_isolated_position_liquidates_exactly_at_its_liquidation_price(side: int) -> None:
    # Arrange: entries at the mark, so the engine holds exactly the population's margin.
    spec = PopulationSpec(
        n_positions=40, isolated_fraction=1.0, long_fraction=1.0 if side > 0 else 0.0,
        entry_rel_std=0.0, leverage_median=20.0, leverage_sigma=0.3, seed=31,
    )  # fmt: skip
    pop = generate_population(spec, BINANCE, reference_price=REF)
    row = int(np.argmin(np.abs(pop.frame["leverage"] - 20.0)))
    liq = float(pop.frame["liquidation_price"].iloc[row])
    size = float(pop.frame["size"].iloc[row])
    ex = _venue(BINANCE)
    ids = pop.load_into(ex, BINANCE.symbol)
    account = int(ids[row])
    # Act / Assert: just on the safe side of the liquidation price -> still open.
    ex.set_mark(BINANCE.symbol, liq * (1 + side * 1e-7), ts_ns=1_000_000_000)
    assert ex.position(account, BINANCE.symbol).size == pytest.approx(size)
    # Just past it -> liquidated.
    ex.set_mark(BINANCE.symbol, liq * (1 - side * 1e-7), ts_ns=2_000_000_000)
    assert ex.last_step.liquidations >= 1
    assert ex.position(account, BINANCE.symbol).size == 0.0
    assert ex.conservation().holds


def test_load_into_needs_a_mark_and_the_same_market() -> None:
    pop = generate_population(PopulationSpec(n_positions=5, seed=1), SIMPLE, reference_price=REF)
    ex = Exchange()
    ex.list_market(SIMPLE)
    with pytest.raises(StateError, match="set_mark"):
        pop.load_into(ex, SIMPLE)
    other = _venue(BINANCE.model_copy(update={"symbol": "ETHUSDT"}))
    with pytest.raises(ValidationError, match="population's market BTCUSDT"):
        pop.load_into(other, "ETHUSDT")
