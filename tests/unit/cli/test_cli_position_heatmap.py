"""Tests of ``deleverage position``, ``deleverage heatmap`` and analytics.heatmap.

Numbers come from outside the code under test: the Binance USD-M isolated liquidation-price
formula worked by hand (https://www.binance.com/en/support/faq/b3c689c1f50a44cabb3a84e663b81d93,
``LP = (WB + cum - side x |q| x EP) / (|q| x mmr - side x |q|)``, BTCUSDT first bracket 0.4 %
up to 50,000 USDT, cum 0), finite differences of the closed-form hit probability, the
optional-stopping identity of the knock-out forward, and hand-counted heatmap buckets.
"""

from __future__ import annotations

import json
import math
import re
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from hypothesis import given
from hypothesis import strategies as st
from typer.testing import CliRunner

from deleverage.analytics.first_passage import gbm_hit_probability
from deleverage.analytics.greeks import hit_probability_sensitivities, knockout_forward_greeks
from deleverage.analytics.heatmap import (
    CLUSTER_COLUMNS,
    HEATMAP_COLUMNS,
    largest_clusters,
    liquidation_heatmap,
)
from deleverage.cli.app import app, main
from deleverage.errors import ValidationError
from deleverage.sim.population import PopulationSpec, generate_population
from deleverage.venues import preset

runner = CliRunner()
DAY_S = 86_400.0

# Long 0.5 BTC at 60,000 with 1,500 isolated margin (20x) on Binance BTCUSDT: notional 30,000,
# first bracket (mmr 0.4 %, cum 0) at entry and at the liquidation price.
LONG = ["--side", "long", "--size", "0.5", "--entry", "60000", "--margin", "1500"]
# By hand: LP = (1,500 + 0 - 0.5 x 60,000) / (0.5 x 0.004 - 0.5) = -28,500 / -0.498.
LONG_LP = 28_500.0 / 0.498  # 57,228.9157 (notional 28,614: still the first bracket)
LONG_BP = 60_000.0 - 1_500.0 / 0.5  # 57,000
# Short: LP = (1,500 + 0 + 0.5 x 60,000) / (0.5 x 0.004 + 0.5) = 31,500 / 0.502.
SHORT_LP = 31_500.0 / 0.502  # 62,749.0040
SHORT_BP = 60_000.0 + 1_500.0 / 0.5  # 63,000


def _position_json(*args: str) -> dict[str, Any]:
    result = runner.invoke(app, ["position", *args, "--json"])
    assert result.exit_code == 0, result.output
    payload: dict[str, Any] = json.loads(result.output)
    return payload


def _run_main(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], *args: str
) -> tuple[int, str]:
    monkeypatch.setattr(sys, "argv", ["deleverage", *args])
    with pytest.raises(SystemExit) as exit_info:
        main()
    captured = capsys.readouterr()
    code = exit_info.value.code
    return int(code) if isinstance(code, int) else 1, " ".join(
        (captured.out + captured.err).split()
    )


# --------------------------------------------------------------------------------------------
# deleverage position
# --------------------------------------------------------------------------------------------


def test_position_long_one_tier_prices_match_binance_formula_by_hand() -> None:
    # Act
    out = _position_json(*LONG)

    # Assert
    assert out["liquidation_price"] == pytest.approx(LONG_LP, rel=1e-12)
    assert out["bankruptcy_price"] == pytest.approx(LONG_BP, rel=1e-12)
    assert out["size"] == 0.5
    assert out["leverage"] == pytest.approx(20.0)
    assert out["initial_margin"] == pytest.approx(30_000.0 / 125.0)  # first bracket: 125x
    assert out["maintenance_margin"] == pytest.approx(30_000.0 * 0.004)
    assert out["mark_price"] == 60_000.0  # default mark: the entry
    assert out["symbol"] == "BTCUSDT"


def test_position_short_one_tier_prices_match_binance_formula_by_hand() -> None:
    out = _position_json("--side", "short", "--size", "0.5", "--entry", "60000", "--margin", "1500")

    assert out["size"] == -0.5
    assert out["liquidation_price"] == pytest.approx(SHORT_LP, rel=1e-12)
    assert out["bankruptcy_price"] == pytest.approx(SHORT_BP, rel=1e-12)
    assert out["distance_to_liquidation"] == pytest.approx(SHORT_LP / 60_000.0 - 1.0)


def test_position_probability_equals_reflection_formula_by_hand() -> None:
    # Arrange: P = Phi(d1') + (L/S)^(2 nu / sigma^2) Phi(d2') for a down barrier (Shreve II, 7.2)
    sigma, hours, mark = 0.6, 48.0, 59_000.0
    t = hours * 3600.0 / (365.0 * DAY_S)
    nu = -0.5 * sigma**2
    b = math.log(LONG_LP / mark)
    a = sigma * math.sqrt(t)

    def phi(x: float) -> float:
        return 0.5 * math.erfc(-x / math.sqrt(2.0))

    expected = phi((b - nu * t) / a) + math.exp(2.0 * nu * b / sigma**2) * phi((b + nu * t) / a)

    # Act
    out = _position_json(*LONG, "--volatility", "0.6", "--horizon-hours", "48", "--mark", "59000")

    # Assert
    assert out["liquidation_probability"] == pytest.approx(expected, rel=1e-9)
    assert out["horizon_s"] == 48 * 3600.0


def test_position_numbers_equal_the_analytics_functions_called_directly() -> None:
    # Arrange
    args = ("--volatility", "0.9", "--horizon-hours", "12", "--drift", "0.1", "--mark", "61000")
    horizon = 12 * 3600.0

    # Act
    out = _position_json(*LONG, *args)

    # Assert
    lp = out["liquidation_price"]
    p = gbm_hit_probability(61_000.0, lp, 0.1, 0.9, horizon, direction="down")
    sens = hit_probability_sensitivities(61_000.0, lp, 0.1, 0.9, horizon, direction="down")
    greeks = knockout_forward_greeks(
        61_000.0, size=0.5, entry_price=60_000.0, liquidation_price=lp, sigma=0.9,
        horizon_s=horizon, mu=0.1, knockout_value=-1_500.0,
    )  # fmt: skip
    assert out["liquidation_probability"] == pytest.approx(float(p), rel=1e-12)
    assert out["probability_d_price"] == pytest.approx(float(sens.d_price), rel=1e-12)
    assert out["probability_d_volatility"] == pytest.approx(float(sens.d_sigma), rel=1e-12)
    assert out["value"] == pytest.approx(float(greeks.value), rel=1e-12)
    assert out["delta"] == pytest.approx(float(greeks.delta), rel=1e-12)
    assert out["gamma"] == pytest.approx(float(greeks.gamma), rel=1e-12)
    assert out["unrealized_pnl"] == pytest.approx(0.5 * 1_000.0)


def test_position_greeks_match_optional_stopping_identity_and_finite_differences() -> None:
    # Arrange: with mu = 0, V = q (S - E) - penalty x P(S) where penalty = q (L - E) - R and
    # R = -margin, so delta = q - penalty dP/dS and gamma = -penalty d2P/dS2. dP/dS and d2P/dS2
    # by central differences of the closed-form probability.
    out = _position_json(*LONG, "--mark", "59500")
    lp, horizon, s, h = out["liquidation_price"], DAY_S, 59_500.0, 1.0

    def prob(x: float) -> float:
        return float(gbm_hit_probability(x, lp, 0.0, 0.8, horizon, direction="down"))

    dp = (prob(s + h) - prob(s - h)) / (2 * h)
    d2p = (prob(s + h) - 2 * prob(s) + prob(s - h)) / h**2
    penalty = 0.5 * (lp - 60_000.0) + 1_500.0

    # Assert
    assert penalty == pytest.approx(0.004 * 0.5 * LONG_LP)  # maintenance margin at LP
    assert out["probability_d_price"] == pytest.approx(dp, rel=1e-5)
    assert out["delta"] == pytest.approx(0.5 - penalty * dp, rel=1e-7)
    assert out["gamma"] == pytest.approx(-penalty * d2p, rel=1e-3)
    assert out["value"] == pytest.approx(0.5 * (s - 60_000.0) - penalty * prob(s), rel=1e-9)


def test_position_mark_beyond_liquidation_price_gives_certain_liquidation_and_no_delta() -> None:
    out = _position_json(*LONG, "--mark", "57000")

    assert out["liquidation_probability"] == 1.0
    assert out["delta"] == 0.0
    assert out["value"] == -1_500.0


def test_position_table_shows_prices_and_probability() -> None:
    result = runner.invoke(app, ["position", *LONG])

    assert result.exit_code == 0, result.output
    assert "57,228.92" in result.output
    assert "57,000.00" in result.output
    assert "P(liquidated within 24 h)" in result.output
    assert "BTCUSDT on binance" in result.output


def test_position_uses_the_tier_at_the_liquidation_price_for_large_positions() -> None:
    # Arrange: long 10 BTC at 50,000 with 25,000 (docs/_sections/margin.md worked example,
    # notional 500,000: bracket 3, mmr 1 %, cum 1,300): LP = (25,000 + 1,300 - 500,000) / (0.1 - 10)
    expected = (25_000.0 + 1_300.0 - 500_000.0) / (10 * 0.01 - 10.0)

    # Act
    out = _position_json("--side", "long", "--size", "10", "--entry", "50000", "--margin", "25000")

    # Assert
    assert out["liquidation_price"] == pytest.approx(expected, rel=1e-12)  # 47,848.48


# Inverse (BitMEX XBTUSD): long 10,000 contracts of 1 USD at 10,000 with 0.1 XBT (10x); value
# 1 XBT, first risk-limit step (MM 0.4 % + the 0.075 % taker fee the preset keeps in the
# margins). rules.inverse closed forms (Binance COIN-M's mark-basis form):
# LP = N (mmr + 1) / (m + N / EP) = 10,047.5 / 1.1, BP = EP / (1 + 0.1).
INVERSE = ["--venue", "bitmex", "--symbol", "XBTUSD", "--side", "long", "--size", "10000",
           "--entry", "10000", "--margin", "0.1"]  # fmt: skip


def test_position_inverse_prices_are_the_coin_margined_closed_forms() -> None:
    out = _position_json(*INVERSE)

    assert out["symbol"] == "XBTUSD"
    assert out["size"] == 10_000.0
    assert out["liquidation_price"] == pytest.approx(10_047.5 / 1.1, rel=1e-12)
    assert out["bankruptcy_price"] == pytest.approx(10_000.0 / 1.1, rel=1e-12)
    assert out["notional"] == pytest.approx(1.0)  # XBT
    assert out["initial_margin"] == pytest.approx(0.01 + 2 * 0.00075)  # 100x + fees, 1 XBT
    assert out["maintenance_margin"] == pytest.approx(0.004 + 0.00075)
    assert out["leverage"] == pytest.approx(10.0)
    short = _position_json(*INVERSE[:4], "--side", "short", *INVERSE[6:])
    # Short: LP = N (mmr - 1) / (m - N / EP) = 9,952.5 / 0.9.
    assert short["liquidation_price"] == pytest.approx(9_952.5 / 0.9, rel=1e-12)


def test_position_inverse_probability_and_greeks_in_usd_prices() -> None:
    # The probability is the hit probability of the USD price; delta and gamma are derivatives
    # in the USD price: central differences of the command's own value at bumped marks.
    s, h = 9_900.0, 1.0
    out = _position_json(*INVERSE, "--mark", str(s))
    lp = out["liquidation_price"]
    want = float(gbm_hit_probability(s, lp, 0.0, 0.8, DAY_S, direction="down"))
    assert out["liquidation_probability"] == pytest.approx(want, rel=1e-12)
    assert out["unrealized_pnl"] == pytest.approx(10_000.0 * (1 / 10_000.0 - 1 / s))
    up = _position_json(*INVERSE, "--mark", str(s + h))["value"]
    down = _position_json(*INVERSE, "--mark", str(s - h))["value"]
    assert out["delta"] == pytest.approx((up - down) / (2 * h), rel=1e-5)
    assert out["gamma"] == pytest.approx((up - 2 * out["value"] + down) / h**2, rel=1e-3)
    beyond = _position_json(*INVERSE, "--mark", "9000")
    assert (beyond["liquidation_probability"], beyond["value"]) == (1.0, -0.1)


@pytest.mark.parametrize(
    ("args", "fragments"),
    [
        (["--side", "long", "--size", "-1", "--entry", "60000", "--margin", "1500"],
         ["`--size`", "> 0", "-1.0"]),
        ([*LONG, "--horizon-hours", "0"], ["`--horizon-hours`", "> 0", "0.0"]),
        ([*LONG, "--venue", "nowhere"], ["venue", "'nowhere'", "binance"]),
        (["--side", "long", "--size", "1", "--entry", "60000", "--margin", "100"],
         ["`--margin`", "initial margin 600.00", "100.0"]),
        (["--side", "up", "--size", "1", "--entry", "60000", "--margin", "1500"],
         ["`--side`", "'long' or 'short'", "'up'"]),
        ([*LONG, "--volatility", "nan"], ["`--volatility`", "finite"]),
        ([*LONG, "--mark", "-5"], ["`--mark`", "> 0"]),
    ],
)  # fmt: skip
def test_position_bad_input_exits_2_naming_option_value_and_rule(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    args: list[str],
    fragments: list[str],
) -> None:
    code, output = _run_main(monkeypatch, capsys, "position", *args)

    assert code == 2
    for fragment in fragments:
        assert fragment in output


def test_position_bad_input_raises_validation_error_under_cli_runner() -> None:
    result = runner.invoke(app, ["position", *LONG, "--horizon-hours", "-1"])

    assert isinstance(result.exception, ValidationError)
    assert result.exception.field == "--horizon-hours"


def test_position_missing_option_is_a_usage_error_with_exit_2(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    code, output = _run_main(monkeypatch, capsys, "position", "--side", "long", "--size", "1")

    assert code == 2
    assert "--entry" in output


# --------------------------------------------------------------------------------------------
# analytics.heatmap
# --------------------------------------------------------------------------------------------


def test_heatmap_hand_counted_buckets_sides_and_zones() -> None:
    # Arrange: mark 100, buckets of 10.
    prices = [81.0, 89.0, 95.0, 95.0, 104.0, 112.0, 119.9, 90.0, np.nan, 0.0]
    sizes = [1.0, 2.0, 1.0, -3.0, -1.0, -2.0, -1.0, 1.0, -4.0, 5.0]
    sides = [1, 1, 1, -1, -1, -1, -1, 1, -1, 1]

    # Act
    frame = liquidation_heatmap(prices, sizes, sides, 100.0, bucket_width=10.0)

    # Assert: by hand, notional = |size| x price, NaN (cross) and 0 (never liquidated) left out.
    expected = [
        (80.0, 90.0, "long", "below", 2, 3.0, 81.0 + 178.0),
        (90.0, 100.0, "long", "below", 2, 2.0, 95.0 + 90.0),
        (90.0, 100.0, "short", "below", 1, 3.0, 285.0),
        (100.0, 110.0, "short", "above", 1, 1.0, 104.0),
        (110.0, 120.0, "short", "above", 2, 3.0, 224.0 + 119.9),
    ]
    assert list(frame.columns) == list(HEATMAP_COLUMNS)
    got = frame[["bucket_low", "bucket_high", "side", "zone", "count", "size", "notional"]]
    rows = [tuple(r) for r in got.itertuples(index=False)]
    assert [r[:5] for r in rows] == [e[:5] for e in expected]
    assert [r[5:] for r in rows] == [pytest.approx(e[5:]) for e in expected]
    assert frame["distance"].tolist() == pytest.approx([-0.15, -0.05, -0.05, 0.05, 0.15])


def test_heatmap_price_on_an_edge_goes_up_and_at_the_mark_is_above() -> None:
    frame = liquidation_heatmap([100.0, 110.0], [1.0, 1.0], [1, 1], 100.0, bucket_width=10.0)

    assert frame["bucket_low"].tolist() == [100.0, 110.0]
    assert frame["zone"].tolist() == ["above", "above"]


def test_heatmap_accepts_absolute_sizes_and_empty_input() -> None:
    signed = liquidation_heatmap([90.0, 110.0], [2.0, -2.0], [1, -1], 100.0, bucket_width=5.0)
    absolute = liquidation_heatmap([90.0, 110.0], [2.0, 2.0], [1, -1], 100.0, bucket_width=5.0)
    empty = liquidation_heatmap([], [], [], 100.0, bucket_width=5.0)

    pd.testing.assert_frame_equal(signed, absolute)
    assert len(empty) == 0
    assert list(empty.columns) == list(HEATMAP_COLUMNS)
    assert len(largest_clusters(empty)) == 0


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"sides": [1, 0]}, "sides[1]"),
        ({"sizes": [-1.0, -1.0]}, "sizes[0]"),  # a long with a negative size
        ({"sizes": [1.0, np.nan]}, "sizes[1]"),
        ({"sizes": [1.0]}, "sizes"),
        ({"liquidation_prices": [90.0, -1.0]}, "liquidation_prices[1]"),
        ({"liquidation_prices": [90.0, np.inf]}, "liquidation_prices[1]"),
        ({"mark_price": 0.0}, "mark_price"),
        ({"bucket_width": -5.0}, "bucket_width"),
        ({"bucket_width": np.nan}, "bucket_width"),
    ],
)
def test_heatmap_bad_input_raises_validation_error_naming_the_field(
    kwargs: dict[str, object], field: str
) -> None:
    args: dict[str, object] = {
        "liquidation_prices": [90.0, 110.0],
        "sizes": [1.0, -1.0],
        "sides": [1, -1],
        "mark_price": 100.0,
        "bucket_width": 10.0,
    }
    args.update(kwargs)

    with pytest.raises(ValidationError) as info:
        liquidation_heatmap(
            args["liquidation_prices"],  # type: ignore[arg-type]
            args["sizes"],  # type: ignore[arg-type]
            args["sides"],  # type: ignore[arg-type]
            args["mark_price"],  # type: ignore[arg-type]
            bucket_width=args["bucket_width"],  # type: ignore[arg-type]
        )
    assert info.value.field == field


def test_largest_clusters_hand_ranked_support_and_resistance() -> None:
    # Arrange: longs below 100: buckets 80 (notional 300), 90 (90); a long above the mark (105,
    # already liquidatable) is not support. Shorts above: 110 (110), 120 (240), 130 (130).
    prices = [80.0, 80.0, 90.0, 105.0, 110.0, 120.0, 130.0]
    sizes = [1.0, 2.75, 1.0, 10.0, -1.0, -2.0, -1.0]
    sides = [1, 1, 1, 1, -1, -1, -1]
    frame = liquidation_heatmap(prices, sizes, sides, 100.0, bucket_width=10.0)

    # Act
    clusters = largest_clusters(frame, 2)

    # Assert
    assert list(clusters.columns) == list(CLUSTER_COLUMNS)
    got = clusters[["kind", "rank", "bucket_low", "notional"]]
    assert [tuple(r) for r in got.itertuples(index=False)] == [
        ("support", 1, 80.0, 300.0),
        ("support", 2, 90.0, 90.0),
        ("resistance", 1, 120.0, 240.0),
        ("resistance", 2, 130.0, 130.0),
    ]


def test_largest_clusters_equal_notional_ranks_the_nearer_bucket_first() -> None:
    frame = liquidation_heatmap([120.0, 150.0], [-5.0, -4.0], [-1, -1], 100.0, bucket_width=10.0)

    clusters = largest_clusters(frame, 5)

    assert clusters["bucket_low"].tolist() == [120.0, 150.0]  # both 600: nearer first
    assert clusters["kind"].tolist() == ["resistance", "resistance"]


@pytest.mark.parametrize("n", [0, -1, 1.5, True])
def test_largest_clusters_rejects_a_bad_count(n: object) -> None:
    frame = liquidation_heatmap([90.0], [1.0], [1], 100.0, bucket_width=10.0)

    with pytest.raises(ValidationError, match="`n`"):
        largest_clusters(frame, n)  # type: ignore[arg-type]


_positions = st.lists(
    st.tuples(
        st.one_of(st.floats(1.0, 200_000.0), st.just(math.nan)),
        st.floats(0.001, 1_000.0),
        st.sampled_from([1, -1]),
    ),
    max_size=60,
)


@given(positions=_positions, mark=st.floats(1.0, 200_000.0), width=st.floats(0.5, 5_000.0))
def test_heatmap_preserves_total_notional_and_count_per_side(
    positions: list[tuple[float, float, int]], mark: float, width: float
) -> None:
    # Arrange
    prices = np.array([p for p, _, _ in positions], dtype=np.float64)
    sizes = np.array([q * s for _, q, s in positions], dtype=np.float64)
    sides = np.array([s for _, _, s in positions], dtype=np.float64)

    # Act
    frame = liquidation_heatmap(prices, sizes, sides, mark, bucket_width=width)

    # Assert
    for side, sign in (("long", 1.0), ("short", -1.0)):
        keep = np.isfinite(prices) & (sides == sign)
        part = frame[frame["side"] == side]
        expected = math.fsum(abs(q) * p for p, q in zip(prices[keep], sizes[keep], strict=True))
        assert part["notional"].sum() == pytest.approx(expected, rel=1e-12, abs=1e-9)
        assert int(part["count"].sum()) == int(keep.sum())
    assert (frame["bucket_high"] > frame["bucket_low"]).all()
    assert not frame.duplicated(["bucket_low", "side", "zone"]).any()


# --------------------------------------------------------------------------------------------
# deleverage heatmap
# --------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def population_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    market = preset("binance", "BTC")
    spec = PopulationSpec(n_positions=400, seed=7, isolated_fraction=0.7)
    path = tmp_path_factory.mktemp("heatmap") / "population.parquet"
    generate_population(spec, market, reference_price=60_000.0).to_parquet(path)
    return path


def test_heatmap_command_json_totals_match_the_population_by_hand(population_file: Path) -> None:
    # Arrange
    frame = pd.read_parquet(population_file)
    iso = frame[frame["margin_mode"] == "isolated"]
    expected_total = math.fsum(
        abs(q) * p for q, p in zip(iso["size"], iso["liquidation_price"], strict=True) if p > 0
    )

    # Act
    result = runner.invoke(app, ["heatmap", str(population_file), "--bucket", "250", "--json"])

    # Assert
    assert result.exit_code == 0, result.output
    out = json.loads(result.output)
    assert out["positions"] == 400
    assert out["mapped"] == int((iso["liquidation_price"] > 0).sum())
    assert out["mark_price"] == pytest.approx(float(np.median(frame["entry_price"])))
    assert out["bucket_width"] == 250.0
    total = math.fsum(row["notional"] for row in out["buckets"])
    assert total == pytest.approx(expected_total, rel=1e-12)
    direct = liquidation_heatmap(
        frame["liquidation_price"], frame["size"], frame["side"], out["mark_price"],
        bucket_width=250.0,
    )  # fmt: skip
    assert [row["notional"] for row in out["buckets"]] == pytest.approx(
        direct["notional"].tolist(), rel=1e-12
    )
    kinds = [row["kind"] for row in out["clusters"]]
    assert kinds == ["support"] * 3 + ["resistance"] * 3


def test_heatmap_command_table_names_top_buckets_and_clusters(population_file: Path) -> None:
    result = runner.invoke(app, ["heatmap", str(population_file), "--mark", "60000", "--top", "2"])

    assert result.exit_code == 0, result.output
    assert "Largest long liquidation buckets" in result.output
    assert "Largest short liquidation buckets" in result.output
    assert "support #1" in result.output
    assert "resistance #3" in result.output
    assert "mark 60,000.00" in result.output


def test_heatmap_command_writes_self_contained_html(population_file: Path, tmp_path: Path) -> None:
    out = tmp_path / "heatmap.html"

    result = runner.invoke(app, ["heatmap", str(population_file), "--html", str(out), "--json"])

    assert result.exit_code == 0, result.output
    html = out.read_text(encoding="utf-8")
    assert html.lstrip().lower().startswith("<!doctype html>")
    assert "long liquidations" in html
    assert "short liquidations" in html
    assert re.search(r"<script[^>]*\bsrc=", html) is None  # plotly.js embedded, not fetched
    assert len(html) > 1_000_000  # the bundled plotly.js


def test_heatmap_command_missing_file_exits_2_naming_the_path(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    missing = tmp_path / "absent.parquet"

    code, output = _run_main(monkeypatch, capsys, "heatmap", str(missing))

    assert code == 2
    assert "absent.parquet" in output.replace(" ", "")


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["--bucket", "0"], "`--bucket`"),
        (["--mark", "-1"], "`--mark`"),
        (["--top", "0"], "`--top`"),
        (["--venue", "nowhere"], "unknown venue"),
    ],
)
def test_heatmap_command_bad_option_exits_2(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    population_file: Path,
    args: list[str],
    fragment: str,
) -> None:
    code, output = _run_main(monkeypatch, capsys, "heatmap", str(population_file), *args)

    assert code == 2
    assert fragment in output
