"""The public names of deleverage.prices are pinned (STYLE rule 14)."""

from __future__ import annotations

import deleverage.prices as prices


def test_public_names_are_pinned_and_sorted() -> None:
    assert prices.__all__ == [
        "BINANCE_KLINE_COLUMNS",
        "SECONDS_PER_YEAR",
        "Gap",
        "OhlcvBars",
        "bundled_crash",
        "bundled_description",
        "correlation_factor",
        "garch11",
        "garch11_omega",
        "gbm",
        "list_bundled",
        "load_ohlcv",
        "markov_chain",
        "merton_jump_diffusion",
        "ohlcv_from_frame",
        "regime_switching",
        "shock_path",
        "stationary_distribution",
        "time_grid",
        "to_path",
        "validate_correlation",
        "validate_transition_matrix",
    ]
    # isort-style order (constants, classes, functions), as ruff's RUF022 keeps it
    constants = [n for n in prices.__all__ if n.isupper()]
    classes = [n for n in prices.__all__ if n[0].isupper() and not n.isupper()]
    functions = [n for n in prices.__all__ if n[0].islower()]
    assert prices.__all__ == sorted(constants) + sorted(classes) + sorted(functions)
    assert all(hasattr(prices, name) for name in prices.__all__)
