"""A hand-walked L2 book shared by the liquidity tests (test_liquidity.py and
test_liquidity_files.py)."""

from __future__ import annotations

from deleverage.liquidity import L2Book


def three_level_book(on_exhausted: str = "unfilled") -> L2Book:
    # bids 99.5 x 1, 99 x 2, 98 x 3; asks 100.5 x 1, 101 x 2, 102 x 3; mid 100
    return L2Book(
        [99.5, 99.0, 98.0],
        [1.0, 2.0, 3.0],
        [100.5, 101.0, 102.0],
        [1.0, 2.0, 3.0],
        half_life_s=10.0,
        on_exhausted=on_exhausted,  # type: ignore[arg-type]
    )
