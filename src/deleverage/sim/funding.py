"""Perpetual funding rates.

A perpetual has no expiry; funding payments between longs and shorts keep its price near the
index. Each period every position receives ``-size x mark x rate`` (the engine's
:meth:`deleverage.engine.exchange.Exchange.settle_funding`). The rate comes from a constant, this
premium rule, or a venue's published history.

Binance USD-M ("Introduction to Binance Futures Funding Rates"):

    F = P + clamp(I - P, -0.05%, +0.05%)

with ``P`` the premium index, ``(mark - index) / index`` here (Binance averages impact-price
premiums over the period), and ``I`` the interest rate, 0.01% per 8-hour period; the result is
capped at ``cap`` either way when given.
"""

from __future__ import annotations

import math
from importlib import resources
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pandas as pd

from deleverage.errors import DataError, ValidationError

FloatArray = npt.NDArray[np.float64]

#: Binance's interest rate per 8-hour funding period (0.03% a day).
BINANCE_INTEREST_RATE = 0.0001

#: Binance's clamp on ``I - P``.
BINANCE_CLAMP = 0.0005


def premium_funding_rate(
    mark: float,
    index: float,
    *,
    interest_rate: float = BINANCE_INTEREST_RATE,
    clamp: float = BINANCE_CLAMP,
    cap: float | None = None,
) -> float:
    """Funding rate of one period from the premium of the mark over the index.

    ``F = P + clamp(I - P, -clamp, clamp)``, ``P = (mark - index) / index``, then capped to
    ``[-cap, cap]`` when ``cap`` is given.

    Examples
    --------
    At parity the rate is the interest rate; 1% above the index it is the premium less the
    clamp:

    >>> premium_funding_rate(100.0, 100.0)
    0.0001
    >>> round(premium_funding_rate(101.0, 100.0), 10)
    0.0095
    """
    for name, value in (("mark", mark), ("index", index)):
        if not math.isfinite(value) or value <= 0:
            raise ValidationError(name, value, "must be a finite number > 0")
    if not math.isfinite(clamp) or clamp < 0:
        raise ValidationError("clamp", clamp, "must be a finite number >= 0")
    premium = (mark - index) / index
    rate = premium + min(max(interest_rate - premium, -clamp), clamp)
    if cap is not None:
        if not math.isfinite(cap) or cap <= 0:
            raise ValidationError("cap", cap, "must be a finite number > 0")
        rate = min(max(rate, -cap), cap)
    return rate


# ---------------------------------------------------------------------------- history
FUNDING_COLUMNS = ("calc_time", "last_funding_rate")
_BUNDLED_FUNDING = {"BTCUSDT": "BTCUSDT_funding.csv.gz", "ETHUSDT": "ETHUSDT_funding.csv.gz"}


def bundled_funding_names() -> tuple[str, ...]:
    """Names of the bundled funding histories (Binance USDⓈ-M, see data/funding/SOURCE.md)."""
    return tuple(_BUNDLED_FUNDING)


def load_funding_history(*, bundled: str | None = None, file: str | None = None) -> pd.DataFrame:
    """Funding settlements as a frame ``ts_ns`` (int64, UTC) and ``rate`` (fraction), in time order.

    ``file`` is a CSV (optionally compressed) with Binance's columns ``calc_time`` (ms since
    the epoch) and ``last_funding_rate``; ``bundled`` names a bundled series.

    Raises
    ------
    DataError
        On a missing file or column, a non-numeric or non-finite rate, |rate| >= 1, or time
        that does not increase; the message names the file line (header = line 1).
    """
    if (bundled is None) == (file is None):
        raise ValidationError("funding", (bundled, file), "give exactly one of bundled or file")
    if bundled is not None:
        if bundled not in _BUNDLED_FUNDING:
            raise ValidationError(
                "funding.bundled", bundled, f"must be one of {', '.join(_BUNDLED_FUNDING)}"
            )
        source = resources.files("deleverage") / "data" / "funding" / _BUNDLED_FUNDING[bundled]
        with resources.as_file(source) as path:
            frame = pd.read_csv(path, dtype=str)
        where = f"bundled {bundled}"
    else:
        path = Path(str(file))
        if not path.is_file():  # also refuses folders and FIFOs (reading one would block)
            raise DataError("funding.file", str(path), "must name an existing CSV file")
        try:
            frame = pd.read_csv(path, dtype=str)
        except (ValueError, OSError) as exc:  # pandas' parser and decoding errors
            raise DataError("funding.file", str(path), f"must be a readable CSV ({exc})") from None
        where = str(path)
    for column in FUNDING_COLUMNS:
        if column not in frame.columns:
            raise DataError(f"{where}: column", column, f"is missing (needs {FUNDING_COLUMNS})")
    ts = pd.to_numeric(frame["calc_time"], errors="coerce").to_numpy()
    rate = pd.to_numeric(frame["last_funding_rate"], errors="coerce").to_numpy()
    for name, _values, ok in (
        ("calc_time", ts, np.isfinite(ts)),
        ("last_funding_rate", rate, np.isfinite(rate) & (np.abs(rate) < 1)),
    ):
        if not ok.all():
            k = int(np.flatnonzero(~ok)[0])
            raise DataError(
                f"{where} line {k + 2}: {name}",
                frame[name].iloc[k],
                "must be a finite number"
                + (" with |rate| < 1" if name == "last_funding_rate" else ""),
            )
    ts_ns = ts.astype(np.int64) * 1_000_000
    back = np.flatnonzero(np.diff(ts_ns) <= 0)
    if len(back):
        k = int(back[0]) + 1
        raise DataError(f"{where} line {k + 2}: calc_time", int(ts[k]), "must increase")
    return pd.DataFrame({"ts_ns": ts_ns, "rate": rate})


def funding_rates_from(history: pd.DataFrame, start_ns: int, count: int) -> FloatArray:
    """The ``count`` settlement rates at or after ``start_ns``, in order.

    Raises
    ------
    DataError
        If the history holds fewer than ``count`` settlements from ``start_ns`` on.
    """
    ts = history["ts_ns"].to_numpy()
    first = int(np.searchsorted(ts, start_ns, side="left"))
    rates = history["rate"].to_numpy(dtype=np.float64)[first : first + count]
    if len(rates) < count:
        raise DataError(
            "funding.start",
            start_ns,
            f"must leave {count} settlements in the history (it has {len(rates)} from there on)",
        )
    return np.asarray(rates, dtype=np.float64)
