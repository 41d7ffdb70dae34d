"""The engine bounds event time: no timestamp can overflow the journal or freeze the clock."""

from __future__ import annotations

import pytest

from deleverage import Exchange, MarketSpec
from deleverage.engine.exchange import MAX_TS_NS
from deleverage.errors import ValidationError


@pytest.mark.parametrize("ts_ns", [MAX_TS_NS + 1, 2**63 - 1, 2**63, 10**30])
def test_a_timestamp_past_the_bound_is_refused_and_changes_nothing(ts_ns: int) -> None:
    # Arrange
    ex = Exchange()
    ex.list_market(MarketSpec.simple("BTCUSDT", max_leverage=10))
    ex.set_mark("BTCUSDT", 100.0, ts_ns=10**18)
    before, rows = ex.state_hash(), len(ex.journal)
    # Act
    with pytest.raises(ValidationError, match="ts_ns"):
        ex.set_mark("BTCUSDT", 101.0, ts_ns=ts_ns)
    # Assert: unchanged, and the clock still moves on
    assert (ex.state_hash(), len(ex.journal)) == (before, rows)
    ex.set_mark("BTCUSDT", 102.0, ts_ns=10**18 + 1)
    assert ex.clock_ns == 10**18 + 1
    assert ex.journal.to_arrow().num_rows == rows + 1


def test_the_bound_itself_is_accepted() -> None:
    ex = Exchange()
    ex.list_market(MarketSpec.simple("BTCUSDT", max_leverage=10))
    ex.set_mark("BTCUSDT", 100.0, ts_ns=MAX_TS_NS)
    assert ex.clock_ns == MAX_TS_NS
