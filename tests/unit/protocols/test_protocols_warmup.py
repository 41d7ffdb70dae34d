"""The install-time warm-up of the protocols' kernels runs their busy paths: the small Maker and
Aave venues liquidate during its fall (so barks, sales, takes, health and plans were called)."""

from __future__ import annotations

from deleverage.protocols.warmup import warm_up_protocols


def test_the_warm_up_liquidates_on_both_venues() -> None:
    barks, liquidations = warm_up_protocols()
    assert barks > 0
    assert liquidations > 0


def test_the_warm_up_compiles_makers_quiet_count_for_a_worlds_types() -> None:
    """Maker's count of quiet steps with sales running is called directly (a small fall may
    end with no sale running), with the types a world day passes: C-contiguous arrays, the
    keepers' capital path two-dimensional (recorded on benchmarks/world_day.py's day)."""
    from numba import types

    from deleverage.protocols.maker.quiet_nb import first_action_nb

    warm_up_protocols()
    n = types.Array(types.int64, 1, "C")
    f = types.Array(types.float64, 1, "C")
    f2 = types.Array(types.float64, 2, "C")
    expected = (n, n, f, f, f, f, n, f2, n, n, f, f, f, n, f, f, n, types.int64, types.float64,
                f, *[types.float64] * 10)  # fmt: skip
    assert expected in first_action_nb.signatures, first_action_nb.signatures
