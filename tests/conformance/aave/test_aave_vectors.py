"""Aave v3.3 liquidations: the protocol's own test scenarios (README.md) against the float
model in deleverage.protocols.aave.math. Expected values come from vectors.json, the
scenarios run through the contract's integer arithmetic (derive_vectors.py)."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from deleverage.protocols.aave.math import (
    LEAVES_DUST,
    LIQUIDATABLE,
    NOT_BELOW_THRESHOLD,
    liquidation_plan,
)

VECTORS: list[dict[str, Any]] = json.loads(
    Path(__file__).with_name("vectors.json").read_text(encoding="utf-8")
)
STATUS = {
    "MUST_NOT_LEAVE_DUST": LEAVES_DUST,
    "HEALTH_FACTOR_NOT_BELOW_THRESHOLD": NOT_BELOW_THRESHOLD,
}


def _close(got: float, expected_units: str, decimals: int, carried: float = 0.0) -> None:
    # The contract works in integer units of the token, the model in floats: they agree to two
    # units of the token's last decimal plus ``carried``, the worth of two units of the other
    # token of the pair (a rounded debt amount carries into the collateral, and back), or
    # 1e-12 relative where floats cannot resolve a unit.
    want = int(expected_units) / 10**decimals
    assert got == pytest.approx(want, rel=1e-12, abs=2.0 / 10**decimals + carried)


@pytest.mark.parametrize("vector", VECTORS, ids=[v["name"] for v in VECTORS])
def test_liquidation_call_matches_the_contract(vector: dict[str, Any]) -> None:
    # Arrange: one account over the vector's reserves.
    names = sorted(vector["reserves"])
    res = [vector["reserves"][n] for n in names]
    dec = [r["decimals"] for r in res]
    coll = [
        [
            int(vector["collateral"].get(n, "0")) / 10 ** r["decimals"]
            for n, r in zip(names, res, strict=True)
        ]
    ]
    debt = [
        [
            int(vector["debt"].get(n, "0")) / 10 ** r["decimals"]
            for n, r in zip(names, res, strict=True)
        ]
    ]
    ci, di = names.index(vector["collateral_reserve"]), names.index(vector["debt_reserve"])
    cover = vector["debt_to_cover"]
    cover_tokens = math.inf if cover == "max" else int(cover) / 10 ** dec[di]
    # Act
    plan = liquidation_plan(
        coll,
        debt,
        [r["price"] / 1e8 for r in res],
        [r["lt"] / 1e4 for r in res],
        [r["bonus"] / 1e4 for r in res],
        [r["fee"] / 1e4 for r in res],
        [ci],
        [di],
        [cover_tokens],
        use_data_provider=vector["use_liquidation_data_provider"],
    )
    # Assert
    expected = vector["expected"]
    assert plan.health[0] == pytest.approx(int(expected["health_factor_wad"]) / 1e18, rel=1e-9)
    if "reverts" in expected:
        assert plan.status[0] == STATUS[expected["reverts"]]
        assert plan.amounts.debt_repaid[0] == 0.0
        return
    assert plan.status[0] == LIQUIDATABLE
    pc, pd, bonus = res[ci]["price"], res[di]["price"], res[ci]["bonus"] / 1e4
    in_debt = 2.0 / 10 ** dec[ci] * pc / pd  # two collateral units, in debt tokens
    in_coll = 2.0 / 10 ** dec[di] * pd / pc * bonus  # two debt units, in collateral tokens
    _close(float(plan.max_debt[0]), expected["close_factor_max_debt"], dec[di])
    _close(float(plan.amounts.debt_repaid[0]), expected["debt_repaid"], dec[di], in_debt)
    _close(
        float(plan.amounts.to_liquidator[0]),
        expected["collateral_to_liquidator"],
        dec[ci],
        in_coll,
    )
    _close(float(plan.amounts.protocol_fee[0]), expected["protocol_fee"], dec[ci], in_coll)
    deficit = {n: float(plan.deficit[0, k]) for k, n in enumerate(names) if plan.deficit[0, k]}
    assert set(deficit) == set(expected["deficit"])
    for name, units in expected["deficit"].items():
        _close(deficit[name], units, dec[names.index(name)])


def test_the_vectors_cover_each_rule() -> None:
    names = {v["name"] for v in VECTORS}
    assert len(VECTORS) >= 10
    reverts = [v["expected"].get("reverts") for v in VECTORS]
    assert reverts.count("MUST_NOT_LEAVE_DUST") >= 3
    assert any(v["expected"].get("deficit") for v in VECTORS)
    assert {"close_factor_50", "close_factor_100_below_095", "data_provider_amount_passes"} <= names
    assert np.isfinite([int(v["expected"]["health_factor_wad"]) for v in VECTORS]).all()
