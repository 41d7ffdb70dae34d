"""Binance's collateral haircuts (tiers) and order of sale against rules/collateral.py; sources
per vector in ``collateral.json`` and in README_collateral.md."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from collateral_cases import check, load

VECTORS = load(Path(__file__).parent)


@pytest.mark.parametrize("vector", VECTORS, ids=lambda v: str(v["id"]))
def test_binance_collateral_vector(vector: dict[str, Any]) -> None:
    check(vector)
