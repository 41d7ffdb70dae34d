"""Historical OHLCV bars: load, check and replay them as price paths.

A bar summarizes the trades of one interval ``[t, t + bar)``: the first (open), highest (high),
lowest (low) and last (close) price, and the traded volume. :func:`load_ohlcv` reads bars of any
size from CSV (plain or compressed: ``.gz``, ``.zip``, ...) or Parquet, including Binance kline
files with or without their header row (``open_time, open, high, low, close, volume,
close_time, ...``; https://github.com/binance/binance-public-data). It

- finds the timestamp column (``ts_ns``, ``open_time``, ``timestamp``, ``time``, ``ts``,
  ``datetime``, ``date``) and detects its unit from its magnitude: seconds (< 1e11),
  milliseconds (< 1e14), microseconds (< 1e17) or nanoseconds. Binance futures archives use
  milliseconds; Binance spot archives switched to microseconds on 2025-01-01. ISO-8601 strings
  and Parquet datetime columns work too; all times are converted to int64 ns since the epoch,
  UTC;
- rejects bad rows with a :class:`~deleverage.errors.DataError` that names the file line
  (1-based, the header is line 1; "row" for Parquet and in-memory tables): a missing or
  non-numeric value, a price <= 0, ``high < low``, an open or close outside ``[low, high]``,
  negative volume, a timestamp in another unit than the first row's, and time that does not
  increase (duplicated or going backwards). Blank lines are skipped;
- takes the bar size as the smallest step between consecutive bars (or ``bar_s``) and reports
  missing bars as :class:`Gap` records, without failing.

:func:`to_path` turns bars into a price path on a regular grid, so that a simulator can replay
a real crash second by second; :func:`bundled_crash` loads the real crash windows shipped in
``deleverage/data/prices`` (see SOURCE.md there).
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Callable
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any, Final, Literal

import numpy as np
import numpy.typing as npt
import pandas as pd  # type: ignore[import-untyped, unused-ignore]

from deleverage.errors import DataError, UnknownEntityError, ValidationError

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]

TimestampUnit = Literal["auto", "s", "ms", "us", "ns"]
PathMethod = Literal["ohlc", "close"]

#: Column layout of Binance kline files (spot and futures archives and REST ``klines``).
BINANCE_KLINE_COLUMNS: Final[tuple[str, ...]] = (
    "open_time",
    "open",
    "high",
    "low",
    "close",
    "volume",
    "close_time",
    "quote_volume",
    "count",
    "taker_buy_volume",
    "taker_buy_quote_volume",
    "ignore",
)

#: Most points :func:`to_path` will build (guards against a ``dt_s`` far too small).
MAX_PATH_POINTS: Final[int] = 500_000_000

_TIMESTAMP_ALIASES: Final = ("ts_ns", "open_time", "timestamp", "time", "ts", "datetime", "date")
_PRICE_ALIASES: Final = {
    "open": ("open", "o"),
    "high": ("high", "h"),
    "low": ("low", "l"),
    "close": ("close", "c"),
}
_VOLUME_ALIASES: Final = ("volume", "vol", "v")
_UNIT_NS: Final = {"s": 1_000_000_000, "ms": 1_000_000, "us": 1_000, "ns": 1}
_PARQUET_SUFFIXES: Final = (".parquet", ".pq")


@dataclass(frozen=True, slots=True)
class Gap:
    """Bars missing between two consecutive bars of a file."""

    line: int
    """File line (or row) of the bar after the gap."""
    ts_before_ns: int
    """Open time of the bar before the gap (ns since the epoch, UTC)."""
    ts_after_ns: int
    """Open time of the bar after the gap."""
    missing_bars: int
    """Bar slots without data: ``ceil((ts_after - ts_before) / bar) - 1``."""


@dataclass(frozen=True)
class OhlcvBars:
    """Checked OHLCV bars and what the loader found out about them."""

    frame: pd.DataFrame
    """One row per bar, in time order, with a RangeIndex and the columns ``ts_ns`` (int64 open
    time, ns since the epoch, UTC), ``open``, ``high``, ``low``, ``close`` (float64, quote per
    base) and ``volume`` (float64, base units; NaN when the file has no volume column)."""
    bar_ns: int
    """Bar length in ns."""
    timestamp_unit: str
    """Unit of the file's timestamps: ``"s"``, ``"ms"``, ``"us"``, ``"ns"`` or ``"datetime"``."""
    gaps: tuple[Gap, ...]
    """Missing bars, in time order (empty when the bars are contiguous)."""
    source: str
    """Where the bars came from (file path or bundled name)."""

    @property
    def bar_s(self) -> float:
        """Bar length in seconds."""
        return self.bar_ns / 1e9

    @property
    def n_bars(self) -> int:
        """Number of bars."""
        return len(self.frame)

    @property
    def missing_bars(self) -> int:
        """Total number of missing bars over all gaps."""
        return sum(gap.missing_bars for gap in self.gaps)

    @property
    def ts_start_ns(self) -> int:
        """Open time of the first bar (ns), the time of element 0 of :func:`to_path`."""
        return int(self.frame["ts_ns"].iat[0])

    @property
    def ts_end_ns(self) -> int:
        """End of the last bar (its open time plus one bar), ns."""
        return int(self.frame["ts_ns"].iat[-1]) + self.bar_ns


# --------------------------------------------------------------------------------------------
# Reading
# --------------------------------------------------------------------------------------------


def _is_number(text: object) -> bool:
    try:
        float(str(text))
    except ValueError:
        return False
    return True


def _read_csv(path: Path, source: str) -> tuple[pd.DataFrame, int]:
    """The raw table, and the file line of its first row (2 after a header row, else 1)."""
    try:
        head = pd.read_csv(path, header=None, nrows=1, dtype=str)
    except pd.errors.EmptyDataError:
        raise DataError(source, "empty file", "must contain at least one bar") from None
    except (UnicodeDecodeError, pd.errors.ParserError) as exc:
        raise DataError(source, str(exc), "must be a CSV file") from None
    has_header = not _is_number(head.iat[0, 0])
    names: tuple[str, ...] | None = None
    if not has_header:
        n_columns = head.shape[1]
        if n_columns == len(BINANCE_KLINE_COLUMNS):
            names = BINANCE_KLINE_COLUMNS
        elif n_columns in (5, 6):
            names = ("timestamp", "open", "high", "low", "close", "volume")[:n_columns]
        else:
            raise DataError(
                source,
                f"{n_columns} columns without a header",
                "must have a header row, the 12-column Binance kline layout, or the columns "
                "timestamp, open, high, low, close[, volume]",
            )
        ts_name: str = names[0]
    else:
        header = [str(c) for c in head.iloc[0]]
        lowered = [_column_key(c) for c in header]
        ts_name = next(
            (header[lowered.index(a)] for a in _TIMESTAMP_ALIASES if a in lowered), header[0]
        )
    header_row = 0 if has_header else None
    column_names = list(names) if names is not None else None
    try:
        table = pd.read_csv(
            path, header=header_row, names=column_names, skip_blank_lines=False, low_memory=False
        )
        stamps = table[ts_name]
        if stamps.dtype.kind == "f" and (stamps.abs() >= 2.0**53).any():
            # Blank or bad rows made the timestamps float, which rounds ns-sized integers:
            # read that column again as text.
            table[ts_name] = pd.read_csv(
                path,
                header=header_row,
                names=column_names,
                usecols=[ts_name],
                skip_blank_lines=False,
                dtype={ts_name: str},
            )[ts_name]
    except pd.errors.ParserError as exc:
        match = re.search(r"line (\d+)", str(exc))
        where = f" line {match.group(1)}" if match else ""
        raise DataError(
            "fields", str(exc), "must match the header", message=f"{source}{where}: {exc}"
        ) from None
    except (UnicodeDecodeError, ValueError) as exc:
        raise DataError(source, str(exc), "must be a CSV file") from None
    return table, 2 if has_header else 1


def load_ohlcv(
    path: str | os.PathLike[str],
    *,
    timestamp_unit: TimestampUnit = "auto",
    bar_s: float | None = None,
) -> OhlcvBars:
    """Load and check OHLCV bars from a CSV or Parquet file.

    Parameters
    ----------
    path
        A ``.csv`` file (compressed ``.csv.gz``, ``.zip``, ... too) or a ``.parquet`` file.
    timestamp_unit
        Unit of numeric timestamps; ``"auto"`` detects it from the first row's magnitude.
    bar_s
        Bar length in seconds; default the smallest step between consecutive bars.

    Returns
    -------
    OhlcvBars
        The bars as a DataFrame (``ts_ns, open, high, low, close, volume``) and the gaps found.

    Raises
    ------
    DataError
        On a missing file, a missing column or a bad row; the message names the file line
        (header = line 1), the column, the value and the rule.

    Examples
    --------
    >>> bars = bundled_crash("btcusdt-1m-2025-10-10")
    >>> bars.bar_s, bars.timestamp_unit, bars.gaps
    (60.0, 'ms', ())
    """
    file = Path(path)
    return _load(file, source=str(file), timestamp_unit=timestamp_unit, bar_s=bar_s)


def _load(
    file: Path, *, source: str, timestamp_unit: TimestampUnit, bar_s: float | None
) -> OhlcvBars:
    if not file.is_file():
        raise DataError("path", str(file), "must be an existing file")
    if any(file.name.lower().endswith(suffix) for suffix in _PARQUET_SUFFIXES):
        try:
            raw = pd.read_parquet(file)
        except Exception as exc:  # pyarrow raises several unrelated types on a corrupt file
            raise DataError(source, str(exc), "must be a Parquet file") from None
        return _bars_from_table(
            raw, source=source, first_line=1, line_word="row", unit=timestamp_unit, bar_s=bar_s
        )
    raw, first_line = _read_csv(file, source)
    return _bars_from_table(
        raw,
        source=source,
        first_line=first_line,
        line_word="line",
        unit=timestamp_unit,
        bar_s=bar_s,
    )


def ohlcv_from_frame(
    frame: pd.DataFrame,
    *,
    source: str = "frame",
    timestamp_unit: TimestampUnit = "auto",
    bar_s: float | None = None,
) -> OhlcvBars:
    """Check in-memory OHLCV bars exactly as :func:`load_ohlcv` checks a file.

    Bad rows are named by their 1-based position (``row 3``).

    Raises
    ------
    DataError
        On a missing column or a bad row.
    """
    if not isinstance(frame, pd.DataFrame):
        raise ValidationError("frame", type(frame).__name__, "must be a pandas DataFrame")
    return _bars_from_table(
        frame.reset_index(drop=True),
        source=source,
        first_line=1,
        line_word="row",
        unit=timestamp_unit,
        bar_s=bar_s,
    )


# --------------------------------------------------------------------------------------------
# Checking
# --------------------------------------------------------------------------------------------


def _column_key(name: object) -> str:
    # "Open time" (Binance's README header) matches "open_time".
    return str(name).strip().lower().replace(" ", "_")


def _find_column(columns: dict[str, Any], aliases: tuple[str, ...]) -> Any:
    for alias in aliases:
        if alias in columns:
            return columns[alias]
    return None


def _unit_of(magnitude: FloatArray) -> npt.NDArray[np.str_]:
    return np.select(
        [magnitude < 1e11, magnitude < 1e14, magnitude < 1e17], ["s", "ms", "us"], default="ns"
    )


@dataclass
class _Timestamps:
    ns: IntArray
    unit: str
    invalid: BoolArray
    non_positive: BoolArray
    other_unit: BoolArray
    row_unit: npt.NDArray[np.str_]


def _parse_timestamps(column: pd.Series, name: str, requested: TimestampUnit) -> _Timestamps:
    n = len(column)
    none = np.zeros(n, dtype=bool)
    if isinstance(column.dtype, pd.DatetimeTZDtype) or pd.api.types.is_datetime64_any_dtype(
        column.dtype
    ):
        invalid = column.isna().to_numpy()
        ns = np.asarray(pd.DatetimeIndex(column).as_unit("ns").asi8, dtype=np.int64)
        ns[invalid] = 0
        return _Timestamps(ns, "datetime", invalid, none, none, np.full(n, "datetime"))
    if column.dtype.kind in "iu" and not column.isna().any():
        parsed = np.ones(n, dtype=bool)
        valid_values = column.to_numpy()
    else:
        numeric = column if column.dtype.kind == "f" else pd.to_numeric(column, errors="coerce")
        present = column.notna().to_numpy()
        parsed = numeric.notna().to_numpy()
        first = int(np.argmax(present)) if present.any() else 0
        if present.any() and not parsed[first] and requested == "auto":
            # Not numbers: ISO-8601 date-time strings.
            dates = pd.to_datetime(column, utc=True, errors="coerce", format="ISO8601")
            invalid = dates.isna().to_numpy()
            ns = np.zeros(n, dtype=np.int64)
            if (~invalid).any():
                ns[~invalid] = pd.DatetimeIndex(dates[~invalid]).as_unit("ns").asi8
            return _Timestamps(ns, "datetime", invalid, none, none, np.full(n, "datetime"))
        # Text that holds integers parses to int64 here, keeping ns timestamps exact.
        valid_values = pd.to_numeric(column[parsed]).to_numpy()
    values = np.zeros(n, dtype=np.float64)
    values[parsed] = valid_values.astype(np.float64)
    invalid = ~parsed | ~np.isfinite(values)
    non_positive = ~invalid & (values <= 0)
    row_unit = _unit_of(np.abs(values))
    usable = ~invalid & ~non_positive
    if requested == "auto" and _column_key(name) == "ts_ns":
        unit = "ns"
        other_unit = none
    elif requested == "auto":
        unit = str(row_unit[int(np.argmax(usable))]) if usable.any() else "ms"
        other_unit = usable & (row_unit != unit)
    else:
        unit = requested
        other_unit = none
    factor = _UNIT_NS[unit]
    # Past 2262-04-11 nanoseconds overflow int64: such a timestamp is out of range.
    out_of_range = usable & (values * factor >= 2.0**63)
    invalid |= out_of_range
    usable &= ~out_of_range
    ns = np.zeros(n, dtype=np.int64)
    if np.issubdtype(valid_values.dtype, np.integer):
        exact = np.zeros(n, dtype=np.int64)
        exact[parsed] = valid_values.astype(np.int64)
        ns[usable] = exact[usable] * factor
    else:
        ns[usable] = np.round(values[usable] * factor).astype(np.int64)
    return _Timestamps(ns, unit, invalid, non_positive, other_unit, row_unit)


@dataclass(frozen=True)
class _Check:
    mask: BoolArray
    column: str
    shown: pd.Series
    """The column as read, to show the offending value."""
    rule: str | Callable[[int], str]

    def describe(self, i: int) -> tuple[str, object, str]:
        rule = self.rule if isinstance(self.rule, str) else self.rule(i)
        value = self.shown.iat[i]
        return self.column, value.item() if isinstance(value, np.generic) else value, rule


def _bars_from_table(
    raw: pd.DataFrame,
    *,
    source: str,
    first_line: int,
    line_word: str,
    unit: TimestampUnit,
    bar_s: float | None,
) -> OhlcvBars:
    if unit not in ("auto", *_UNIT_NS):
        raise ValidationError("timestamp_unit", unit, "must be one of auto, s, ms, us, ns")
    columns = {_column_key(c): c for c in raw.columns}
    ts_column, price_columns = _required_columns(raw, columns, source)
    volume_column = _find_column(columns, _VOLUME_ALIASES)

    lines = np.arange(len(raw), dtype=np.int64) + first_line
    blank = raw.isna().all(axis=1).to_numpy()
    if blank.any():
        raw = raw.loc[~blank].reset_index(drop=True)
        lines = lines[~blank]
    if len(raw) == 0:
        raise DataError(source, "no rows", "must contain at least one bar")

    ts_name = str(ts_column)
    stamps = _parse_timestamps(raw[ts_column], ts_name, unit)
    prices = {
        field: pd.to_numeric(raw[col], errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)
        for field, col in price_columns.items()
    }
    checks = _timestamp_checks(stamps, ts_name, raw[ts_column])
    checks += _price_checks(raw, price_columns, prices)
    if volume_column is not None:
        volume = pd.to_numeric(raw[volume_column], errors="coerce").to_numpy(
            dtype=np.float64, na_value=np.nan
        )
        shown = raw[volume_column]
        name = str(volume_column)
        checks.append(_Check(~np.isfinite(volume), name, shown, "must be a finite number"))
        checks.append(_Check(volume < 0, name, shown, "must be >= 0"))
    else:
        volume = np.full(len(raw), np.nan)
    checks.append(_order_check(stamps, ts_name, raw[ts_column]))
    _raise_first_bad(checks, lines, source, line_word)

    ts = stamps.ns
    bar_ns = _bar_length(ts, raw, columns, stamps.unit, bar_s, lines, source, line_word)
    steps = np.diff(ts)
    gaps = tuple(
        Gap(
            line=int(lines[i + 1]),
            ts_before_ns=int(ts[i]),
            ts_after_ns=int(ts[i + 1]),
            missing_bars=int(-(-int(steps[i]) // bar_ns)) - 1,
        )
        for i in np.flatnonzero(steps > bar_ns)
    )
    frame = pd.DataFrame(
        {
            "ts_ns": ts,
            "open": prices["open"],
            "high": prices["high"],
            "low": prices["low"],
            "close": prices["close"],
            "volume": volume,
        }
    )
    return OhlcvBars(
        frame=frame, bar_ns=bar_ns, timestamp_unit=stamps.unit, gaps=gaps, source=source
    )


def _required_columns(
    raw: pd.DataFrame, columns: dict[str, Any], source: str
) -> tuple[Any, dict[str, Any]]:
    """The timestamp column and the open / high / low / close columns, or a DataError."""
    ts_column = _find_column(columns, _TIMESTAMP_ALIASES)
    if ts_column is None:
        raise DataError(
            "columns",
            list(raw.columns),
            f"must include a timestamp column (one of {', '.join(_TIMESTAMP_ALIASES)})",
            message=f"{source}: `columns` must include a timestamp column (one of "
            f"{', '.join(_TIMESTAMP_ALIASES)}), was {list(raw.columns)!r}",
        )
    price_columns: dict[str, Any] = {}
    for field, aliases in _PRICE_ALIASES.items():
        found = _find_column(columns, aliases)
        if found is None:
            raise DataError(
                "columns",
                list(raw.columns),
                f"must include the `{field}` column",
                message=f"{source}: `columns` must include the `{field}` column, "
                f"was {list(raw.columns)!r}",
            )
        price_columns[field] = found
    return ts_column, price_columns


def _timestamp_checks(stamps: Any, ts_name: str, ts_shown: pd.Series) -> list[_Check]:
    return [
        _Check(
            stamps.invalid,
            ts_name,
            ts_shown,
            "must be a number or date-time (before 2262-04-11, the int64 ns limit)",
        ),
        _Check(stamps.non_positive, ts_name, ts_shown, "must be > 0"),
        _Check(
            stamps.other_unit,
            ts_name,
            ts_shown,
            lambda i: (
                f"must be in the file's unit ({stamps.unit}, from its first row), "
                f"but looks like {stamps.row_unit[i]}"
            ),
        ),
    ]


def _price_checks(
    raw: pd.DataFrame, price_columns: dict[str, Any], prices: dict[str, FloatArray]
) -> list[_Check]:
    o, h, lo, c = prices["open"], prices["high"], prices["low"], prices["close"]
    checks = []
    for field, column in price_columns.items():
        shown = raw[column]
        checks.append(_Check(~np.isfinite(prices[field]), field, shown, "must be a finite number"))
        checks.append(_Check(prices[field] <= 0, field, shown, "must be > 0"))
    checks.append(
        _Check(
            h < lo,
            "high",
            raw[price_columns["high"]],
            lambda i: f"must be >= low ({float(lo[i])!r})",
        )
    )
    for field, values in (("open", o), ("close", c)):
        checks.append(
            _Check(
                (values < lo) | (values > h),
                field,
                raw[price_columns[field]],
                lambda i: f"must lie within [low, high] = [{float(lo[i])!r}, {float(h[i])!r}]",
            )
        )
    return checks


def _order_check(stamps: Any, ts_name: str, ts_shown: pd.Series) -> _Check:
    """Times must increase from row to row (rows with unusable times are skipped)."""
    ts = stamps.ns
    usable = np.flatnonzero(~stamps.invalid & ~stamps.non_positive & ~stamps.other_unit)
    order_bad = np.zeros(len(ts), dtype=bool)
    previous = np.zeros(len(ts), dtype=np.int64)
    if usable.size > 1:
        later = usable[1:]
        previous[later] = ts[usable[:-1]]
        order_bad[later] = ts[later] <= previous[later]

    def order_rule(i: int) -> str:
        what = "duplicates" if ts[i] == previous[i] else "goes back before"
        return f"must increase from row to row, but {what} the previous bar's time"

    return _Check(order_bad, ts_name, ts_shown, order_rule)


def _raise_first_bad(checks: list[_Check], lines: IntArray, source: str, line_word: str) -> None:
    """Raise a DataError naming the first bad line's column, value and rule (and the count)."""
    any_bad = np.zeros(len(lines), dtype=bool)
    for check in checks:
        any_bad |= check.mask
    if not any_bad.any():
        return
    first = int(np.argmax(any_bad))
    column, value, rule = next(ch.describe(first) for ch in checks if ch.mask[first])
    others = int(any_bad.sum()) - 1
    more = f" ({others} more bad {line_word}s)" if others else ""
    raise DataError(
        column,
        value,
        rule,
        message=f"{source} {line_word} {int(lines[first])}: `{column}` {rule}, was {value!r}{more}",
    )


def _bar_length(
    ts: IntArray,
    raw: pd.DataFrame,
    columns: dict[str, Any],
    unit: str,
    bar_s: float | None,
    lines: IntArray,
    source: str,
    line_word: str,
) -> int:
    steps = np.diff(ts)
    if bar_s is not None:
        try:
            seconds = float(bar_s)
        except (TypeError, ValueError):
            raise ValidationError("bar_s", bar_s, "must be a number") from None
        if not math.isfinite(seconds) or seconds <= 0:
            raise ValidationError("bar_s", bar_s, "must be > 0")
        bar_ns = round(seconds * 1e9)
        short = np.flatnonzero(steps < bar_ns)
        if short.size:
            i = int(short[0]) + 1
            raise DataError(
                "bar_s",
                bar_s,
                "must not exceed the step between bars",
                message=f"{source} {line_word} {int(lines[i])}: the bar starts "
                f"{int(steps[i - 1]) / 1e9:g} s after the previous one, less than "
                f"`bar_s` = {bar_s!r}",
            )
        return int(bar_ns)
    if steps.size:
        return int(steps.min())
    close_time = columns.get("close_time")
    if close_time is not None and unit in _UNIT_NS:
        # Binance: close_time = open_time + bar - 1 (in the file's unit).
        raw_close = pd.to_numeric(raw[close_time], errors="coerce").iat[0]
        if pd.notna(raw_close):
            close = float(raw_close)
            factor = _UNIT_NS[unit]
            # Integers stay exact: a ms close_time times 1e6 exceeds float64's exact range.
            close_ns = int(close) * factor if close.is_integer() else round(close * factor)
            bar_ns = close_ns - int(ts[0]) + factor
            if bar_ns > 0:
                return bar_ns
    raise ValidationError(
        "bar_s", bar_s, "must be given for a single bar without a close_time column"
    )


# --------------------------------------------------------------------------------------------
# Replay
# --------------------------------------------------------------------------------------------


def to_path(bars: OhlcvBars, dt_s: float, *, method: PathMethod = "ohlc") -> FloatArray:
    """Turn bars into a price path sampled every ``dt_s`` seconds.

    Element ``k`` is the price at ``bars.ts_start_ns + k dt_s`` (s -> ns); the path covers the
    bars from the first open to the end of the last bar, ``floor((ts_end - ts_start) / dt) + 1``
    points. The price is the linear interpolation through anchor points:

    - ``method="ohlc"`` (default): inside bar ``[t, t + T)`` the anchors are the open at ``t``,
      the first extreme at ``t + T/4``, the second extreme at ``t + T/2`` and the close at
      ``t + 3T/4``; from there the price moves linearly to the next bar's open (across a gap
      too). A bar with ``close >= open`` visits its low first (open -> low -> high -> close), a
      bar with ``close < open`` its high first (open -> high -> low -> close), the order that
      MetaTrader 5's tester uses to generate ticks from 1-minute OHLC bars
      (https://www.metatrader5.com/en/terminal/help/algotrading/tick_generation). After the
      last close the price stays flat. When ``dt_s`` divides ``T/4`` every anchor is sampled,
      so the path's extremes are exactly the bars' highs and lows.
    - ``method="close"``: anchors are the first open at ``t_0`` and each close at its bar's end
      ``t + T``: a smoother path that never reaches intra-bar extremes.

    The result is deterministic.

    Raises
    ------
    ValidationError
        If ``dt_s`` is not > 0, is finer than 1 ns or gives more than :data:`MAX_PATH_POINTS`.

    Examples
    --------
    >>> bars = bundled_crash("btcusdt-1m-2025-10-10")
    >>> path = to_path(bars, 1.0)
    >>> len(path) == bars.n_bars * 60 + 1
    True
    """
    if method not in ("ohlc", "close"):
        raise ValidationError("method", method, "must be 'ohlc' or 'close'")
    try:
        step = float(dt_s)
    except (TypeError, ValueError):
        raise ValidationError("dt_s", dt_s, "must be a number") from None
    if not math.isfinite(step) or step <= 0:
        raise ValidationError("dt_s", dt_s, "must be > 0")
    dt_ns = round(step * 1e9)
    if dt_ns < 1:
        raise ValidationError("dt_s", dt_s, "must be at least 1 ns")
    frame = bars.frame
    ts = frame["ts_ns"].to_numpy(dtype=np.int64)
    t = ts - ts[0]
    bar = int(bars.bar_ns)
    span = int(t[-1]) + bar
    n_points = span // dt_ns + 1
    if n_points > MAX_PATH_POINTS:
        raise ValidationError(
            "dt_s", dt_s, f"must give at most {MAX_PATH_POINTS} points, not {n_points}"
        )
    o = frame["open"].to_numpy(dtype=np.float64)
    h = frame["high"].to_numpy(dtype=np.float64)
    lo = frame["low"].to_numpy(dtype=np.float64)
    c = frame["close"].to_numpy(dtype=np.float64)
    if method == "ohlc":
        low_first = c >= o
        first_extreme = np.where(low_first, lo, h)
        second_extreme = np.where(low_first, h, lo)
        anchor_t = np.stack([t, t + bar // 4, t + bar // 2, t + 3 * bar // 4], axis=1).ravel()
        anchor_p = np.stack([o, first_extreme, second_extreme, c], axis=1).ravel()
        anchor_t = np.append(anchor_t, span)
        anchor_p = np.append(anchor_p, c[-1])
    else:
        anchor_t = np.concatenate([[0], t + bar])
        anchor_p = np.concatenate([[o[0]], c])
    grid = np.arange(n_points, dtype=np.int64) * dt_ns
    path = np.interp(grid.astype(np.float64), anchor_t.astype(np.float64), anchor_p)
    return np.asarray(path, dtype=np.float64)


# --------------------------------------------------------------------------------------------
# Bundled crash windows
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _BundledFile:
    filename: str
    description: str


_BUNDLED: Final[dict[str, _BundledFile]] = {
    "btcusdt-1m-2020-03-12": _BundledFile(
        "BTCUSDT-1m-2020-03-12_0945-1207UTC.csv",
        "Binance USDⓈ-M BTCUSDT perpetual, 1-minute trade klines, 2020-03-12 09:45-12:07 UTC "
        "(Black Thursday, first leg: 7 365.87 open, 5 199.17 low)",
    ),
    "ethusdt-1h-2020-03-11": _BundledFile(
        "ETHUSDT-1h-2020-03-11_to_2020-03-14.csv",
        "Binance USDⓈ-M ETHUSDT perpetual, 1-hour trade klines, 2020-03-11 00:00 to 2020-03-14 "
        "23:00 UTC (Black Thursday: 200.90 open, 84.23 low; the 2020-03-13 02:00 high of 323.00 "
        "is a bad tick)",
    ),
    "btcusdt-1m-2025-10-10": _BundledFile(
        "BTCUSDT-1m-2025-10-10_1913-2334UTC.csv",
        "Binance USDⓈ-M BTCUSDT perpetual, 1-minute trade klines, 2025-10-10 19:13-23:34 UTC "
        "(tariff-news liquidation cascade: 116 935.6 open, 101 516.5 low)",
    ),
}


def list_bundled() -> tuple[str, ...]:
    """Names of the bundled crash windows, sorted; load one with :func:`bundled_crash`."""
    return tuple(sorted(_BUNDLED))


def bundled_description(name: str) -> str:
    """One-line description of a bundled crash window (market, bar size, period, event).

    Raises
    ------
    UnknownEntityError
        If ``name`` is not bundled; the message lists the known names.
    """
    return _bundled_entry(name).description


def _bundled_entry(name: str) -> _BundledFile:
    entry = _BUNDLED.get(name)
    if entry is None:
        raise UnknownEntityError("bundled crash", name, ", ".join(list_bundled()))
    return entry


def bundled_crash(name: str) -> OhlcvBars:
    """Load a real crash window shipped with the package (see :func:`list_bundled`).

    The files live in ``deleverage/data/prices`` with their source and licence notes
    (SOURCE.md) and load through :mod:`importlib.resources`, so they work from a wheel too.

    Raises
    ------
    UnknownEntityError
        If ``name`` is not bundled; the message lists the known names.
    """
    entry = _bundled_entry(name)
    resource = resources.files("deleverage") / "data" / "prices" / entry.filename
    with resources.as_file(resource) as file:
        return _load(file, source=f"bundled:{name}", timestamp_unit="auto", bar_s=None)
