"""The compiled batch path of the risk step against the per-account path (the oracle).

Isolated liquidations and their ADL normally take ``RiskEngine._batch_isolated``; switching it
off sends every account through ``_liquidate``/``_close``/``_adl``, the plain per-account code.
The same population through the same crash must end in the same state (to float rounding),
with the same counts, for every liquidation kind and for ranked, pro-rata and socialized ADL.
"""

from __future__ import annotations

import numpy as np
import pytest

from deleverage import Exchange, MarginMode, MarketSpec
from deleverage.engine.events import EventKind, FillReason
from deleverage.liquidity import ConstantDepthBook

MARKS = (99.0, 97.5, 96.0, 94.0, 91.0, 88.0)


def _run(*, batch: bool, ranking: str, kind: str, book_below: float = 0.0) -> Exchange:
    spec = MarketSpec.from_mapping(
        {
            "symbol": "BTCUSDT",
            "lot_size": 0.001,
            "tiers": [
                {"notional_floor": 0, "max_leverage": 50, "maintenance_rate": 0.01},
                {"notional_floor": 2000, "max_leverage": 20, "maintenance_rate": 0.02},
            ],
            "liquidation_fee_rate": 0.01,
            "adl": {"ranking": ranking},
            "liquidation": {"kind": kind, "buffer": 0.02},
        }
    )
    ex = Exchange(check_invariants=True)
    if not batch:
        ex.risk._batchable = lambda m: False  # type: ignore[method-assign]
    ex.list_market(spec)
    ex.set_mark(0, 100.0)
    ex.set_liquidity(0, ConstantDepthBook(depth_per_pct=5, half_life_s=60))
    ex.deposit(ex.insurance_account, 20.0)
    rng = np.random.default_rng(1)
    n = 60
    ids = ex.open_accounts(n, margin_mode=MarginMode.ISOLATED)
    size = np.round(rng.uniform(1, 30, n), 3) * np.where(np.arange(n) % 2 == 0, 1, -1)
    tiers = ex.markets[0].tiers
    tier = np.searchsorted(tiers.floor, np.abs(size) * 100, side="right") - 1
    leverage = np.minimum(rng.uniform(2, 40, n), 1 / tiers.imr[tier])
    ex.deposit_many(ids, np.abs(size) * 100 / leverage + 0.1 * np.abs(size))
    ex.open_positions(0, ids, size, np.full(n, 100.0), leverage=leverage)
    for k, price in enumerate(MARKS):
        if book_below:
            ex.set_book_mid(0, price * (1.0 - book_below))  # the venue's book under its mark
        ex.set_mark(0, price, ts_ns=(k + 1) * 10**9)
    return ex


@pytest.mark.parametrize("kind", ["full", "partial", "fixed_fraction", "tier_down"])
@pytest.mark.parametrize("ranking", ["pnl_leverage", "hyperliquid", "pro_rata", "socialized_loss"])
def test_batch_path_ends_in_the_per_account_paths_state(ranking: str, kind: str) -> None:
    # Arrange / Act
    batch = _run(batch=True, ranking=ranking, kind=kind)
    oracle = _run(batch=False, ranking=ranking, kind=kind)

    # Assert: same counts, same money, same positions
    def totals(ex: Exchange) -> tuple[int, int, float, float]:
        reports = ex.risk.reports
        return (
            sum(r.liquidations for r in reports),
            sum(r.adl_rounds for r in reports),
            round(sum(r.bad_debt for r in reports), 6),
            round(sum(r.insurance_paid for r in reports), 6),
        )

    assert totals(batch) == totals(oracle)
    got, want = batch.state_arrays(), oracle.state_arrays()
    for name in want:
        np.testing.assert_allclose(got[name], want[name], rtol=1e-12, atol=1e-9, err_msg=name)
    assert batch.conservation().holds


@pytest.mark.parametrize("kind", ["full", "partial"])
def test_batch_path_walks_the_book_from_its_own_mid_like_the_per_account_path(kind: str) -> None:
    # Arrange / Act: the book's mid 2% under the mark (an oracle-marked venue whose book fell)
    batch = _run(batch=True, ranking="pnl_leverage", kind=kind, book_below=0.02)
    oracle = _run(batch=False, ranking="pnl_leverage", kind=kind, book_below=0.02)
    at_mark = _run(batch=True, ranking="pnl_leverage", kind=kind)

    # Assert: both paths agree
    got, want = batch.state_arrays(), oracle.state_arrays()
    for name in want:
        np.testing.assert_allclose(got[name], want[name], rtol=1e-12, atol=1e-9, err_msg=name)
    assert batch.conservation().holds
    # every liquidation sells (the marks only fall) from the book's mid, 2% under the mark
    fills = batch.journal.to_frame()
    fills = fills[(fills["kind"] == int(EventKind.FILL))
                  & (fills["code"] == int(FillReason.LIQUIDATION))]  # fmt: skip
    mark_at = dict(zip([(k + 1) * 10**9 for k in range(len(MARKS))], MARKS, strict=True))
    marks = fills["ts_ns"].map(mark_at).to_numpy()
    assert len(fills) > 0
    assert np.all(fills["price"].to_numpy() <= 0.98 * marks * (1 + 1e-12))
    plain = at_mark.journal.to_frame()
    plain = plain[(plain["kind"] == int(EventKind.FILL))
                  & (plain["code"] == int(FillReason.LIQUIDATION))]  # fmt: skip
    plain_marks = plain["ts_ns"].map(mark_at).to_numpy()
    assert np.any(plain["price"].to_numpy() > 0.98 * plain_marks)  # at the mark: not all below


def test_batch_path_replays_to_the_same_hash() -> None:
    ex = _run(batch=True, ranking="pnl_leverage", kind="partial")
    assert Exchange.replay(ex.journal).state_hash() == ex.state_hash()
