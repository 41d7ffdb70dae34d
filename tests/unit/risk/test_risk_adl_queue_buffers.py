"""The ADL queue of an isolated pnl_leverage market: its capacity, summed in the compiled pass,
against the gathered sum it replaces, and the queues that view the stage's reserved buffers."""

from __future__ import annotations

import numpy as np
import pytest

from deleverage import Exchange, MarginMode, MarketSpec
from deleverage.engine.risk.adl_queue import DenseQueue

S = 1_000_000_000


def _exchange() -> Exchange:
    """Ten isolated longs and ten isolated shorts at 100 with different sizes."""
    spec = MarketSpec.from_mapping(
        {
            "symbol": "BTCUSDT",
            "tiers": [{"notional_floor": 0, "max_leverage": 50, "maintenance_rate": 0.01}],
        }
    )
    ex = Exchange()
    ex.list_market(spec)
    ex.set_mark(0, 100.0)
    ids = ex.open_accounts(20, margin_mode=MarginMode.ISOLATED)
    ex.deposit_many(ids, np.full(20, 10_000.0))
    sizes = np.concatenate([np.arange(1.0, 11.0), -np.arange(1.0, 11.0) * 0.5])
    ex.open_positions(0, ids, sizes, np.full(20, 100.0), leverage=np.full(20, 5.0))
    ex.set_mark(0, 95.0, ts_ns=S)  # the shorts profit: the short queue holds all ten
    return ex


def _gathered(ex: Exchange, side: int) -> float:
    """The capacity as the engine summed it before: the candidates' sizes, gathered."""
    queue = ex.risk._queue(0, side)
    return float(np.abs(ex.columns(0).size[queue.candidates]).sum())


def test_queue_capacity_is_the_gathered_sum_and_follows_fills_after_the_build() -> None:
    # Arrange: the short side's queue built (the ten shorts: 0.5 + 1.0 + ... + 5.0 = 27.5)
    ex = _exchange()
    ex.risk._queues.clear()
    first = ex.risk._queue_capacity(0, -1)
    held = ex.risk._queues[(0, -1)]
    assert first == _gathered(ex, -1) == 27.5

    # Act: a fill closes part of a queued short while the queue is still held
    shorts = np.flatnonzero(ex.columns(0).size[: ex.n_accounts] < 0)
    longs = np.flatnonzero(ex.columns(0).size[: ex.n_accounts] > 0)
    ex.trade(0, buyer=int(shorts[-1]), seller=int(longs[0]), size=2.0, price=95.0, ts_ns=2 * S)

    # Assert: the same queue, and its capacity the live one (27.5 - 2.0), not the build's
    assert ex.risk._queues[(0, -1)] is held
    assert ex.risk._queue_capacity(0, -1) == _gathered(ex, -1) == 25.5


@pytest.mark.parametrize("dense", [True, False])
def test_a_second_queue_copies_while_the_first_views_the_buffers(dense: bool) -> None:
    # Arrange: the dense queue (scores of every account) or the compacting one
    ex = _exchange()
    ex.risk.dense_queue = dense
    ex.risk.adl_index = False  # the dense pass of every step (the ADL cells own no buffers)
    ex.set_mark(0, 104.0, ts_ns=2 * S)
    ex.risk._queues.clear()
    ex.risk._buffers_user = None

    # Act: both sides' queues in one step (at 104 only the longs profit: the short queue is
    # empty, but its pass runs over the same rows)
    longs = ex.risk._queue(0, 1)
    shorts = ex.risk._queue(0, -1)

    # Assert: the first views the buffers, the second owns its arrays, the first is intact
    if dense:
        assert isinstance(longs, DenseQueue)
        assert isinstance(shorts, DenseQueue)
        assert not longs._dense.flags.owndata
        assert shorts._dense.flags.owndata
    else:
        assert not longs.candidates.flags.owndata
        assert shorts.candidates.flags.owndata
    size = ex.columns(0).size[: ex.n_accounts]
    np.testing.assert_array_equal(longs.candidates, np.flatnonzero(size > 0))
    assert len(shorts.candidates) == 0
