"""Shared checks of the venues' collateral vectors (``tests/conformance/<venue>/collateral.json``)
against :mod:`deleverage.rules.collateral`; each venue's test module runs its own file."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from deleverage.rules.collateral import (
    CollateralAsset,
    CollateralTier,
    collateral_value,
    quantity_for_value,
    sale_quantities,
)


def load(folder: Path) -> list[dict[str, Any]]:
    vectors: list[dict[str, Any]] = json.loads((folder / "collateral.json").read_text())
    return vectors


def asset(data: dict[str, Any]) -> CollateralAsset:
    tiers = tuple(CollateralTier(floor=f, rate=r) for f, r in data["tiers"])
    return CollateralAsset(symbol=data["symbol"], basis=data["basis"], tiers=tiers)


def check(vector: dict[str, Any]) -> None:
    """Assert one vector (``kind``: ``value``, ``sale_value`` or ``order``)."""
    inputs, expected = vector["inputs"], vector["expected"]
    if vector["kind"] == "value":
        coin = asset(vector["asset"])
        got = float(collateral_value(coin, [inputs["quantity"]], inputs["price"])[0])
        assert got == pytest.approx(expected["value"], rel=1e-12, abs=1e-9)
    elif vector["kind"] == "sale_value":
        coins = quantity_for_value(
            asset(vector["asset"]), inputs["quantity"], inputs["price"], inputs["deficit"]
        )
        assert coins * inputs["price"] == pytest.approx(
            expected["market_value_sold"], abs=expected["abs_tol"]
        )
    else:
        assets = [asset(a) for a in vector["assets"]]
        sold = sale_quantities(
            assets, inputs["quantities"], inputs["prices"], inputs["deficit"], inputs["order"]
        )
        taken = np.array(
            [
                float(collateral_value(a, [q], p)[0]) - float(collateral_value(a, [q - s], p)[0])
                for a, q, p, s in zip(
                    assets, inputs["quantities"], inputs["prices"], sold, strict=True
                )
            ]
        )
        assert taken.sum() == pytest.approx(inputs["deficit"], rel=1e-12)
        np.testing.assert_allclose(
            taken / inputs["deficit"], expected["value_taken_share"], rtol=1e-12, atol=1e-12
        )
