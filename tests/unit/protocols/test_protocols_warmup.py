"""The install-time warm-up of the protocols' kernels runs their busy paths: the small Maker and
Aave venues liquidate during its fall (so barks, sales, takes, health and plans were called)."""

from __future__ import annotations

from deleverage.protocols.warmup import warm_up_protocols


def test_the_warm_up_liquidates_on_both_venues() -> None:
    barks, liquidations = warm_up_protocols()
    assert barks > 0
    assert liquidations > 0
