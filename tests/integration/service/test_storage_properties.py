"""Invariants of the service's storage and fan-out (Hypothesis).

- A journal committed to the database request by request and loaded back replays to the same
  state, bit for bit (``state_hash``), insurance-fund ledger included.
- Every subscriber receives exactly its notifications (its account's and the market-wide
  ones; an admin everything), in ``seq`` order.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import pyarrow as pa
from hypothesis import given, settings
from hypothesis import strategies as st

from deleverage import Exchange, MarketSpec
from deleverage.errors import DeleverageError
from deleverage.service.notifications import Hub
from deleverage.service.runtime import replay
from deleverage.service.storage import Storage
from deleverage.spec import MarginMode

_ops = st.lists(
    st.tuples(
        st.sampled_from(["trade", "mark", "deposit"]),
        st.integers(min_value=0, max_value=3),
        st.floats(min_value=0.5, max_value=1.5),
    ),
    min_size=1,
    max_size=25,
)


@settings(max_examples=20)
@given(ops=_ops)
def test_journal_stored_per_request_replays_bit_for_bit(ops: list[tuple[str, int, float]]) -> None:
    # Arrange: an engine driven by random requests, each committed like the service does
    ex = Exchange()
    with tempfile.TemporaryDirectory() as tmp:
        storage = Storage(f"sqlite:///{Path(tmp) / 'j.db'}")
        committed = 0

        def commit() -> None:
            nonlocal committed
            storage.commit(ex.journal.to_arrow().slice(committed), [])
            committed = len(ex.journal)

        spec = MarketSpec.simple("BTCUSDT", max_leverage=10, maintenance_rate=0.05)
        ex.list_market(spec)
        ex.set_mark("BTCUSDT", 100.0)
        traders = [int(a) for a in ex.open_accounts(4, margin_mode=MarginMode.ISOLATED)]
        ex.deposit_many(traders, [50.0, 100.0, 200.0, 1000.0])
        commit()
        # Act
        for kind, who, x in ops:
            try:
                if kind == "trade":
                    ex.trade("BTCUSDT", buyer=traders[who], seller=ex.liquidity_account,
                             size=round(x, 3), price=ex.market("BTCUSDT").mark)  # fmt: skip
                elif kind == "mark":
                    ex.set_mark("BTCUSDT", round(100.0 * x, 2))
                else:
                    ex.deposit(traders[who], 10.0 * x)
            except DeleverageError:
                pass  # refused: nothing emitted
            commit()
        loaded = storage.load_journal()
        storage.close()
    rebuilt = replay(loaded)
    # Assert
    assert loaded.to_arrow().equals(ex.journal.to_arrow())
    assert rebuilt.state_hash() == ex.state_hash()
    mine, theirs = ex.insurance_fund("BTCUSDT"), rebuilt.insurance_fund("BTCUSDT")
    assert theirs.balance == mine.balance
    assert theirs.drawdown_over_window(ex.clock_ns) == mine.drawdown_over_window(ex.clock_ns)


_notes = st.lists(st.one_of(st.none(), st.integers(min_value=0, max_value=4)), max_size=60)
_subs = st.lists(
    st.tuples(st.one_of(st.none(), st.integers(min_value=0, max_value=4)), st.booleans()),
    min_size=1,
    max_size=8,
)


@given(accounts=_notes, subscribers=_subs)
def test_hub_delivers_each_subscriber_its_notifications_in_order(
    accounts: list[int | None], subscribers: list[tuple[int | None, bool]]
) -> None:
    # Arrange
    hub = Hub()
    subs = [hub.subscribe(account=a, everything=e, maxsize=1000) for a, e in subscribers]
    notes: list[dict[str, Any]] = [
        {"seq": k + 1, "ts_ns": 0, "kind": "x", "account": a, "market": None, "data": {}}
        for k, a in enumerate(accounts)
    ]
    # Act
    for k in range(0, len(notes), 7):
        hub.publish(notes[k : k + 7])
    # Assert
    for sub, (account, everything) in zip(subs, subscribers, strict=True):
        got = []
        while not sub.queue.empty():
            got.append(sub.queue.get_nowait()[0])
        admin = everything and account is None
        want = [n["seq"] for n in notes if admin or n["account"] in (account, None)]
        assert got == want


def test_hub_drops_a_subscriber_whose_queue_overflows() -> None:
    # Arrange
    hub = Hub()
    slow = hub.subscribe(account=1, everything=False, maxsize=16)
    notes = [
        {"seq": k, "ts_ns": 0, "kind": "x", "account": 1, "market": None, "data": {}}
        for k in range(1, 21)
    ]
    # Act
    hub.publish(notes)
    # Assert
    assert slow.overflowed
    assert len(hub) == 0
    assert slow.queue.qsize() == 16


def test_empty_commit_writes_nothing(tmp_path: Path) -> None:
    storage = Storage(f"sqlite:///{tmp_path / 'e.db'}")
    storage.commit(pa.table({}), [])
    assert storage.journal_length() == 0
    assert storage.last_notification_seq() == 0
    storage.close()
