"""Every venue preset runs the same crash on the same small population and conserves money.

The venues differ (tiered brackets, partial or full liquidation, liquidator or book execution,
backstop, ADL ranking, socialized loss, per-step caps); here the check is only that each one
runs the shock without error, never grows a position through a liquidation, and keeps
``cash + isolated margin + unrealized PnL == net deposits`` after every mark.
"""

from __future__ import annotations

import numpy as np
import pytest

from deleverage import Exchange, MarginMode
from deleverage.liquidity import ConstantDepthBook
from deleverage.venues import list_presets, preset

S = 1_000_000_000
OPEN = 100_000.0
# Mark path of the crash: a slide, a gap down, a bounce, a second leg, and a squeeze up.
CRASH = [-0.02, -0.04, -0.09, 0.03, -0.08, -0.05, 0.12, 0.06]
# (side, notional at the opening mark, share of the tier's maximum leverage, isolated)
BOOK = [
    (1, 20_000.0, 1.0, True), (1, 50_000.0, 0.9, False), (1, 5_000.0, 0.5, True),
    (1, 300_000.0, 0.8, False), (1, 120_000.0, 1.0, True), (1, 2_000.0, 0.2, False),
    (-1, 40_000.0, 1.0, True), (-1, 80_000.0, 0.7, False), (-1, 10_000.0, 0.3, True),
    (-1, 250_000.0, 0.9, False), (-1, 6_000.0, 1.0, True), (-1, 160_000.0, 0.5, False),
]  # fmt: skip


def _population(venue: str, *, book: bool) -> tuple[Exchange, int]:
    spec = preset(venue)
    ex = Exchange()
    m = ex.list_market(spec)
    ex.set_mark(m, OPEN)
    ex.deposit(ex.insurance_account, 5_000.0)
    tiers = spec.tier_arrays
    for isolated in (True, False):
        rows = [r for r in BOOK if r[3] is isolated]
        mode = MarginMode.ISOLATED if isolated else MarginMode.CROSS
        ids = ex.open_accounts(len(rows), margin_mode=mode)
        sizes = np.array(
            [s * max(1, round(n / OPEN / spec.lot_size)) * spec.lot_size for s, n, _, _ in rows]
        )
        notional = np.abs(sizes) * OPEN
        tier = np.searchsorted(tiers.floor, notional, side="right") - 1
        leverage = np.array([1.0 + share * (1.0 / tiers.imr[t] - 1.0)
                             for (_, _, share, _), t in zip(rows, tier, strict=True)])  # fmt: skip
        taker = notional * spec.taker_fee_rate
        ex.deposit_many(ids, notional / leverage + taker + 10.0)
        ex.open_positions(m, ids, sizes, np.full(len(rows), OPEN), leverage=leverage)
    if book:
        total = float(np.abs(ex.columns(m).size[: ex.n_accounts]).sum()) / 2.0
        ex.set_liquidity(m, ConstantDepthBook(depth_per_pct=total / 20.0, half_life_s=60.0))
    return ex, m


@pytest.mark.parametrize("book", [False, True], ids=["at_mark", "constant_depth_book"])
@pytest.mark.parametrize("venue", list_presets())
def test_preset_survives_the_crash_and_conserves_money(venue: str, book: bool) -> None:
    # Arrange
    ex, m = _population(venue, book=book)
    assert ex.conservation().holds

    # Act / Assert, mark by mark
    mark = OPEN
    for k, move in enumerate(CRASH, start=1):
        before = ex.columns(m).size[: ex.n_accounts].copy()
        mark = round(mark * (1.0 + move), 0)
        ex.set_mark(m, mark, ts_ns=k * 40 * S)
        # (the venue's bad-debt account may open during the step: compare the accounts before)
        after = ex.columns(m).size[: len(before)]
        traders = ex.state_arrays()["kind"][: len(before)] == 0
        conservation = ex.conservation()
        assert conservation.holds, (venue, k, conservation)
        assert np.all(np.abs(after[traders]) <= np.abs(before[traders]) * (1 + 1e-12))
        assert np.all(after[traders] * before[traders] >= 0.0)

    # The crash did liquidate someone on every venue.
    assert sum(r.liquidations + r.adl_rounds for r in ex.risk.reports) > 0
    assert Exchange.replay(ex.journal).state_hash() == ex.state_hash()
