"""ADL ranking scores against the venues' documented formulas and examples."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from deleverage.errors import ValidationError
from deleverage.rules.adl import (
    allocate_ranked,
    queue_indicator_by_size,
    random_start_order,
    rank,
    score_binance,
    score_hyperliquid,
    score_pnl_leverage,
    score_risk_score,
)
from deleverage.rules.adl_ranking import queue_order
from deleverage.spec import AdlPolicy, AdlRanking, RiskScoreWeights

# --------------------------------------------------------------------------- BitMEX
#
# https://www.bitmex.com/app/autoDeleveraging ("Priority Ranking Calculation"):
#   Ranking = PNL Percentage * Effective Leverage  (if PNL percentage > 0)
#           = PNL Percentage / Effective Leverage  (if PNL percentage < 0)
#   Effective Leverage = abs(Mark Value) / (Mark Value - Bankrupt Value)
#   PNL percentage = (Mark Value - Avg Entry Value) / abs(Avg Entry Value)
#
# https://testnet.bitmex.com/app/autoDeleveragingExamples, six longs:
#   Account | Quantity | PNL Ranking        ranked:  Account | Quantity | PNL Ranking | Percentile
#   1       | 10       | 3                           2       | 10       | 6           | 20%
#   2       | 10       | 6                           5       | 20       | 5           | 40%
#   3       | 20       | 1                           4       | 30       | 4           | 60%
#   4       | 30       | 4                           1       | 10       | 3           | 80%
#   5       | 20       | 5                           6       | 10       | 2           | 80%
#   6       | 10       | 2                           3       | 20       | 1           | 100%
#   "a short position that has been liquidated with size 20 and bankruptcy price of USD 650.
#    Accounts 2 and 5 will be deleveraged [...] Account 2 will have their entire position of
#    10 contracts closed, while the remaining 10 contracts [...] will be assigned to account 5."
#
# The example gives only the ordinal "PNL Ranking", no prices. The entry and bankruptcy prices
# below are ours, chosen so that the documented formula (worked by hand in the comments, mark
# 650) reproduces that ranking.

BITMEX_MARK = 650.0
BITMEX_ACCOUNTS = np.array([1, 2, 3, 4, 5, 6])
BITMEX_QTY = np.array([10.0, 10.0, 20.0, 30.0, 20.0, 10.0])
BITMEX_ENTRY = np.array([625.0, 500.0, 700.0, 500.0, 520.0, 650.0])
BITMEX_BANKRUPT = np.array([585.0, 585.0, 520.0, 520.0, 585.0, 520.0])
# pnl% = (650 - entry) / entry; eff. leverage = 650 q / (q (650 - bankrupt))
#   1: 25/625 = 0.04   x 650/65  = 10 -> 0.4
#   2: 150/500 = 0.3   x 10          -> 3.0
#   3: -50/700         / (650/130 = 5) -> -1/70
#   4: 150/500 = 0.3   x 5           -> 1.5
#   5: 130/520 = 0.25  x 10          -> 2.5
#   6: 0                             -> 0
BITMEX_SCORES = np.array([0.4, 3.0, -1.0 / 70.0, 1.5, 2.5, 0.0])


def _bitmex_equity(qty: np.ndarray, bankrupt: np.ndarray) -> np.ndarray:
    mark_value = qty * BITMEX_MARK
    bankrupt_value = qty * bankrupt
    return np.asarray(mark_value - bankrupt_value, dtype=np.float64)


def test_bitmex_six_accounts_scores_follow_documented_formula() -> None:
    # Arrange
    equity = _bitmex_equity(BITMEX_QTY, BITMEX_BANKRUPT)

    # Act
    scores = score_pnl_leverage(BITMEX_QTY, BITMEX_ENTRY, BITMEX_MARK, equity=equity)

    # Assert
    np.testing.assert_allclose(scores, BITMEX_SCORES, rtol=1e-12, atol=1e-15)


def test_bitmex_six_accounts_rank_in_documented_order() -> None:
    equity = _bitmex_equity(BITMEX_QTY, BITMEX_BANKRUPT)
    scores = score_pnl_leverage(BITMEX_QTY, BITMEX_ENTRY, BITMEX_MARK, equity=equity)

    order = rank(scores, BITMEX_ACCOUNTS)

    assert BITMEX_ACCOUNTS[order].tolist() == [2, 5, 4, 1, 6, 3]


def test_bitmex_six_accounts_size_weighted_percentiles_match_table() -> None:
    equity = _bitmex_equity(BITMEX_QTY, BITMEX_BANKRUPT)
    order = rank(
        score_pnl_leverage(BITMEX_QTY, BITMEX_ENTRY, BITMEX_MARK, equity=equity), BITMEX_ACCOUNTS
    )

    lights = queue_indicator_by_size(BITMEX_QTY[order])

    # Percentile 20% -> 5 lights, 40% -> 4, 60% -> 3, 80% -> 2, 100% -> 1.
    assert lights.tolist() == [5, 4, 3, 2, 2, 1]


def test_bitmex_six_accounts_short_of_20_closes_account_2_then_half_of_account_5() -> None:
    equity = _bitmex_equity(BITMEX_QTY, BITMEX_BANKRUPT)
    order = rank(
        score_pnl_leverage(BITMEX_QTY, BITMEX_ENTRY, BITMEX_MARK, equity=equity), BITMEX_ACCOUNTS
    )

    closed = allocate_ranked(order, BITMEX_QTY, 20.0)

    assert dict(zip(BITMEX_ACCOUNTS.tolist(), closed.tolist(), strict=True)) == {
        1: 0.0,
        2: 10.0,
        3: 0.0,
        4: 0.0,
        5: 10.0,
        6: 0.0,
    }


def test_bitmex_short_position_profit_uses_signed_values() -> None:
    # Short 10 at 700, mark 650, bankruptcy 715 (values are size x price, negative for shorts):
    # mark value -6500, entry value -7000, bankrupt value -7150;
    # pnl% = (-6500 + 7000) / 7000 = 1/14; eff. leverage = 6500 / (-6500 + 7150) = 10.
    equity = -10.0 * 650.0 - (-10.0 * 715.0)

    score = score_pnl_leverage([-10.0], [700.0], 650.0, equity=[equity])

    assert score[0] == pytest.approx(10.0 / 14.0, rel=1e-12)


def test_bitmex_flat_position_scores_minus_inf_and_no_equity_scores_inf() -> None:
    scores = score_pnl_leverage([0.0, 1.0, 1.0], [0.0, 90.0, 110.0], 100.0, equity=[5.0, 0.0, -1.0])

    assert scores[0] == -np.inf
    assert scores[1] == np.inf  # profitable with no collateral left: infinite leverage
    assert scores[2] == 0.0  # losing with no collateral: -10% / inf


def test_bitmex_rejects_entry_price_of_open_position_at_zero() -> None:
    with pytest.raises(ValidationError, match="entry_price"):
        score_pnl_leverage([1.0], [0.0], 100.0, equity=[10.0])


def test_bitmex_rejects_mismatched_lengths() -> None:
    with pytest.raises(ValidationError, match="equity"):
        score_pnl_leverage([1.0, 2.0], [90.0, 90.0], 100.0, equity=[10.0])


# --------------------------------------------------------------------------- Binance
#
# https://www.binance.com/en/support/faq/360033525471 ("What Is Auto-Deleveraging (ADL)"):
# traders are ranked by "LeveragePnL [...] unrealized PnL/collateral multiplied by the margin
# ratio"; its formulation, as quoted in https://dev.binance.vision/t/17801:
#   Pnl Percent = max(0, Unrealized Profit) / max(1, Wallet Balance)
#   If (Wallet Balance + Unrealized Profit) <= 0, then Margin Ratio = 0
#   If (Wallet Balance + Unrealized Profit) > 0, then
#       Margin Ratio = Maintenance Margin / (Wallet Balance + Unrealized Profit)
#   Leverage Pnl = Pnl Percent x Margin Ratio
# and its worked numbers: Unrealized Profit = 40.2, Wallet Balance = 4.27, Margin Ratio 13.42%
#   => Pnl Percent = 9.41, Leverage Pnl = 9.41 x 13.42% = 1.26


def test_binance_forum_example_gives_leverage_pnl_1_26() -> None:
    # Arrange: 1 unit long from 100 to 140.2 -> unrealized profit 40.2; maintenance chosen so
    # that the margin ratio is 13.42% of equity 4.27 + 40.2 = 44.47.
    maintenance = 0.1342 * 44.47

    # Act
    score = score_binance([1.0], [100.0], 140.2, wallet_balance=[4.27], maintenance=[maintenance])

    # Assert
    assert score[0] == pytest.approx(40.2 / 4.27 * 0.1342, rel=1e-12)
    assert round(float(score[0]), 2) == 1.26


def test_binance_small_wallet_balance_is_floored_at_one() -> None:
    # Pnl Percent = 10 / max(1, 0.5) = 10; Margin Ratio = 2 / (0.5 + 10).
    score = score_binance([-1.0], [110.0], 100.0, wallet_balance=[0.5], maintenance=[2.0])

    assert score[0] == pytest.approx(10.0 * 2.0 / 10.5, rel=1e-12)


def test_binance_losing_and_underwater_positions_score_zero() -> None:
    scores = score_binance(
        [1.0, 1.0, 1.0],
        [110.0, 90.0, 100.0],
        100.0,
        wallet_balance=[50.0, -20.0, 50.0],
        maintenance=[1.0, 1.0, 1.0],
    )

    # losing: max(0, -10) = 0; equity -20 + 10 <= 0: margin ratio 0; break-even: 0.
    assert scores.tolist() == [0.0, 0.0, 0.0]


def test_binance_differs_from_bitmex_on_losers_and_profit_basis() -> None:
    # Two losers: BitMEX orders them (pnl% / leverage), Binance scores both 0 (tie by account).
    size, entry, mark = np.array([1.0, 1.0]), np.array([101.0, 120.0]), 100.0
    equity = np.array([10.0, 10.0])
    bitmex = score_pnl_leverage(size, entry, mark, equity=equity)
    binance = score_binance(
        size, entry, mark, wallet_balance=equity - size * (mark - entry), maintenance=[1.0, 1.0]
    )

    assert bitmex[0] > bitmex[1]
    assert binance.tolist() == [0.0, 0.0]


# --------------------------------------------------------------------------- Hyperliquid
#
# https://hyperliquid.gitbook.io/hyperliquid-docs/trading/auto-deleveraging: "The specific
# sorting index to determine the affected users in profit is
# (mark_price / entry_price) * (notional_position / account_value)". Side-adjusted here:
# entry / mark for shorts, so that the ratio exceeds 1 exactly when in profit.


def test_hyperliquid_index_for_long_and_short_worked_by_hand() -> None:
    # long 10 from 100, mark 110, account value 500: 110/100 x 1100/500 = 1.1 x 2.2 = 2.42
    # short 10 from 121, mark 110, account value 1000: 121/110 x 1100/1000 = 1.1 x 1.1 = 1.21
    scores = score_hyperliquid([10.0, -10.0], [100.0, 121.0], 110.0, account_value=[500.0, 1000.0])

    np.testing.assert_allclose(scores, [2.42, 1.21], rtol=1e-12)


def test_hyperliquid_orders_higher_leverage_first_at_equal_profit() -> None:
    scores = score_hyperliquid(
        [-1.0, -1.0, -1.0], [120.0] * 3, 100.0, account_value=[50.0, 10.0, 25.0]
    )

    assert rank(scores, [1, 2, 3]).tolist() == [1, 2, 0]


def test_hyperliquid_non_positive_account_value_is_infinite_leverage() -> None:
    scores = score_hyperliquid([1.0, 0.0], [90.0, 0.0], 100.0, account_value=[0.0, 10.0])

    assert scores.tolist() == [np.inf, -np.inf]


# --------------------------------------------------------------------------- risk score


def test_risk_score_is_weighted_mean_of_max_normalized_features() -> None:
    # leverage 100/50 = 2 and 300/100 = 3 -> 2/3, 1; margin ratio 5/50 = 0.1, 5/100 = 0.05 -> 1,
    # 0.5; size 1, 3 -> 1/3, 1. Weights 2, 1, 1 (sum 4).
    weights = RiskScoreWeights(leverage=2.0, margin_ratio=1.0, size=1.0)

    scores = score_risk_score(
        [1.0, -3.0], 100.0, equity=[50.0, 100.0], maintenance=[5.0, 5.0], weights=weights
    )

    expected = [(2 * 2 / 3 + 1.0 + 1 / 3) / 4, (2 * 1.0 + 0.5 + 1.0) / 4]
    np.testing.assert_allclose(scores, expected, rtol=1e-12)


def test_risk_score_rejects_weights_that_sum_to_zero() -> None:
    weights = RiskScoreWeights.model_construct(leverage=0.0, margin_ratio=0.0, size=0.0)

    with pytest.raises(ValidationError, match="weights"):
        score_risk_score([1.0], 100.0, equity=[10.0], maintenance=[1.0], weights=weights)


def test_risk_score_counts_non_positive_equity_as_maximal_leverage() -> None:
    weights = RiskScoreWeights(leverage=1.0, margin_ratio=0.0, size=0.0)

    scores = score_risk_score(
        [1.0, 1.0, 0.0],
        100.0,
        equity=[-5.0, 50.0, 1.0],
        maintenance=[1.0, 1.0, 0.0],
        weights=weights,
    )

    assert scores.tolist() == [1.0, 1.0, -np.inf]


# --------------------------------------------------------------------------- dYdX v4


def test_random_start_order_is_a_rotation_fixed_by_the_seed() -> None:
    first = random_start_order(7, np.random.default_rng(42))
    again = random_start_order(7, np.random.default_rng(42))

    start = int(first[0])
    assert first.tolist() == [(start + k) % 7 for k in range(7)]
    assert again.tolist() == first.tolist()


def test_random_start_order_reaches_every_offset_across_seeds() -> None:
    starts = {int(random_start_order(5, np.random.default_rng(seed))[0]) for seed in range(200)}

    assert starts == {0, 1, 2, 3, 4}


def test_random_start_order_of_nothing_draws_nothing() -> None:
    rng = np.random.default_rng(1)
    state = rng.bit_generator.state

    assert random_start_order(0, rng).tolist() == []
    assert rng.bit_generator.state == state


def test_random_start_order_requires_a_generator() -> None:
    with pytest.raises(ValidationError, match="rng"):
        random_start_order(3, np.random.RandomState(0))  # type: ignore[arg-type]


# --------------------------------------------------------------------------- dispatch


def test_queue_order_dispatches_to_the_policy_score() -> None:
    ids = np.array([30, 10, 20])
    size = np.array([1.0, 2.0, 1.0])
    entry = np.array([90.0, 95.0, 80.0])
    margin = np.array([10.0, 30.0, 5.0])
    equity = margin + size * (100.0 - entry)
    maint = np.array([1.0, 2.0, 1.0])
    expected: dict[AdlRanking, np.ndarray] = {
        "pnl_leverage": rank(score_pnl_leverage(size, entry, 100.0, equity=equity), ids),
        "binance": rank(
            score_binance(size, entry, 100.0, wallet_balance=margin, maintenance=maint), ids
        ),
        "hyperliquid": rank(score_hyperliquid(size, entry, 100.0, account_value=equity), ids),
    }

    for ranking, order in expected.items():
        got = queue_order(
            AdlPolicy(ranking=ranking),
            account_ids=ids,
            size=size,
            entry_price=entry,
            mark_price=100.0,
            margin=margin,
            maintenance=maint,
        )
        assert got.tolist() == order.tolist(), ranking


def test_queue_order_random_start_walks_candidates_sorted_by_account() -> None:
    ids = np.array([30, 10, 20])
    kwargs: dict[str, Any] = {
        "account_ids": ids,
        "size": [1.0, 1.0, 1.0],
        "entry_price": [90.0] * 3,
        "mark_price": 100.0,
        "margin": [1.0] * 3,
        "maintenance": [0.1] * 3,
    }

    order = queue_order(AdlPolicy(ranking="random_start"), rng=np.random.default_rng(0), **kwargs)

    by_id = [1, 2, 0]  # accounts 10, 20, 30
    start = by_id.index(int(order[0]))
    assert order.tolist() == [by_id[(start + k) % 3] for k in range(3)]
    with pytest.raises(ValidationError, match="rng"):
        queue_order(AdlPolicy(ranking="random_start"), **kwargs)
    with pytest.raises(ValidationError, match="ranking"):
        queue_order(AdlPolicy(ranking="pro_rata"), **kwargs)


def test_margin_mode_ranking_ranks_each_mode_on_its_own_then_merges_by_percentile() -> None:
    from deleverage.rules.adl_ranking import MarginModeRanking, RankingInputs

    # Two isolated shorts (profit% x leverage: 0.2 x 2 = 0.4 and 0.1 x 5 = 0.5) and two cross
    # accounts (margin ratio 30 / 100 = 0.3 and 10 / 100 = 0.1) at mark 90.
    sizes = np.array([-1.0, -1.0, -1.0, -1.0])
    entry = np.array([100.0, 100.0, 100.0, 100.0])
    equity = np.array([50.0, 20.0, 100.0, 100.0])  # isolated: pnl 10 each
    inputs = RankingInputs(
        sizes, entry, 90.0, equity, equity - 10.0, np.array([0.0, 0.0, 30.0, 10.0]),
        np.array([False, False, True, True]),
    )  # fmt: skip
    scores = MarginModeRanking().scores(inputs)
    assert scores is not None
    # Isolated: 0.5 (index 1) first, then 0.4 (index 0); cross: 0.3 (index 2) first.
    # Percentiles: first of two -> 1.0, second -> 0.5, in each mode.
    assert scores.tolist() == [0.5, 1.0, 1.0, 0.5]


def test_the_engine_ranks_an_okx_market_by_margin_mode() -> None:
    from deleverage import Exchange, MarginMode
    from deleverage.venues import preset

    ex = Exchange()
    spec = preset("okx")
    assert spec.adl.ranking == "okx"
    m = ex.list_market(spec)
    ex.set_mark(m, 100_000.0)
    iso = ex.open_account(margin_mode=MarginMode.ISOLATED)
    cross = ex.open_account(margin_mode=MarginMode.CROSS)
    for a in (iso, cross):
        ex.deposit(a, 20_000.0)
        ex.set_leverage(a, m, 10.0)
        ex.trade(m, buyer=ex.liquidity_account, seller=a, size=0.1, price=100_000.0)
    ex.set_mark(m, 95_000.0, ts_ns=10**9)

    queue = ex.adl_queue(m, side=-1)

    # One account per mode: each is first of its mode, so both have the top percentile and
    # the tie goes to the lower account id.
    assert queue["account"].tolist() == [iso, cross]
    assert queue["score"].tolist() == [1.0, 1.0]
