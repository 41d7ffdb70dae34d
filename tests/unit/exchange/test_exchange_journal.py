"""The event journal: Parquet round trip, exact replay, malformed files, batch account opening."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from deleverage import Exchange, Journal, MarginMode, MarketSpec
from deleverage.engine.events import (
    JOURNAL_SCHEMA,
    AccountOpened,
    Deposit,
    EventKind,
    Fill,
    MarginMoved,
    MarkPrice,
    PositionSettings,
    Withdrawal,
)
from deleverage.errors import DataError, DeleverageError


def _scenario() -> Exchange:
    """A small history touching every kind of effect the engine emits today."""
    ex = Exchange(check_invariants=True)
    btc = ex.list_market(
        MarketSpec.simple("BTCUSDT", max_leverage=20, maker_fee_rate=-0.0001), ts_ns=10
    )
    eth = ex.list_market(MarketSpec.simple("ETHUSDT", max_leverage=10, tick_size=0.1), ts_ns=10)
    alice = ex.open_account(label="alice", ts_ns=20)
    bob = ex.open_account(margin_mode=MarginMode.ISOLATED, label="bob", ts_ns=20)
    crowd = ex.open_accounts(5, ts_ns=25)
    ex.deposit(alice, 50_000.0, ts_ns=30)
    ex.deposit(bob, 20_000.0, ts_ns=30)
    for a in crowd:
        ex.deposit(int(a), 1_000.0, ts_ns=31)
    ex.set_mark(btc, 60_000.0, ts_ns=40)
    ex.set_mark(eth, 3_000.0, ts_ns=40)
    ex.set_leverage(alice, eth, 5.0, ts_ns=45)
    ex.trade(btc, buyer=alice, seller=bob, size=0.25, price=60_010.0, ts_ns=50)
    ex.trade(eth, buyer=ex.liquidity_account, seller=alice, size=2.0, price=3_001.5, ts_ns=50)
    ex.add_isolated_margin(bob, btc, 500.0, ts_ns=60)
    ex.set_mark(btc, 58_321.17, ts_ns=70)
    ex.trade(btc, buyer=bob, seller=ex.liquidity_account, size=0.1, price=58_320.0, ts_ns=80)
    ex.trade(
        btc, buyer=int(crowd[0]), seller=int(crowd[1]), size=0.1, price=58_330.0, taker=None,
        ts_ns=80,
    )  # fmt: skip
    ex.remove_isolated_margin(bob, btc, 100.0, ts_ns=90)
    ex.set_mark(eth, 3_333.3, ts_ns=95)
    ex.withdraw(alice, 1_234.5, ts_ns=100)
    ex.set_margin_mode(int(crowd[2]), eth, MarginMode.ISOLATED, ts_ns=110)
    return ex


def _assert_same_state(a: Exchange, b: Exchange) -> None:
    arrays_a, arrays_b = a.state_arrays(), b.state_arrays()
    assert sorted(arrays_a) == sorted(arrays_b)
    for name, arr in arrays_a.items():
        assert arr.dtype == arrays_b[name].dtype, name
        assert np.array_equal(arr, arrays_b[name]), name
    assert a.state_hash() == b.state_hash()
    assert (a.clock_ns, a.net_deposits, a.n_accounts) == (b.clock_ns, b.net_deposits, b.n_accounts)


def test_replay_of_in_memory_journal_reproduces_state_exactly() -> None:
    ex = _scenario()

    again = Exchange.replay(ex.journal, check_invariants=True)

    _assert_same_state(ex, again)
    assert len(again.journal) == len(ex.journal)


def test_parquet_round_trip_keeps_every_row_and_replays_exactly(tmp_path: Path) -> None:
    # Arrange
    ex = _scenario()
    path = ex.journal.write_parquet(tmp_path / "journal.parquet")

    # Act
    journal = Journal.read_parquet(path)
    again = Exchange.replay(journal)

    # Assert
    assert journal.to_arrow().equals(ex.journal.to_arrow())
    assert journal.to_arrow().schema.equals(JOURNAL_SCHEMA)
    assert len(journal) == len(ex.journal)
    assert journal.last_ts_ns == 110
    _assert_same_state(ex, again)


def test_replayed_engine_continues_like_the_original() -> None:
    ex = _scenario()
    again = Exchange.replay(ex.journal)

    for engine in (ex, again):
        engine.set_mark("BTCUSDT", 61_000.0, ts_ns=200)
        engine.trade(
            "BTCUSDT", buyer=engine.liquidity_account, seller=engine.n_accounts - 1, size=0.05,
            price=61_000.0,
        )  # fmt: skip

    _assert_same_state(ex, again)


def test_journal_rows_decode_to_typed_events_with_their_values() -> None:
    ex = _scenario()

    fills = ex.journal.events(Fill)
    kinds = [type(e) for e in ex.journal]

    assert len(fills) == 4
    first = fills[0]
    assert isinstance(first, Fill)
    opened = {
        e.label: e.account for e in ex.journal.events(AccountOpened) if isinstance(e, AccountOpened)
    }
    assert (first.buyer, first.seller) == (opened["alice"], opened["bob"])
    assert (first.size, first.price) == (0.25, 60_010.0)
    # taker buyer pays 0.05% of 0.25 x 60,010 = 7.50125; maker rebate -0.01% = -1.50025
    assert first.buyer_fee == pytest.approx(7.50125)
    assert first.seller_fee == pytest.approx(-1.50025)
    assert [e.seq for e in ex.journal] == list(range(len(ex.journal)))
    for cls in (AccountOpened, Deposit, Withdrawal, MarkPrice, MarginMoved, PositionSettings):
        assert cls in kinds


def test_every_effect_is_journaled_and_fee_account_gets_the_fees() -> None:
    ex = _scenario()
    table = ex.journal.to_arrow()
    fills = table.filter(pa.compute.equal(table["kind"], int(EventKind.FILL)))

    fees = float(np.sum(fills["fee"].to_numpy()) + np.sum(fills["counterparty_fee"].to_numpy()))

    assert ex.cash(ex.fee_account) == pytest.approx(fees, rel=1e-12)


# ---------------------------------------------------------------------------- malformed files


def _written(tmp_path: Path) -> tuple[pa.Table, Path]:
    ex = _scenario()
    table = ex.journal.to_arrow()
    return table, tmp_path / "bad.parquet"


def _replace(table: pa.Table, name: str, values: np.ndarray) -> pa.Table:
    i = table.schema.get_field_index(name)
    return table.set_column(i, name, pa.array(values))


def test_missing_column_is_a_data_error_naming_it(tmp_path: Path) -> None:
    table, path = _written(tmp_path)
    pq.write_table(table.drop_columns(["counterparty_fee"]), path)

    with pytest.raises(DataError) as info:
        Journal.read_parquet(path)

    assert "counterparty_fee" in str(info.value)
    assert "columns" in info.value.field


def test_unknown_extra_column_is_a_data_error_naming_it(tmp_path: Path) -> None:
    table, path = _written(tmp_path)
    pq.write_table(table.append_column("venue", pa.array(["x"] * table.num_rows)), path)

    with pytest.raises(DataError, match="venue"):
        Journal.read_parquet(path)


def test_sequence_gap_is_a_data_error_naming_the_row(tmp_path: Path) -> None:
    table, path = _written(tmp_path)
    seq = np.arange(table.num_rows, dtype=np.int64)
    seq[7:] += 1  # row 7 claims seq 8
    pq.write_table(_replace(table, "seq", seq), path)

    with pytest.raises(DataError) as info:
        Journal.read_parquet(path)

    assert info.value.field.endswith("seq[7]")
    assert info.value.value == 8


def test_time_going_backwards_is_a_data_error_naming_the_row(tmp_path: Path) -> None:
    table, path = _written(tmp_path)
    ts = table["ts_ns"].to_numpy().copy()
    ts[12] = ts[11] - 1
    pq.write_table(_replace(table, "ts_ns", ts), path)

    with pytest.raises(DataError) as info:
        Journal.read_parquet(path)

    assert info.value.field.endswith("ts_ns[12]")
    assert "backwards" in str(info.value)


def test_unknown_event_kind_is_a_data_error(tmp_path: Path) -> None:
    table, path = _written(tmp_path)
    kinds = table["kind"].to_numpy().copy()
    kinds[3] = 999
    pq.write_table(_replace(table, "kind", kinds.astype(np.int16)), path)

    with pytest.raises(DataError, match=r"kind\[3\]"):
        Journal.read_parquet(path)


def test_wrong_column_type_is_a_data_error(tmp_path: Path) -> None:
    table, path = _written(tmp_path)
    pq.write_table(_replace(table, "size", np.array(["big"] * table.num_rows)), path)

    with pytest.raises(DataError, match="schema"):
        Journal.read_parquet(path)


def test_non_parquet_file_is_a_data_error_naming_the_path(tmp_path: Path) -> None:
    path = tmp_path / "journal.parquet"
    path.write_text("seq,ts_ns,kind\n0,0,1\n")

    with pytest.raises(DataError) as info:
        Journal.read_parquet(path)

    assert str(path) in str(info.value)
    assert "Parquet" in str(info.value)


def test_missing_file_is_a_data_error_naming_the_path(tmp_path: Path) -> None:
    path = tmp_path / "missing.parquet"

    with pytest.raises(DataError) as info:
        Journal.read_parquet(path)

    assert info.value.field == "path"
    assert str(path) in str(info.value)


def test_data_error_is_catchable_as_deleverage_error(tmp_path: Path) -> None:
    with pytest.raises(DeleverageError):
        Journal.read_parquet(tmp_path / "missing.parquet")


def test_empty_journal_round_trips(tmp_path: Path) -> None:
    path = Journal().write_parquet(tmp_path / "empty.parquet")

    journal = Journal.read_parquet(path)

    assert len(journal) == 0
    assert journal.last_ts_ns == 0


# ---------------------------------------------------------------------------- batch opening


@pytest.mark.parametrize("mode", list(MarginMode))
@pytest.mark.parametrize("count", [1, 5, 40])  # 40 forces the arrays to grow
def test_open_accounts_batch_equals_one_by_one_and_replays(count: int, mode: MarginMode) -> None:
    # Arrange
    batch, single = Exchange(), Exchange()
    for ex in (batch, single):
        ex.list_market(MarketSpec.simple("BTCUSDT"), ts_ns=5)

    # Act
    ids = batch.open_accounts(count, margin_mode=mode, ts_ns=7)
    singles = [single.open_account(margin_mode=mode, ts_ns=7) for _ in range(count)]

    # Assert: same ids, same state, same journal rows; and the batch replays
    assert ids.tolist() == singles
    _assert_same_state(batch, single)
    assert batch.journal.to_arrow().equals(single.journal.to_arrow())
    _assert_same_state(batch, Exchange.replay(batch.journal))
    assert all(batch.position(int(a), 0).margin_mode is mode for a in ids)


def test_batch_opened_accounts_pick_up_markets_listed_later() -> None:
    batch, single = Exchange(), Exchange()
    batch.open_accounts(3, margin_mode=MarginMode.ISOLATED)
    for _ in range(3):
        single.open_account(margin_mode=MarginMode.ISOLATED)

    for ex in (batch, single):
        ex.list_market(MarketSpec.simple("BTCUSDT"))

    _assert_same_state(batch, single)
    _assert_same_state(batch, Exchange.replay(batch.journal))


def test_journal_since_equals_the_slice_of_the_whole_table() -> None:
    # Arrange: rows, a columnar batch, then rows again
    from deleverage.engine.events import EventKind, Journal, MarkPrice

    journal = Journal()
    for k in range(3):
        journal.append(MarkPrice(ts_ns=k, market=0, price=100.0 + k))
    journal.append_columns(EventKind.DEPOSIT, 5, account=np.arange(4), amount=np.full(4, 10.0))
    for k in range(2):
        journal.append(MarkPrice(ts_ns=6 + k, market=0, price=110.0 + k))
    # Act: every starting point (past the end too), before the segments are ever combined
    parts = [journal.since(seq) for seq in range(len(journal) + 2)]
    # Assert
    some = [journal.since(seq, ("kind", "account", "amount")) for seq in range(len(journal) + 2)]
    arrays = [journal.arrays_since(seq, ("seq", "kind", "account", "amount"))
              for seq in range(len(journal) + 2)]  # fmt: skip
    whole = journal.to_arrow()
    for seq, (part, columns) in enumerate(zip(parts, some, strict=True)):
        assert part.equals(whole.slice(seq))
        assert columns.equals(whole.slice(seq).select(["kind", "account", "amount"]))
        for name, values in arrays[seq].items():
            np.testing.assert_array_equal(values, whole.slice(seq).column(name).to_numpy())
