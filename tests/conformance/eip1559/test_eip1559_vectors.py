"""EIP-1559 base fee: go-ethereum's TestCalcBaseFee rows (sources in README.md)."""

from __future__ import annotations

import pytest

from deleverage.protocols.chain import base_fee_after

GWEI = 1e9  # wei per gwei

# (parent base fee wei, gas limit, gas used, expected base fee wei)
VECTORS = [
    (1_000_000_000, 20_000_000, 10_000_000, 1_000_000_000),
    (1_000_000_000, 20_000_000, 9_000_000, 987_500_000),
    (1_000_000_000, 20_000_000, 11_000_000, 1_012_500_000),
    (1_000_000_000, 20_000_000, 20_000_000, 1_125_000_000),
    (1_000_000_000, 20_000_000, 0, 875_000_000),
]


@pytest.mark.parametrize(("parent", "limit", "used", "expected"), VECTORS)
def test_one_block_matches_go_ethereum(parent: int, limit: int, used: int, expected: int) -> None:
    got = base_fee_after(parent / GWEI, used / limit, 1)
    assert got * GWEI == pytest.approx(expected, rel=1e-12)
