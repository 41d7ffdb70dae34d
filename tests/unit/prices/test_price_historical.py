"""Loading, checking and replaying OHLCV bars; the bundled crash windows.

Small CSVs are written in each test, so the line numbers asserted below can be counted by eye
(the header is line 1). The bundled windows are checked against the numbers in the shared data
SOURCE.md (Binance USDⓈ-M BTCUSDT perpetual 1m klines): 2025-10-10 19:13-23:34 UTC opens at
116 935.60 and bottoms at 101 516.50; 2020-03-12 09:45-12:07 UTC opens at 7 365.87 and bottoms
at 5 199.17.
"""

from __future__ import annotations

import gzip
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from deleverage.errors import DataError, UnknownEntityError, ValidationError
from deleverage.prices import (
    BINANCE_KLINE_COLUMNS,
    Gap,
    bundled_crash,
    bundled_description,
    list_bundled,
    load_ohlcv,
    ohlcv_from_frame,
    to_path,
)

T0_MS = 1_760_123_580_000  # 2025-10-10 19:13 UTC, the first bar of the bundled window
MINUTE_MS = 60_000
HEADER = "open_time,open,high,low,close,volume"


def _write(tmp_path: Path, lines: list[str], name: str = "bars.csv") -> Path:
    path = tmp_path / name
    path.write_text("\n".join(lines) + "\n")
    return path


def _bar(minute: int, o: float, h: float, lo: float, c: float, v: float = 1.0) -> str:
    return f"{T0_MS + minute * MINUTE_MS},{o},{h},{lo},{c},{v}"


GOOD = [
    _bar(0, 100, 101, 99, 100.5),
    _bar(1, 100.5, 102, 100, 101),
    _bar(2, 101, 101.5, 98, 99),
    _bar(3, 99, 99.5, 97, 98),
]


# --------------------------------------------------------------------------------------------
# Loading good files
# --------------------------------------------------------------------------------------------


def test_loader_returns_frame_in_ns_with_the_detected_bar_size(tmp_path: Path) -> None:
    # Act
    bars = load_ohlcv(_write(tmp_path, [HEADER, *GOOD]))

    # Assert
    assert list(bars.frame.columns) == ["ts_ns", "open", "high", "low", "close", "volume"]
    assert bars.frame["ts_ns"].dtype == np.int64
    assert bars.frame["ts_ns"].iat[1] == (T0_MS + MINUTE_MS) * 1_000_000
    assert bars.bar_ns == 60_000_000_000
    assert bars.bar_s == 60.0
    assert bars.timestamp_unit == "ms"
    assert bars.gaps == ()
    assert bars.n_bars == 4
    assert bars.ts_end_ns == (T0_MS + 4 * MINUTE_MS) * 1_000_000


def test_loader_reports_a_gap_without_failing(tmp_path: Path) -> None:
    # Arrange: minutes 0, 1, then 4 and 5: minutes 2 and 3 are missing; minute 4 is on line 4.
    lines = [
        HEADER,
        _bar(0, 100, 101, 99, 100),
        _bar(1, 100, 101, 99, 100),
        _bar(4, 100, 101, 99, 100),
        _bar(5, 100, 101, 99, 100),
    ]

    # Act
    bars = load_ohlcv(_write(tmp_path, lines))

    # Assert
    assert bars.gaps == (
        Gap(
            line=4,
            ts_before_ns=(T0_MS + MINUTE_MS) * 1_000_000,
            ts_after_ns=(T0_MS + 4 * MINUTE_MS) * 1_000_000,
            missing_bars=2,
        ),
    )
    assert bars.missing_bars == 2
    assert bars.bar_s == 60.0


@pytest.mark.parametrize(
    ("unit", "scale"), [("s", 1 / 1000), ("ms", 1), ("us", 1_000), ("ns", 1_000_000)]
)
def test_timestamp_unit_is_detected_from_magnitude(tmp_path: Path, unit: str, scale: float) -> None:
    lines = ["timestamp,open,high,low,close"]
    for k in range(3):
        lines.append(f"{round((T0_MS + k * MINUTE_MS) * scale)},10,11,9,10")

    bars = load_ohlcv(_write(tmp_path, lines))

    assert bars.timestamp_unit == unit
    assert bars.frame["ts_ns"].tolist() == [(T0_MS + k * MINUTE_MS) * 1_000_000 for k in range(3)]
    assert np.isnan(bars.frame["volume"]).all()  # no volume column in the file


def test_binance_spot_microsecond_klines_are_detected(tmp_path: Path) -> None:
    # Rows quoted in https://github.com/binance/binance-public-data/issues/386 (DOGEUSDT 1s
    # spot klines of 2025-01-01, the first day with microsecond timestamps).
    rows = [
        "1735689600000000,0.31600000,0.31600000,0.31600000,0.31600000,27.00000000,"
        "1735689600999999,8.53200000,1,0.00000000,0.00000000,0",
        "1735689601000000,0.31601000,0.31601000,0.31601000,0.31601000,17.00000000,"
        "1735689601999999,5.37217000,5,17.00000000,5.37217000,0",
        "1735689602000000,0.31601000,0.31601000,0.31601000,0.31601000,0.00000000,"
        "1735689602999999,0.00000000,0,0.00000000,0.00000000,0",
    ]

    bars = load_ohlcv(_write(tmp_path, rows))

    assert bars.timestamp_unit == "us"
    assert bars.bar_s == 1.0
    assert pd.Timestamp(int(bars.frame["ts_ns"].iat[0]), unit="ns") == pd.Timestamp("2025-01-01")
    assert bars.frame["volume"].tolist() == [27.0, 17.0, 0.0]


def test_explicit_timestamp_unit_overrides_detection(tmp_path: Path) -> None:
    lines = ["time,open,high,low,close", "100,1,1,1,1", "160,1,1,1,1"]
    bars = load_ohlcv(_write(tmp_path, lines), timestamp_unit="ms")
    assert bars.frame["ts_ns"].tolist() == [100_000_000, 160_000_000]
    assert bars.bar_ns == 60_000_000


def test_headerless_binance_kline_file_is_read_with_the_kline_layout(tmp_path: Path) -> None:
    # Binance archives before 2022 ship kline CSVs without a header row.
    rows = [
        f"{T0_MS + k * MINUTE_MS},100,101,99,100,5,{T0_MS + k * MINUTE_MS + 59_999},500,10,2,200,0"
        for k in range(3)
    ]
    bars = load_ohlcv(_write(tmp_path, rows))
    assert bars.n_bars == 3
    assert bars.frame["volume"].tolist() == [5.0, 5.0, 5.0]
    assert len(BINANCE_KLINE_COLUMNS) == 12


def test_gzip_csv_is_read(tmp_path: Path) -> None:
    path = tmp_path / "bars.csv.gz"
    with gzip.open(path, "wt") as handle:
        handle.write("\n".join([HEADER, *GOOD]) + "\n")
    assert load_ohlcv(path).n_bars == 4


def test_iso_datetime_strings_are_parsed_as_utc(tmp_path: Path) -> None:
    lines = [
        "date,open,high,low,close",
        "2025-10-10T21:00:00Z,1,1,1,1",
        "2025-10-10T21:05:00Z,1,1,1,1",
    ]
    bars = load_ohlcv(_write(tmp_path, lines))
    assert bars.timestamp_unit == "datetime"
    assert bars.frame["ts_ns"].iat[0] == 1_760_130_000 * 10**9
    assert bars.bar_s == 300.0


def test_parquet_with_datetime_column_is_read(tmp_path: Path) -> None:
    frame = pd.DataFrame(
        {
            "timestamp": pd.to_datetime(
                ["2025-10-10 00:00", "2025-10-10 01:00", "2025-10-10 02:00"], utc=True
            ),
            "open": [1.0, 2.0, 3.0],
            "high": [2.0, 3.0, 4.0],
            "low": [0.5, 1.5, 2.5],
            "close": [2.0, 3.0, 3.5],
            "volume": [1.0, 1.0, 1.0],
        }
    )
    path = tmp_path / "bars.parquet"
    frame.to_parquet(path)

    bars = load_ohlcv(path)

    start_ns = 1_760_054_400 * 10**9  # 2025-10-10 00:00 UTC
    assert bars.frame["ts_ns"].tolist() == [start_ns + k * 3_600 * 10**9 for k in range(3)]
    assert bars.timestamp_unit == "datetime"
    assert bars.bar_s == 3_600.0


def test_blank_lines_are_skipped_and_line_numbers_still_count_them(tmp_path: Path) -> None:
    # Line 3 is blank; the bad bar (high < low) is on line 5.
    lines = [HEADER, GOOD[0], "", GOOD[1], _bar(2, 100, 99, 101, 100)]
    with pytest.raises(DataError, match="line 5: `high` must be >= low"):
        load_ohlcv(_write(tmp_path, lines))


def test_nanosecond_timestamps_stay_exact_next_to_a_blank_line(tmp_path: Path) -> None:
    # A blank line turns the column into floats in the CSV parser; 19-digit integers must not
    # be rounded to the nearest representable float (256 ns apart at this magnitude).
    first = 1_760_123_580_000_000_001
    lines = ["ts_ns,open,high,low,close", f"{first},1,1,1,1", "", f"{first + 60 * 10**9},1,1,1,1"]
    bars = load_ohlcv(_write(tmp_path, lines))
    assert bars.frame["ts_ns"].tolist() == [first, first + 60 * 10**9]


def test_single_binance_bar_takes_its_size_from_close_time(tmp_path: Path) -> None:
    lines = [",".join(BINANCE_KLINE_COLUMNS), f"{T0_MS},1,2,0.5,1.5,3,{T0_MS + 299_999},4,5,6,7,0"]
    assert load_ohlcv(_write(tmp_path, lines)).bar_s == 300.0


def test_explicit_bar_size_finds_gaps_when_every_step_is_a_gap(tmp_path: Path) -> None:
    lines = [HEADER, _bar(0, 1, 1, 1, 1), _bar(2, 1, 1, 1, 1), _bar(4, 1, 1, 1, 1)]
    bars = load_ohlcv(_write(tmp_path, lines), bar_s=60.0)
    assert [g.missing_bars for g in bars.gaps] == [1, 1]
    assert [g.line for g in bars.gaps] == [3, 4]


def test_frame_input_is_checked_with_row_numbers() -> None:
    frame = pd.DataFrame(
        {
            "ts": [1, 2, 2],
            "open": [1.0] * 3,
            "high": [1.0] * 3,
            "low": [1.0] * 3,
            "close": [1.0] * 3,
        }
    )
    with pytest.raises(DataError, match="row 3: `ts` must increase"):
        ohlcv_from_frame(frame, timestamp_unit="s")


# --------------------------------------------------------------------------------------------
# Bad rows: DataError naming the line
# --------------------------------------------------------------------------------------------


TS2 = T0_MS + 2 * MINUTE_MS
DUPLICATE = "must increase from row to row, but duplicates"
BACKWARDS = "must increase from row to row, but goes back"
OTHER_UNIT = "must be in the file's unit (ms, from its first row), but looks like s"


@pytest.mark.parametrize(
    ("bad_row", "expected"),
    [
        (_bar(2, 100, 99, 101, 100), "line 4: `high` must be >= low (101.0), was 99"),
        (_bar(2, 0, 101, 99, 100), "line 4: `open` must be > 0, was 0"),
        (_bar(2, -5, 101, 99, 100), "line 4: `open` must be > 0, was -5"),
        (_bar(2, 100, 101, 99, 102), "line 4: `close` must lie within [low, high] = [99.0, 101.0]"),
        (f"{TS2},100,,99,100,1", "line 4: `high` must be a finite number"),
        (f"{TS2},100,101,nan,100,1", "line 4: `low` must be a finite number"),
        (f"{TS2},100,101,abc,100,1", "line 4: `low` must be a finite number, was 'abc'"),
        (_bar(2, 100, 101, 99, 100, v=-1), "line 4: `volume` must be >= 0, was -1"),
        (_bar(1, 100, 101, 99, 100), f"line 4: `open_time` {DUPLICATE}"),
        (_bar(0, 100, 101, 99, 100), f"line 4: `open_time` {BACKWARDS}"),
        (f"{TS2 // 1000},100,101,99,100,1", f"line 4: `open_time` {OTHER_UNIT}"),
        (f"x{T0_MS},100,101,99,100,1", "line 4: `open_time` must be a number or date-time"),
    ],
)
def test_bad_row_raises_data_error_naming_its_line(
    tmp_path: Path, bad_row: str, expected: str
) -> None:
    # Arrange: header (line 1), two good bars (lines 2-3), the bad row (line 4), a good bar.
    lines = [HEADER, GOOD[0], GOOD[1], bad_row, _bar(3, 100, 101, 99, 100)]

    # Act / Assert
    with pytest.raises(DataError, match=re.escape(expected)):
        load_ohlcv(_write(tmp_path, lines))


def test_first_bad_line_is_named_and_the_others_counted(tmp_path: Path) -> None:
    lines = [HEADER, GOOD[0], _bar(1, -1, 101, 99, 100), _bar(2, 100, 99, 101, 100)]
    with pytest.raises(DataError, match=r"line 3: `open` must be > 0, was -1 \(1 more bad lines\)"):
        load_ohlcv(_write(tmp_path, lines))


def test_row_with_too_many_fields_names_its_line(tmp_path: Path) -> None:
    lines = [HEADER, GOOD[0], GOOD[1] + ",7"]
    with pytest.raises(DataError, match="line 3"):
        load_ohlcv(_write(tmp_path, lines))


def test_missing_price_column_is_named(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="must include the `low` column"):
        load_ohlcv(_write(tmp_path, ["time,open,high,close", "1,1,1,1"]))


def test_missing_file_is_a_data_error(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="`path` must be an existing file"):
        load_ohlcv(tmp_path / "nope.csv")


def test_empty_file_is_a_data_error(tmp_path: Path) -> None:
    path = tmp_path / "empty.csv"
    path.write_text("")
    with pytest.raises(DataError, match="must contain at least one bar"):
        load_ohlcv(path)


def test_explicit_bar_size_longer_than_a_step_is_rejected(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="line 3: the bar starts 60 s after the previous one"):
        load_ohlcv(_write(tmp_path, [HEADER, *GOOD]), bar_s=300.0)


def test_parquet_bad_row_is_named_by_row(tmp_path: Path) -> None:
    frame = pd.DataFrame(
        {
            "ts_ns": [1, 2, 3],
            "open": [1.0, 1.0, 1.0],
            "high": [1.0, 0.5, 1.0],
            "low": [1.0, 0.9, 1.0],
            "close": [1.0, 0.9, 1.0],
        }
    )
    path = tmp_path / "bars.parquet"
    frame.to_parquet(path)
    with pytest.raises(DataError, match="row 2: `high` must be >= low"):
        load_ohlcv(path)


# --------------------------------------------------------------------------------------------
# Replay as a price path
# --------------------------------------------------------------------------------------------


def _two_bars(tmp_path: Path) -> Path:
    # A bearish bar (open 100 -> high 104 -> low 96 -> close 98) then a bullish one
    # (open 98 -> low 97 -> high 103 -> close 102).
    return _write(tmp_path, [HEADER, _bar(0, 100, 104, 96, 98), _bar(1, 98, 103, 97, 102)])


def test_ohlc_path_visits_open_extremes_and_close_at_quarter_bars(tmp_path: Path) -> None:
    # Act
    path = to_path(load_ohlcv(_two_bars(tmp_path)), 1.0)

    # Assert: anchors every 15 s; bearish bar high first, bullish bar low first.
    assert len(path) == 121
    anchors = {0: 100, 15: 104, 30: 96, 45: 98, 60: 98, 75: 97, 90: 103, 105: 102, 120: 102}
    for second, price in anchors.items():
        assert path[second] == pytest.approx(price, abs=1e-12)
    assert path[20] == pytest.approx(104 + (96 - 104) * 5 / 15)  # linear between anchors
    assert path.min() == 96.0
    assert path.max() == 104.0


def test_close_path_interpolates_closes_at_bar_ends(tmp_path: Path) -> None:
    path = to_path(load_ohlcv(_two_bars(tmp_path)), 30.0, method="close")
    np.testing.assert_allclose(path, [100.0, 99.0, 98.0, 100.0, 102.0])


def test_path_bridges_a_gap_linearly(tmp_path: Path) -> None:
    # Bar 0 closes at 100 (at 45 s); the next bar (minute 3) opens at 130 at 180 s.
    lines = [HEADER, _bar(0, 100, 100, 100, 100), _bar(3, 130, 130, 130, 130)]
    path = to_path(load_ohlcv(_write(tmp_path, lines), bar_s=60.0), 15.0)
    # 45 s -> 180 s is 9 steps of 15 s, each +30/9.
    np.testing.assert_allclose(path[3:13], 100 + np.arange(10) * 30 / 9)
    assert len(path) == 17  # 240 s / 15 s + 1


def test_path_rejects_non_positive_step(tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match="`dt_s` must be > 0"):
        to_path(load_ohlcv(_two_bars(tmp_path)), 0.0)


def test_path_is_deterministic(tmp_path: Path) -> None:
    bars = load_ohlcv(_two_bars(tmp_path))
    np.testing.assert_array_equal(to_path(bars, 0.25), to_path(bars, 0.25))


# --------------------------------------------------------------------------------------------
# Bundled crash windows
# --------------------------------------------------------------------------------------------


def test_bundled_names_are_listed() -> None:
    assert list_bundled() == (
        "btcusdt-1m-2020-03-12",
        "btcusdt-1m-2025-10-10",
        "ethusdt-1h-2020-03-11",
    )


def test_bundled_2025_10_10_crash_shows_the_real_drop() -> None:
    # Act
    bars = bundled_crash("btcusdt-1m-2025-10-10")
    frame = bars.frame

    # Assert: numbers from the shared data SOURCE.md and the file's first row.
    assert bars.n_bars == 262
    assert bars.gaps == ()
    assert bars.bar_s == 60.0
    assert frame["open"].iat[0] == 116_935.60
    assert frame["low"].min() == 101_516.50
    assert frame["low"].min() / frame["open"].iat[0] - 1 < -0.13  # a 13.2 % fall
    low_at = pd.Timestamp(int(frame["ts_ns"].iat[int(frame["low"].argmin())]), unit="ns")
    assert pd.Timestamp("2025-10-10 21:00") <= low_at <= pd.Timestamp("2025-10-10 21:21")


def test_bundled_2020_03_12_crash_shows_the_real_drop() -> None:
    bars = bundled_crash("btcusdt-1m-2020-03-12")
    assert bars.n_bars == 143
    assert bars.frame["open"].iat[0] == 7_365.87
    assert bars.frame["low"].min() == 5_199.17


def test_bundled_crash_replays_at_one_second_through_its_low() -> None:
    bars = bundled_crash("btcusdt-1m-2025-10-10")
    path = to_path(bars, 1.0)
    assert len(path) == 262 * 60 + 1
    assert path.min() == 101_516.50
    assert path.max() == bars.frame["high"].max()


def test_unknown_bundled_name_lists_the_known_names() -> None:
    with pytest.raises(UnknownEntityError, match="btcusdt-1m-2020-03-12, btcusdt-1m-2025-10-10"):
        bundled_crash("eth-2021")


def test_bundled_description_names_the_market() -> None:
    assert "BTCUSDT" in bundled_description("btcusdt-1m-2020-03-12")
