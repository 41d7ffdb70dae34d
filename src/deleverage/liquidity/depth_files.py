"""Reading order-book depth snapshots: Binance's ``bookDepth`` files (percentage bands around the
mid) checked line by line, and the bundled 2025-10-10 BTCUSDT sample.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from importlib import resources
from pathlib import Path
from typing import (
    Any,
    Final,
    NamedTuple,
)

import numpy as np
import pandas as pd

from deleverage.errors import DataError
from deleverage.liquidity.model import (
    BUY,
    SELL,
    FloatArray,
    _check_positive,
)


def _existing_file(path: str | os.PathLike[str]) -> Path:
    file = Path(path)
    if not file.is_file():
        raise DataError("path", str(file), "must be an existing file")
    return file


def _read_csv(file: Path, source: str, **kwargs: Any) -> pd.DataFrame:
    try:
        return pd.read_csv(file, skip_blank_lines=False, keep_default_na=False, **kwargs)
    except pd.errors.EmptyDataError:
        raise DataError(source, "empty file", "must have a header row") from None
    except pd.errors.ParserError as exc:
        raise DataError(source, str(exc), "must be a well-formed CSV file") from None
    except (UnicodeDecodeError, ValueError, OSError) as exc:
        raise DataError(source, str(exc), "must be a CSV file") from None


# --------------------------------------------------------------------------------------------
# Binance bookDepth
# --------------------------------------------------------------------------------------------

_BOOK_DEPTH_COLUMNS: Final = ("timestamp", "percentage", "depth", "notional")
_SAMPLE_NAME: Final = "BTCUSDT-bookDepth-2025-10-10-sample.csv"


def bundled_book_depth_sample() -> Path:
    """Path of the bundled Binance BTCUSDT ``bookDepth`` sample (five snapshots, 2025-10-10).

    Snapshots at 00:00:07, 12:00:07, 20:50:06, 21:30:06 and 23:59:30 UTC, copied unchanged from
    Binance's public archive; see ``deleverage/data/books/SOURCE.md``.
    """
    return Path(str(resources.files("deleverage").joinpath("data", "books", _SAMPLE_NAME)))


def read_binance_book_depth(path: str | os.PathLike[str]) -> pd.DataFrame:
    """Read and check a Binance ``bookDepth`` CSV (plain or ``.gz``).

    Returns
    -------
    pandas.DataFrame
        Indexed by file line (the header is line 1), columns ``ts`` (UTC, naive), ``percentage``,
        ``depth`` (cumulative base units), ``notional`` (cumulative quote).

    Raises
    ------
    DataError
        On a missing column, an unparsable timestamp, a non-finite or negative depth or
        notional, a zero or out-of-range percentage, or a repeated ``(timestamp, percentage)``;
        the message names the line.
    """
    file = _existing_file(path)
    frame = _read_csv(file, str(file), dtype={"timestamp": str})
    return _check_book_depth(frame, str(file), first_line=2, line_word="line")


def _check_book_depth(
    frame: pd.DataFrame, source: str, *, first_line: int, line_word: str
) -> pd.DataFrame:
    def where(i: int) -> str:
        return f"{source} {line_word} {i + first_line}"

    missing = [c for c in _BOOK_DEPTH_COLUMNS if c not in frame.columns]
    if missing:
        raise DataError(
            f"{source} columns",
            [str(c) for c in frame.columns],
            "must include timestamp, percentage, depth and notional",
        )
    raw_ts = frame["timestamp"]
    if pd.api.types.is_integer_dtype(raw_ts):
        ts = pd.to_datetime(raw_ts, unit="ms", errors="coerce")
    else:
        text = raw_ts.astype(str).str.strip()
        ts = pd.to_datetime(text, format="ISO8601", errors="coerce")
    bad = np.flatnonzero(ts.isna().to_numpy())
    if bad.size:
        i = int(bad[0])
        raise DataError(f"{where(i)} timestamp", raw_ts.iloc[i], "must be a date and time")
    if ts.dt.tz is not None:
        ts = ts.dt.tz_convert("UTC").dt.tz_localize(None)
    out = pd.DataFrame({"ts": ts.to_numpy()})
    for column in ("percentage", "depth", "notional"):
        raw = frame[column]
        text = raw.astype(str).str.strip() if not pd.api.types.is_numeric_dtype(raw) else raw
        values = pd.to_numeric(text, errors="coerce").to_numpy(dtype=np.float64)
        if column == "percentage":
            ok = np.isfinite(values) & (values != 0.0) & (np.abs(values) <= 100.0)
            rule = "must be a non-zero number in [-100, 100]"
        else:
            ok = np.isfinite(values) & (values >= 0.0)
            rule = "must be a finite number >= 0"
        bad = np.flatnonzero(~ok)
        if bad.size:
            i = int(bad[0])
            raise DataError(f"{where(i)} {column}", raw.iloc[i], rule)
        out[column] = values
    duplicated = np.flatnonzero(out.duplicated(["ts", "percentage"]).to_numpy())
    if duplicated.size:
        i = int(duplicated[0])
        raise DataError(
            f"{where(i)} percentage",
            float(out["percentage"].iloc[i]),
            f"must appear once per snapshot ({out['ts'].iloc[i]})",
        )
    out.index = pd.RangeIndex(first_line, first_line + len(out), name=line_word)
    return out


class _Bands(NamedTuple):
    """The non-empty percentage bands of one side of a ``bookDepth`` snapshot."""

    start_pct: FloatArray  # inner edge of each band, percent from the mid (> 0 or 0)
    end_pct: FloatArray  # outer edge
    sizes: FloatArray  # base units added by the band
    notionals: FloatArray  # quote added by the band


def _bands(rows: pd.DataFrame, source: str) -> _Bands:
    rows = rows.sort_values("percentage", key=np.abs)
    pct = np.abs(rows["percentage"].to_numpy(dtype=np.float64))
    depth = rows["depth"].to_numpy(dtype=np.float64)
    notional = rows["notional"].to_numpy(dtype=np.float64)
    lines = rows.index.to_numpy()
    word = rows.index.name or "row"
    d_depth = np.diff(depth, prepend=0.0)
    d_notional = np.diff(notional, prepend=0.0)
    shrinking = np.flatnonzero(d_depth < 0.0)
    if shrinking.size:
        i = int(shrinking[0])
        raise DataError(
            f"{source} {word} {int(lines[i])} depth",
            float(depth[i]),
            f"must not be below the cumulative depth of the inner band ({float(depth[i - 1])})",
        )
    empty_notional = np.flatnonzero((d_depth > 0.0) & (d_notional <= 0.0))
    if empty_notional.size:
        i = int(empty_notional[0])
        raise DataError(
            f"{source} {word} {int(lines[i])} notional",
            float(notional[i]),
            "must grow where the cumulative depth grows",
        )
    keep = d_depth > 0.0
    starts = np.concatenate([[0.0], pct[:-1]])
    return _Bands(starts[keep], pct[keep], d_depth[keep], d_notional[keep])


def _book_depth_mid(
    levels: Mapping[int, _Bands],
    mid: float | None,
    source: str,
    when: object,
) -> float:
    if mid is not None:
        return _check_positive("mid", mid)
    inner = {}
    for s, bands in levels.items():
        sizes, notionals = bands.sizes, bands.notionals
        if sizes.size == 0:
            raise DataError(
                f"{source} snapshot {when}", "empty side", "has no depth on one side; pass mid"
            )
        inner[s] = float(notionals[0] / sizes[0])
    if inner[SELL] >= inner[BUY]:
        raise DataError(
            f"{source} snapshot {when}",
            f"innermost bid band average {inner[SELL]} >= ask {inner[BUY]}",
            "is crossed, so the mid cannot be estimated; pass mid (and placement='band_mid')",
        )
    return 0.5 * (inner[SELL] + inner[BUY])
