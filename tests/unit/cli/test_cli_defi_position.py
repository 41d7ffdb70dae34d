"""``deleverage position --protocol`` and ``deleverage heatmap --protocol``.

Numbers from outside the code: the issue's worked examples (Aave HF 0.9765 and its liquidation
of 8,500 USDC for 4.4625 ETH; Maker tab 11,300 and keeper incentive 311.3), the liquidation
prices by hand (``17,000 / (10 x 0.83)``; ``debt x mat / ink``), and, for the heatmap, a
closed form (a Maker vault's bucketed notional ``ink x debt x mat / ink = debt x mat``, so the
map's total is ``mat`` times the book's debt) and a hand-built population.
"""

from __future__ import annotations

import json
import sys
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from cli_contract import assert_contract, call
from deleverage.analytics.heatmap import liquidation_heatmap
from deleverage.cli.app import app, main
from deleverage.cli.defi_position import venue_levels
from deleverage.protocols.aave import AaveConfig, AavePopulation, build_aave
from deleverage.protocols.maker.config import MakerConfig, MakerPopulation, maker_population
from deleverage.protocols.maker.venue import build_maker

runner = CliRunner()
AAVE = ["--protocol", "aave", "--collateral", "ETH=10", "--debt", "USDC=17000"]
MAKER = ["--protocol", "maker", "--collateral", "ETH=10", "--debt", "DAI=10000"]


def _json(*args: str) -> dict[str, Any]:
    result = runner.invoke(app, [*args, "--json"])
    assert result.exit_code == 0, result.output
    payload: dict[str, Any] = json.loads(result.output)
    return payload


def _exit(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], *args: str
) -> tuple[int, str]:
    monkeypatch.setattr(sys, "argv", ["deleverage", *args])
    with pytest.raises(SystemExit) as info:
        main()
    captured = capsys.readouterr()
    code = info.value.code
    return (code if isinstance(code, int) else 1), " ".join((captured.out + captured.err).split())


def test_position_aave_issue_example() -> None:
    out = _json("position", *AAVE, "--price", "ETH=2000")

    assert out["protocol"] == "aave"
    assert round(out["health_factor"], 4) == 0.9765
    assert out["close_factor"] == 0.5
    assert out["debt_repaid"] == pytest.approx(8_500.0)
    assert out["collateral_seized"] == pytest.approx(4.4625)
    assert out["protocol_fee"] == pytest.approx(0.02125)
    assert out["to_liquidator"] == pytest.approx(4.44125)
    assert round(out["health_after"], 4) == 1.0814
    assert out["levels"][0]["liquidation_price"] == pytest.approx(17_000.0 / 8.3)


def test_position_aave_table_names_the_figures() -> None:
    result = runner.invoke(app, ["position", *AAVE, "--price", "ETH=2000"])

    assert result.exit_code == 0, result.output
    for text in ("0.9765", "2,048.19", "4.4625", "0.02125", "4.44125", "1.0814", "50%"):
        assert text in result.output


def test_position_aave_param_changes_the_threshold() -> None:
    # LT 0.80: HF = 16,000 / 17,000; liquidation price 17,000 / 8.
    out = _json(
        "position", *AAVE, "--price", "ETH=2000", "--param", "WETH.liquidation_threshold=0.8",
        "--param", "WETH.ltv=0.75",
    )  # fmt: skip

    assert out["health_factor"] == pytest.approx(16_000.0 / 17_000.0)
    assert out["levels"][0]["liquidation_price"] == pytest.approx(17_000.0 / 8.0)


def test_position_maker_issue_example() -> None:
    out = _json("position", *MAKER, "--price", "ETH=2000", "--osm-price", "2100")

    assert out["liquidation_price"] == pytest.approx(1_500.0)
    assert out["tab"] == pytest.approx(11_300.0)
    assert out["keeper_incentive"] == pytest.approx(311.3)
    assert out["osm_price"] == 2_100.0
    assert out["osm_next"] == 2_000.0


def test_position_maker_params() -> None:
    # mat 1.45, chop 1.10, tip 100, chip 0.2%: 10,000 x 1.45 / 10; tab 11,000; 100 + 22.
    out = _json(
        "position", *MAKER, "--price", "ETH=2000", "--param", "mat=1.45", "--param", "chop=1.1",
        "--param", "clipper.tip=100", "--param", "clipper.chip=0.002",
    )  # fmt: skip

    assert out["liquidation_price"] == pytest.approx(1_450.0)
    assert out["tab"] == pytest.approx(11_000.0)
    assert out["keeper_incentive"] == pytest.approx(122.0)


def test_position_gmx_and_synthetix_by_hand() -> None:
    gmx = _json(
        "position", "--protocol", "gmx", "--side", "long", "--size", "10", "--entry", "2000",
        "--collateral", "USDC=2000",
    )  # fmt: skip
    snx = _json(
        "position", "--protocol", "synthetix", "--side", "short", "--size", "10", "--entry",
        "2000", "--margin", "2000", "--mark", "2050",
    )  # fmt: skip

    assert gmx["liquidation_price"] == pytest.approx(1_841.2)  # (20,000 + 212 + 200) / 10
    assert snx["liquidation_price"] == pytest.approx((22_000.0 - 2.05) / 10.0501)


@pytest.mark.parametrize(
    ("args", "option"),
    [
        (["position", "--protocol", "curve"], "--protocol"),
        (["position", *AAVE, "--price", "BTC=2000"], "--price"),
        (["position", *AAVE], "--price"),
        (["position", "--protocol", "maker", "--collateral", "ETH=1", "--debt", "USD=1",
          "--price", "ETH=1"], "--debt"),
        (["position", *AAVE, "--price", "ETH=-1"], "--price"),
        (["position", *AAVE, "--price", "ETH=2000", "--param", "WETH.nope=1"], "--param"),
        (["position", *AAVE, "--price", "ETH=2000", "--param", "WETH.liquidation_threshold=2"],
         "--param"),
        (["position", *AAVE, "--price", "ETH=2000", "--side", "long"], "--side"),
        (["position", "--protocol", "aave", "--collateral", "ETH", "--price", "ETH=1"],
         "--collateral"),
        (["position", *MAKER, "--price", "ETH=2000", "--param", "mat=0.5"], "--param"),
        (["position", "--protocol", "gmx", "--size", "1", "--entry", "1", "--collateral",
          "USD=1"], "--side"),
        (["position", "--protocol", "gmx", "--side", "long", "--size", "1", "--entry", "1",
          "--collateral", "USD=1", "--debt", "DAI=1"], "--debt"),
        (["position", "--protocol", "synthetix", "--side", "long", "--size", "1", "--entry",
          "1"], "--margin"),
        (["position", "--side", "long", "--size", "1", "--entry", "60000"], "--margin"),
        (["position", "--side", "long", "--size", "1", "--entry", "60000", "--margin", "3000",
          "--collateral", "ETH=1"], "--protocol"),
        (["position", *AAVE, "--price", "ETH=2000", "--volatility", "0"], "--volatility"),
        (["heatmap", "--protocol", "aave", "--accounts", "0"], "--accounts"),
        (["heatmap", "--protocol", "aave", "--venue", "binance"], "--venue"),
        (["heatmap", "--protocol", "maker", "--mark", "-5"], "--mark"),
        (["heatmap", "--scenario", "btc-2025-10-10", "--param", "mat=1.2"], "--param"),
    ],
)  # fmt: skip
def test_bad_input_exits_2_naming_the_option(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], args: list[str],
    option: str,
) -> None:  # fmt: skip
    code, text = _exit(monkeypatch, capsys, *args)

    assert code == 2, text
    assert option in text
    assert "Traceback" not in text


def test_heatmap_maker_total_is_mat_times_the_debt() -> None:
    # Each vault's liquidation notional: ink x (debt x mat / ink) = debt x mat.
    config = MakerConfig()
    out = _json(
        "heatmap", "--protocol", "maker", "--accounts", "300", "--seed", "3", "--mark", "2500",
        "--bucket", "100",
    )  # fmt: skip
    book = maker_population(300, 3, price=2_500.0, mat=config.mat, rate=config.rate,
                            dust=config.dust, ratio_median=2.5, ratio_sigma=0.35,
                            collateral_median=50.0, collateral_sigma=1.2)  # fmt: skip
    total = sum(row["notional"] for row in out["buckets"])

    assert out["mapped"] == 300
    assert out["mark_price"] == 2_500.0
    assert total == pytest.approx(config.mat * float((book.art * config.rate).sum()), rel=1e-9)
    assert {row["side"] for row in out["buckets"]} == {"long"}


@pytest.mark.parametrize("protocol", ["aave", "maker", "gmx", "synthetix"])
def test_heatmap_of_each_protocol_is_seeded(protocol: str) -> None:
    args = ["heatmap", "--protocol", protocol, "--accounts", "200", "--bucket", "50"]
    first = _json(*args, "--seed", "1")
    again = _json(*args, "--seed", "1")
    other = _json(*args, "--seed", "2")

    assert first == again
    assert first["buckets"] != other["buckets"]
    assert first["mapped"] > 0


def test_venue_levels_of_hand_built_books() -> None:
    # Maker: 10 ETH owing 10,000 and 5 ETH owing 4,000 at mat 1.5 -> 1,500 and 1,200, longs.
    maker = build_maker(
        MakerConfig(), MakerPopulation(ink=np.array([10.0, 5.0]), art=np.array([1e4, 4e3]))
    )
    frame = venue_levels(maker)
    assert frame["liquidation_price"].tolist() == pytest.approx([1_500.0, 1_200.0])
    assert frame["side"].tolist() == [1.0, 1.0]
    # Aave: 10 ETH against 16,600 USDC (HF = 1 at 2,000) and 20,000 USDC (LT 0.78) against
    # 5 ETH (HF = 1 at 3,120): a long at 2,000 and a short at 3,120.
    c = np.array([[10.0, 0.0], [0.0, 20_000.0]])
    d = np.array([[0.0, 16_600.0], [5.0, 0.0]])
    aave = build_aave(AaveConfig(), AavePopulation(c, d), prices={"ETH": 1_900.0})
    frame = venue_levels(aave)
    assert frame["liquidation_price"].tolist() == pytest.approx([2_000.0, 3_120.0])
    assert frame["side"].tolist() == [1.0, -1.0]
    buckets = liquidation_heatmap(
        frame["liquidation_price"], frame["size"], frame["side"], 2_500.0, bucket_width=500.0
    )
    # Long: 10 x 2,000 in [2,000, 2,500) below the mark; short: 5 x 3,120 in [3,000, 3,500).
    assert buckets[["bucket_low", "side", "zone", "notional"]].values.tolist() == [
        [2_000.0, "long", "below", pytest.approx(20_000.0)],
        [3_000.0, "short", "above", pytest.approx(15_600.0)],
    ]


_NUMBER = st.one_of(
    st.floats(min_value=1e-12, max_value=1e16),
    st.sampled_from([0.0, -1.0, 1e-300, 1e15, float("nan"), float("inf")]),
).map(lambda x: f"{x!r}")


@settings(max_examples=40, deadline=None)
@given(
    protocol=st.sampled_from(["aave", "maker", "gmx", "synthetix"]),
    a=_NUMBER,
    b=_NUMBER,
    c=_NUMBER,
    d=_NUMBER,
    side=st.sampled_from(["long", "short"]),
)
def test_position_protocol_keeps_the_cli_contract(
    protocol: str, a: str, b: str, c: str, d: str, side: str
) -> None:
    # Any numbers: exit 0 with strict JSON, or exit 2 with a message; never a traceback.
    args = {
        "aave": ["--collateral", f"ETH={a}", "--collateral", f"USDC={d}", "--debt", f"USDC={b}",
                 "--price", f"ETH={c}"],
        "maker": ["--collateral", f"ETH={a}", "--debt", f"DAI={b}", "--price", f"ETH={c}",
                  "--osm-price", d],
        "gmx": ["--side", side, "--size", a, "--entry", c, "--collateral", f"USD={b}",
                "--mark", d],
        "synthetix": ["--side", side, "--size", a, "--entry", c, "--margin", b, "--mark", d],
    }[protocol]  # fmt: skip
    outcome = call("position", "--protocol", protocol, *args, "--json")

    assert_contract(outcome, names=("`--",) if outcome.code == 2 else ())


def test_heatmap_table_of_a_protocol() -> None:
    result = runner.invoke(
        app, ["heatmap", "--protocol", "maker", "--accounts", "50", "--top", "2"]
    )

    assert result.exit_code == 0, result.output
    assert "50 positions with a liquidation price" in result.output
    assert "(isolated)" not in result.output
    assert "maker population (50 accounts, seed 0)" in result.output
