"""Tests of deleverage.liquidity's files: L2 books from CSV and Parquet, Binance's bookDepth
archive (the bundled sample and the full day of BTCUSDT on 2025-10-10 where present).

Expected numbers come from outside the code: the cumulative depth and notional columns of
Binance's bookDepth archive. Split from test_liquidity.py (the models' closed forms and
properties), which keeps the books' arithmetic.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from _liquidity_books import three_level_book

from deleverage.errors import DataError, ValidationError
from deleverage.liquidity import (
    L2Book,
    bundled_book_depth_sample,
    read_binance_book_depth,
)

SHARED_BOOK_DEPTH = Path(
    "/work/shared/data/binance_um_bookdepth_btcusdt_2025-10-10/BTCUSDT-bookDepth-2025-10-10.csv.gz"
)


# --------------------------------------------------------------------------------------------
# Files: CSV, Parquet
# --------------------------------------------------------------------------------------------

GOOD_CSV = "side,price,size\nbid,99.5,1\nbid,99,2\nbid,98,3\nask,100.5,1\nask,101,2\nask,102,3\n"


def write(tmp_path: Path, text: str, name: str = "book.csv") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_l2_book_loads_from_csv(tmp_path: Path) -> None:
    book = L2Book.from_csv(write(tmp_path, GOOD_CSV), half_life_s=10.0)

    assert book.quote(1, 2.5, 100.0, 0) == three_level_book().quote(1, 2.5, 100.0, 0)


def test_l2_book_round_trips_through_parquet(tmp_path: Path) -> None:
    path = tmp_path / "book.parquet"
    three_level_book().to_frame().to_parquet(path)

    book = L2Book.from_parquet(path, half_life_s=10.0)

    assert book.quote(-1, 4.0, 100.0, 0) == three_level_book().quote(-1, 4.0, 100.0, 0)


@pytest.mark.parametrize(
    ("text", "match"),
    [
        (GOOD_CSV.replace("bid,99,2", "bid,abc,2"), "line 3 price"),
        (GOOD_CSV.replace("bid,99,2", "bid,99,-2"), "line 3 size"),
        (GOOD_CSV.replace("bid,98,3", "bid,99.7,3"), "line 4 price"),
        (GOOD_CSV.replace("ask,101,2", "ask,100,2"), "line 6 price"),
        (GOOD_CSV.replace("bid,99,2", "bdi,99,2"), "line 3 side"),
        (GOOD_CSV.replace("bid,99,2", "bid,99,2,7"), "line 3"),
        (GOOD_CSV.replace("bid,99,2\n", "\nbid,99,2\n"), "line 3 side"),
        (GOOD_CSV.replace("side,price,size", "side,px,size"), "columns"),
        (GOOD_CSV.replace("bid,99.5,1", "bid,100.7,1"), "line 2 price.*crossed"),
        ("", "empty file"),
    ],
)
def test_malformed_csv_names_the_line(tmp_path: Path, text: str, match: str) -> None:
    with pytest.raises(DataError, match=match):
        L2Book.from_csv(write(tmp_path, text), half_life_s=10.0)


def test_missing_or_corrupt_files_raise_data_error(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="existing file"):
        L2Book.from_csv(tmp_path / "nope.csv", half_life_s=1.0)
    with pytest.raises(DataError, match="Parquet"):
        L2Book.from_parquet(write(tmp_path, GOOD_CSV, "book.parquet"), half_life_s=1.0)


# --------------------------------------------------------------------------------------------
# Binance bookDepth
# --------------------------------------------------------------------------------------------


def test_bundled_snapshot_buying_the_whole_ask_side_costs_the_files_notional() -> None:
    # From the file (2025-10-10 00:00:07, BTCUSDT): +5 % cumulative depth 6182.925 BTC,
    # notional 766 746 432.071 USDT, weighted_avg_price 124 010.307754178; -5 %: 8243.012 BTC,
    # 979 983 314.2056 USDT; +1 %: 1964.845 BTC; -1 %: 1496.75 BTC.
    book = L2Book.from_binance_book_depth(bundled_book_depth_sample(), half_life_s=30.0)

    buy_all = book.quote(1, 6182.925, book.mid, 0)
    sell_all = book.quote(-1, 8243.012, book.mid, 0)

    assert buy_all.notional == pytest.approx(766_746_432.071, rel=1e-12)
    assert buy_all.vwap == pytest.approx(124_010.307754178, rel=1e-12)
    assert buy_all.unfilled == 0.0
    assert sell_all.notional == pytest.approx(979_983_314.2056, rel=1e-12)
    assert book.depth_within(1, 0.01) == pytest.approx(1964.845)
    assert book.depth_within(-1, 0.01) == pytest.approx(1496.75)
    assert book.quote(1, 6183.0, book.mid, 0).unfilled == pytest.approx(0.075)


def test_bundled_snapshot_is_chosen_by_time() -> None:
    # 12:00:07 is the last snapshot at or before 12:00:30; its +1 % depth is 1929.655 BTC
    book = L2Book.from_binance_book_depth(
        bundled_book_depth_sample(), half_life_s=30.0, at="2025-10-10 12:00:30"
    )

    assert book.depth_within(1, 0.01) == pytest.approx(1929.655)
    assert "12:00:07" in book.source


def test_cascade_snapshot_with_a_stale_bid_is_crossed_unless_placed_by_band() -> None:
    # At 21:30:06 the whole bid side within 5 % is one stale 17.654 BTC level at ~121 363, above
    # the asks (SOURCE.md). Mid 109 183.0: open of the 21:30 1-minute BTCUSDT kline (Binance,
    # deleverage/data/prices/BTCUSDT-1m-2025-10-10_1913-2334UTC.csv).
    path = bundled_book_depth_sample()
    with pytest.raises(DataError, match="crossed"):
        L2Book.from_binance_book_depth(path, half_life_s=30.0, at="2025-10-10 21:30:06")

    book = L2Book.from_binance_book_depth(
        path, half_life_s=30.0, at="2025-10-10 21:30:06", placement="band_mid", mid=109_183.0
    )

    assert book.bid_sizes == pytest.approx([17.654])
    assert book.bid_prices == pytest.approx([109_183.0 * 0.995])
    assert book.ask_sizes.sum() == pytest.approx(1596.74)
    assert book.quote(-1, 100.0, 109_183.0, 0).size == pytest.approx(17.654)


def test_book_depth_loader_reports_bad_arguments_as_validation_errors() -> None:
    with pytest.raises(ValidationError) as info:
        L2Book.from_binance_book_depth(bundled_book_depth_sample(), half_life_s=-1.0)
    assert type(info.value) is ValidationError
    assert info.value.field == "half_life_s"


def test_snapshot_before_the_first_is_rejected() -> None:
    with pytest.raises(ValidationError, match="`at`"):
        L2Book.from_binance_book_depth(
            bundled_book_depth_sample(), half_life_s=30.0, at="2025-10-09 23:00:00"
        )


BOOK_DEPTH_HEADER = "timestamp,percentage,depth,notional\n"
BOOK_DEPTH_ROWS = (
    "2025-10-10 00:00:07,-2,3859.67,463589665.9671\n"
    "2025-10-10 00:00:07,-1,1496.75,181266014.3741\n"
    "2025-10-10 00:00:07,1,1964.845,239906922.6169\n"
    "2025-10-10 00:00:07,2,3554.445,435823459.6932\n"
)


@pytest.mark.parametrize(
    ("rows", "match"),
    [
        (BOOK_DEPTH_ROWS.replace("3554.445", "1000.0"), "line 5 depth"),
        (BOOK_DEPTH_ROWS.replace("2025-10-10 00:00:07,1,", "2025-13-10 00:00:07,1,"), "line 4"),
        (BOOK_DEPTH_ROWS.replace(",-1,", ",0,"), "line 3 percentage"),
        (BOOK_DEPTH_ROWS.replace(",-1,", ",-2,"), "line 3 percentage"),
        (BOOK_DEPTH_ROWS.replace("1496.75", "nan"), "line 3 depth"),
    ],
)
def test_malformed_book_depth_names_the_line(tmp_path: Path, rows: str, match: str) -> None:
    path = write(tmp_path, BOOK_DEPTH_HEADER + rows, "depth.csv")
    with pytest.raises(DataError, match=match):
        L2Book.from_binance_book_depth(path, half_life_s=30.0)


def test_book_depth_table_in_memory_loads_like_the_file(tmp_path: Path) -> None:
    path = write(tmp_path, BOOK_DEPTH_HEADER + BOOK_DEPTH_ROWS, "depth.csv")

    from_file = L2Book.from_binance_book_depth(path, half_life_s=30.0)
    from_frame = L2Book.from_binance_book_depth(pd.read_csv(path), half_life_s=30.0)

    assert from_frame.quote(1, 3000.0, from_file.mid, 0) == from_file.quote(
        1, 3000.0, from_file.mid, 0
    )


@pytest.mark.skipif(not SHARED_BOOK_DEPTH.is_file(), reason="shared data folder not present")
def test_bundled_sample_rows_match_the_full_day_file() -> None:
    full = read_binance_book_depth(SHARED_BOOK_DEPTH)
    sample = read_binance_book_depth(bundled_book_depth_sample())

    assert len(full) == 28_790
    assert full["ts"].nunique() == 2_879
    merged = sample.merge(full, on=["ts", "percentage"], suffixes=("", "_full"))
    assert len(merged) == len(sample) == 50
    assert (merged["depth"] == merged["depth_full"]).all()
    assert (merged["notional"] == merged["notional_full"]).all()
