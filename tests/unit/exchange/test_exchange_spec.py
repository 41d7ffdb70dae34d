"""Market specs: computed maintenance deductions, validation, TOML/JSON loading, stable ids."""

from __future__ import annotations

import json
import math
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pydantic
import pytest
from hypothesis import given

from deleverage import MarginTier, MarketSpec
from deleverage.errors import ConfigError, DeleverageError
from deleverage.rules.margin import maintenance_margin
from deleverage.spec import TierArrays
from strategies import tier_tables

# ---------------------------------------------------------------------------- published tables
# Each row: (notional floor in USDT, max leverage, maintenance margin rate, published
# maintenance amount). The amounts are the venue's numbers, never derived by this code.

# Binance BTCUSDT USDⓈ-M perpetual, tiers effective 2021-03-18 (Binance announcement "Updates to
# Leverage and Margin Tiers of Binance Futures Contracts (2021-03-18)",
# https://www.binance.com/en/support/announcement/86cf9aa472574b8cb2e05bb751c2a9a6); the
# maintenance amounts 0, 50, 1,300, 16,300, 266,300, 1,266,300, 2,516,300, 5,016,300,
# 25,016,300, 100,016,300 are Binance's "cumFastMaintenanceAmount" for that table, as listed in
# https://gist.github.com/highfestiva/b71e76f51eed84d56c1be8ebbcc286b5 (taken from Binance's UI).
# Binance's rule: "Maintenance Amount on Level n = Floor of Position Bracket on Level n *
# (MMR on Level n - MMR on Level n-1) + Maintenance Amount on Level n-1"
# (https://www.binance.com/en/support/faq/ceccfcfb4e3a45e3b48b0b1bb1a8ae46).
Row = tuple[float, float, float, float]  # floor, max leverage, mmr, maintenance amount

BINANCE_BTCUSDT_2021: list[Row] = [
    (0, 125, 0.004, 0),
    (50_000, 100, 0.005, 50),
    (250_000, 50, 0.01, 1_300),
    (1_000_000, 20, 0.025, 16_300),
    (10_000_000, 10, 0.05, 266_300),
    (20_000_000, 5, 0.10, 1_266_300),
    (50_000_000, 4, 0.125, 2_516_300),
    (100_000_000, 3, 0.15, 5_016_300),
    (200_000_000, 2, 0.25, 25_016_300),
    (300_000_000, 1, 0.50, 100_016_300),
]

# Pionex BTCUSDT perpetual, "Maintenance Margin", https://www.pionex.com/blog/maintenance-margin/
PIONEX_BTCUSDT: list[Row] = [
    (0, 100, 0.005, 0),
    (150_000, 25, 0.01, 750),
    (500_000, 15, 0.025, 8_250),
    (2_000_000, 10, 0.05, 58_250),
    (5_000_000, 5, 0.10, 308_250),
    (10_000_000, 2, 0.25, 1_808_250),
    (20_000_000, 1, 0.50, 6_808_250),
]

# LN Markets BTC-USDT perpetual, "Margining", https://docs.ln.exchange/perpetual/margining
LN_EXCHANGE_BTC_USDT: list[Row] = [
    (0, 20, 0.005, 0),
    (50_000, 20, 0.01, 250),
    (100_000, 20, 0.02, 1_250),
    (200_000, 20, 0.025, 2_250),
    (250_000, 10, 0.05, 8_500),
    (500_000, 5, 0.10, 33_500),
    (1_000_000, 4, 0.125, 58_500),
    (1_250_000, 2, 0.25, 214_750),
    (2_500_000, 1, 0.50, 839_750),
]

PUBLISHED = {
    "binance_btcusdt_2021": BINANCE_BTCUSDT_2021,
    "pionex_btcusdt": PIONEX_BTCUSDT,
    "ln_exchange_btc_usdt": LN_EXCHANGE_BTC_USDT,
}


def _tiers(table: Sequence[Row]) -> list[dict[str, float]]:
    return [
        {"notional_floor": floor, "max_leverage": lev, "maintenance_rate": mmr}
        for floor, lev, mmr, _ in table
    ]


def _spec(table: Sequence[Row], **fields: Any) -> MarketSpec:
    return MarketSpec.from_mapping({"symbol": "BTCUSDT", "tiers": _tiers(table), **fields})


def _tier(floor: float, lev: float, mmr: float) -> dict[str, float]:
    return {"notional_floor": floor, "max_leverage": lev, "maintenance_rate": mmr}


@pytest.mark.parametrize("name", sorted(PUBLISHED))
def test_computed_maintenance_deduction_matches_published_maintenance_amounts(name: str) -> None:
    # Arrange
    table = PUBLISHED[name]
    published = np.array([amount for *_, amount in table], dtype=np.float64)

    # Act
    cum = _spec(table).tier_arrays.cum

    # Assert
    np.testing.assert_allclose(cum, published, rtol=1e-12, atol=1e-6)


def test_maintenance_margin_matches_pionex_worked_example() -> None:
    # Pionex: a 200,000 USDT BTCUSDT position is in tier 2 and needs
    # "200,000 * 1.00% - 750 = 1,250" of maintenance margin.
    tiers = _spec(PIONEX_BTCUSDT).tier_arrays

    mm = maintenance_margin(200_000.0, tiers)

    assert float(mm) == pytest.approx(1_250.0, rel=1e-12)


def test_tier_arrays_hold_initial_rate_as_inverse_leverage() -> None:
    tiers = _spec(BINANCE_BTCUSDT_2021).tier_arrays

    np.testing.assert_allclose(tiers.imr, [1 / lev for _, lev, _, _ in BINANCE_BTCUSDT_2021])
    np.testing.assert_array_equal(tiers.floor, [f for f, *_ in BINANCE_BTCUSDT_2021])
    np.testing.assert_array_equal(tiers.mmr, [r for _, _, r, _ in BINANCE_BTCUSDT_2021])


def _split_maintenance(notional: float, tiers: tuple[MarginTier, ...]) -> float:
    # Oracle: each slice of the notional between two floors pays its own tier's rate
    # (the "split the notional value" reading of the Pionex page).
    total = 0.0
    for i, tier in enumerate(tiers):
        top = tiers[i + 1].notional_floor if i + 1 < len(tiers) else math.inf
        if notional <= tier.notional_floor:
            break
        total += (min(notional, top) - tier.notional_floor) * tier.maintenance_rate
    return total


@given(tiers=tier_tables())
def test_tiered_maintenance_equals_slice_by_slice_sum_and_is_continuous(
    tiers: tuple[MarginTier, ...],
) -> None:
    # Arrange
    arrays = TierArrays.from_tiers(tiers)
    floors = np.array([t.notional_floor for t in tiers])
    probes = np.concatenate([floors, floors * 0.5, floors * 1.5 + 1.0, [0.0, 1e9]])

    # Act
    got = maintenance_margin(probes, arrays)

    # Assert: slice-by-slice oracle everywhere ...
    expected = np.array([_split_maintenance(n, tiers) for n in probes])
    np.testing.assert_allclose(got, expected, rtol=1e-9, atol=1e-6)
    # ... and no jump at any floor (approach each floor from just below).
    below = maintenance_margin(np.maximum(floors - 1e-6, 0.0), arrays)
    np.testing.assert_allclose(below, maintenance_margin(floors, arrays), rtol=1e-9, atol=1e-5)


# ---------------------------------------------------------------------------- validation


def _base(**fields: Any) -> dict[str, Any]:
    return {"symbol": "BTCUSDT", "tiers": [_tier(0, 20, 0.01), _tier(10_000, 10, 0.02)], **fields}


INVALID_TABLES = [
    pytest.param(
        [_tier(5_000, 20, 0.01)], "tiers[0].notional_floor", "5000", id="first-floor-not-zero"
    ),
    pytest.param(
        [_tier(0, 20, 0.01), _tier(0, 10, 0.02)],
        "tiers[1].notional_floor",
        "0",
        id="floors-not-increasing",
    ),
    pytest.param(
        [_tier(0, 20, 0.01), _tier(50_000, 10, 0.02), _tier(20_000, 5, 0.05)],
        "tiers[2].notional_floor",
        "20000",
        id="floors-decreasing",
    ),
    pytest.param([_tier(0, 20, 0.08)], "tiers[0].maintenance_rate", "0.08", id="mmr-above-imr"),
    pytest.param(
        [_tier(0, 20, 0.02), _tier(10_000, 10, 0.01)],
        "tiers[1].maintenance_rate",
        "0.01",
        id="mmr-falls",
    ),
    pytest.param(
        [_tier(0, 10, 0.01), _tier(10_000, 20, 0.02)],
        "tiers[1].max_leverage",
        "20",
        id="leverage-rises",
    ),
    pytest.param([_tier(0, 20, math.nan)], "tiers.0.maintenance_rate", "nan", id="mmr-nan"),
    pytest.param(
        [_tier(0, 20, 0.01), _tier(math.inf, 10, 0.02)],
        "tiers.1.notional_floor",
        "inf",
        id="floor-inf",
    ),
    pytest.param(
        [_tier(0, 20, 0.01), _tier(-10, 10, 0.02)],
        "tiers.1.notional_floor",
        "-10",
        id="floor-negative",
    ),
    pytest.param([_tier(0, 20, -0.01)], "tiers.0.maintenance_rate", "-0.01", id="mmr-negative"),
    pytest.param([_tier(0, 0.5, 0.01)], "tiers.0.max_leverage", "0.5", id="leverage-below-1"),
    pytest.param([], "tiers", "[]", id="no-tiers"),
]


@pytest.mark.parametrize(("tiers", "field", "value"), INVALID_TABLES)
def test_invalid_tier_table_raises_config_error_naming_field_and_value(
    tiers: list[dict[str, float]], field: str, value: str
) -> None:
    with pytest.raises(ConfigError) as info:
        MarketSpec.from_mapping({"symbol": "BTCUSDT", "tiers": tiers})

    message = str(info.value)
    assert field in message
    assert re.search(rf"was {re.escape(value)}(?!\d)", message), message


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"tick_size": 0.0}, "tick_size"),
        ({"tick_size": math.nan}, "tick_size"),
        ({"lot_size": -0.001}, "lot_size"),
        ({"taker_fee_rate": -0.001}, "taker_fee_rate"),
        ({"maker_fee_rate": math.inf}, "maker_fee_rate"),
        ({"liquidation_fee_rate": 1.5}, "liquidation_fee_rate"),
        ({"symbol": ""}, "symbol"),
        ({"contract_type": "inverse"}, "contract_value"),
        ({"open_interest_scaling": {"lower_cap": 10.0, "upper_cap": 5.0}}, "upper_cap"),
    ],
)
def test_invalid_market_field_raises_config_error_naming_it(
    fields: dict[str, Any], field: str
) -> None:
    with pytest.raises(ConfigError) as info:
        MarketSpec.from_mapping(_base(**fields))

    assert field in str(info.value)


def test_config_error_is_a_deleverage_error_and_a_value_error() -> None:
    with pytest.raises(ConfigError) as info:
        MarketSpec.from_mapping(_base(tick_size=-1.0))

    assert isinstance(info.value, DeleverageError)
    assert isinstance(info.value, ValueError)


@pytest.mark.parametrize(
    ("data", "field"),
    [
        (_base(leverage_cap=3), "leverage_cap"),
        (
            {"symbol": "BTCUSDT", "tiers": [{**_tier(0, 20, 0.01), "mmr": 0.01}]},
            "tiers.0.mmr",
        ),
        (_base(liquidation={"kind": "full", "speed": 2}), "liquidation.speed"),
    ],
)
def test_unknown_field_is_rejected_with_its_name(data: dict[str, Any], field: str) -> None:
    with pytest.raises(ConfigError) as info:
        MarketSpec.from_mapping(data)

    assert field in str(info.value)
    assert "unknown" in str(info.value)


def test_missing_required_field_is_reported() -> None:
    with pytest.raises(ConfigError, match="symbol"):
        MarketSpec.from_mapping({"tiers": [_tier(0, 20, 0.01)]})


def test_direct_constructor_rejects_unknown_field_with_config_error() -> None:
    with pytest.raises(ConfigError):
        MarketSpec(symbol="BTCUSDT", tiers=(MarginTier(**_tier(0, 20, 0.01)),), bogus=1)  # type: ignore[call-arg]


def test_spec_is_frozen() -> None:
    spec = MarketSpec.simple("BTCUSDT")

    with pytest.raises(pydantic.ValidationError):
        spec.symbol = "ETHUSDT"  # type: ignore[misc]


# ---------------------------------------------------------------------------- TOML and JSON

VALID_TOML = """
symbol = "BTCUSDT"
tick_size = 0.1
lot_size = 0.001
maker_fee_rate = 0.0002
taker_fee_rate = 0.0005

[[tiers]]
notional_floor = 0
max_leverage = 125
maintenance_rate = 0.004

[[tiers]]
notional_floor = 50000
max_leverage = 100
maintenance_rate = 0.005

[[tiers]]
notional_floor = 250000
max_leverage = 50
maintenance_rate = 0.01

[liquidation]
kind = "partial"
"""


def test_valid_toml_text_loads_with_computed_deductions() -> None:
    spec = MarketSpec.from_toml(VALID_TOML)

    assert spec.symbol == "BTCUSDT"
    assert spec.tick_size == 0.1
    assert spec.liquidation.kind == "partial"
    np.testing.assert_allclose(spec.tier_arrays.cum, [0.0, 50.0, 1_300.0])


def test_valid_toml_file_loads_same_spec_as_text(tmp_path: Path) -> None:
    path = tmp_path / "btc.toml"
    path.write_text(VALID_TOML)

    from_path = MarketSpec.from_toml(path)
    from_str_path = MarketSpec.from_toml(str(path))

    assert from_path == MarketSpec.from_toml(VALID_TOML)
    assert from_str_path.spec_id == from_path.spec_id


def test_malformed_toml_raises_config_error() -> None:
    with pytest.raises(ConfigError) as info:
        MarketSpec.from_toml('symbol = "BTCUSDT\ntiers = [')

    assert info.value.field == "toml"
    assert "valid TOML" in str(info.value)


def test_missing_toml_file_raises_config_error_naming_path(tmp_path: Path) -> None:
    path = tmp_path / "nowhere.toml"

    with pytest.raises(ConfigError) as info:
        MarketSpec.from_toml(path)

    assert info.value.field == "path"
    assert str(path) in str(info.value)


def test_toml_with_unknown_key_is_rejected() -> None:
    with pytest.raises(ConfigError, match="max_position"):
        MarketSpec.from_toml(VALID_TOML + "\nmax_position = 5\n")


def test_toml_with_invalid_table_names_the_tier() -> None:
    text = VALID_TOML.replace("maintenance_rate = 0.01\n", "maintenance_rate = 0.002\n")

    with pytest.raises(ConfigError, match=r"tiers\[2\]\.maintenance_rate"):
        MarketSpec.from_toml(text)


@pytest.mark.parametrize(
    ("text", "rule"),
    [
        ('{"symbol": "BTCUSDT", "tiers": [', "valid JSON"),
        ("[1, 2, 3]", "JSON object"),
        ("", "valid JSON"),
    ],
)
def test_malformed_json_raises_config_error(text: str, rule: str) -> None:
    with pytest.raises(ConfigError) as info:
        MarketSpec.from_json(text)

    assert info.value.field == "json"
    assert rule in str(info.value)


def test_json_round_trip_gives_equal_spec_and_same_id() -> None:
    spec = _spec(BINANCE_BTCUSDT_2021, maker_fee_rate=-0.0001, liquidation={"kind": "partial"})

    again = MarketSpec.from_json(spec.to_json())

    assert again == spec
    assert again.spec_id == spec.spec_id
    assert again.to_json() == spec.to_json()


def test_spec_id_is_sixteen_hex_digits_and_independent_of_key_order() -> None:
    data = _base(tick_size=0.5, taker_fee_rate=0.0004)
    reordered = dict(reversed(list(data.items())))

    a = MarketSpec.from_mapping(data)
    b = MarketSpec.from_mapping(reordered)

    assert re.fullmatch(r"[0-9a-f]{16}", a.spec_id)
    assert a.spec_id == b.spec_id


def test_spec_id_same_for_explicit_defaults_and_for_toml_and_json() -> None:
    implicit = MarketSpec.from_mapping(_base())
    explicit = MarketSpec.from_mapping(
        _base(tick_size=0.01, lot_size=0.001, contract_type="linear")
    )
    via_json = MarketSpec.from_json(json.dumps(_base()))

    assert implicit.spec_id == explicit.spec_id == via_json.spec_id


@pytest.mark.parametrize(
    "change",
    [
        {"tick_size": 0.1},
        {"taker_fee_rate": 0.0004},
        {"tiers": [_tier(0, 20, 0.01), _tier(10_000, 10, 0.025)]},
        {"liquidation": {"kind": "partial"}},
    ],
)
def test_spec_id_changes_when_any_field_changes(change: dict[str, Any]) -> None:
    assert (
        MarketSpec.from_mapping(_base(**change)).spec_id != MarketSpec.from_mapping(_base()).spec_id
    )
