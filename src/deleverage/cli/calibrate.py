"""``deleverage calibrate``: fit GARCH(1,1) and jumps to a price file, depth to an L2 snapshot
series, and print (or write) the scenario blocks (:mod:`deleverage.analytics.calibration`)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer


def calibrate(
    prices: Annotated[
        str | None,
        typer.Argument(help="OHLCV file (CSV or Parquet, Binance klines too) or a bundled window."),
    ] = None,
    book_depth: Annotated[
        str | None,
        typer.Option(
            "--book-depth",
            help="Binance bookDepth CSV for the depth parameters ('bundled': the 2025-10-10 "
            "BTCUSDT sample).",
        ),
    ] = None,
    out: Annotated[
        Path | None, typer.Option(help="Write the scenario blocks to this TOML file.")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the fits as JSON.")] = False,
) -> None:
    """Fit a price process and book depth to data; print the scenario blocks.

    GARCH(1,1) by maximum likelihood (the `arch` package) and Merton jumps by a robust
    threshold on the bars' closes; depth within 1% and the power-law exponent from bookDepth
    snapshots.

    Examples:

      deleverage calibrate btcusdt-1m-2025-10-10 --book-depth bundled

      deleverage calibrate klines.csv --out blocks.toml
    """
    from deleverage.analytics.calibration import (
        fit_depth,
        fit_garch,
        fit_jumps,
        fits_to_dict,
        scenario_blocks,
    )
    from deleverage.errors import ValidationError
    from deleverage.liquidity import bundled_book_depth_sample, read_binance_book_depth
    from deleverage.prices import bundled_crash, list_bundled, load_ohlcv

    if prices is None and book_depth is None:
        raise ValidationError("prices", None, "give a price file, --book-depth, or both")
    garch = jumps = depth = None
    if prices is not None:
        bars = bundled_crash(prices) if prices in list_bundled() else load_ohlcv(prices)
        closes = bars.frame["close"].to_numpy(dtype=float)
        garch = fit_garch(closes, bars.bar_s)
        jumps = fit_jumps(closes, bars.bar_s)
    if book_depth is not None:
        source = bundled_book_depth_sample() if book_depth == "bundled" else Path(book_depth)
        depth = fit_depth(read_binance_book_depth(source))
    blocks = scenario_blocks(garch, jumps, depth)
    if out is not None:
        out.write_text(blocks)
    if as_json:
        typer.echo(json.dumps(fits_to_dict(garch, jumps, depth)))
        return
    typer.echo(blocks, nl=False)
