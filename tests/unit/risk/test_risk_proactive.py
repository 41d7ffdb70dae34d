"""Proactive margin and predictive deleveraging in the engine: notice, grace, raise, lift,
partial reductions, all replayable. Oracle: hand-computed margins on MarketSpec.simple."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from deleverage import Exchange, MarketSpec
from deleverage.engine.events import Fill, FillReason, MarginNotice, RiskParamsChanged
from deleverage.errors import ValidationError
from deleverage.rules.dynamic import VolatilityScaledMargin
from deleverage.rules.proactive import (
    PredictiveDeleveraging,
    ProactiveMargin,
    positions_to_reduce,
)

S = 1_000_000_000


def _market(**policy: object) -> tuple[Exchange, int, int, int]:
    # A long of 1 at 100 with 10 of isolated-free cross cash at 20x / 2.5% maintenance: the
    # maintenance is 2.5 and the equity 10 -> margin ratio 0.25.
    ex = Exchange(check_invariants=True)
    m = ex.list_market(MarketSpec.simple("BTCUSDT", max_leverage=20.0, maintenance_rate=0.025))
    ex.set_mark(m, 100.0)
    a, b = ex.open_account(), ex.open_account()
    ex.deposit(a, 10.0)
    ex.deposit(b, 1_000.0)
    ex.trade(m, buyer=a, seller=b, size=1.0, price=100.0, taker=None)
    ex.set_proactive_policy(m, **policy)  # type: ignore[arg-type]
    return ex, m, a, b


def test_a_raise_is_announced_then_applied_after_the_grace_period() -> None:
    # Arrange: level 0.5, 60 s grace, multiplier 4 (maintenance 2.5% -> 10%, leverage 20 -> 5).
    # The long's ratio 2.5 / 10 = 0.25 becomes 1.0 under the raise: at the call level (0.8),
    # so it is notified; the short (1,000 of cash) is not.
    ex, m, a, _ = _market(margin=ProactiveMargin(level=0.5, grace_s=60.0, multiplier=4.0))

    # Act: a prediction of 0.6 at 1 s; marks at 30 s (within the grace) and 61 s (after it).
    ex.report_risk(m, 0.6, ts_ns=S)
    ex.set_mark(m, 100.0, ts_ns=30 * S)
    rate_during_grace = ex.markets[m].spec.tiers[0].maintenance_rate
    ex.set_mark(m, 100.0, ts_ns=61 * S)

    # Assert
    notices = [n for n in ex.journal.events(MarginNotice) if isinstance(n, MarginNotice)]
    assert ex.markets[m].spec.liquidation.margin_call_ratio == pytest.approx(0.8)
    assert [(n.account, n.action, n.multiplier, n.grace_s) for n in notices] == [(a, 1, 4.0, 60.0)]
    assert rate_during_grace == pytest.approx(0.025)
    assert ex.markets[m].spec.tiers[0].maintenance_rate == pytest.approx(0.10)
    assert ex.markets[m].spec.tiers[0].max_leverage == pytest.approx(5.0)
    assert len(ex.journal.events(RiskParamsChanged)) == 1


def test_a_pending_raise_is_cancelled_when_the_prediction_falls_below_release() -> None:
    ex, m, _, _ = _market(margin=ProactiveMargin(level=0.5, release_level=0.2, grace_s=60.0))

    ex.report_risk(m, 0.6, ts_ns=S)
    ex.report_risk(m, 0.1, ts_ns=10 * S)
    ex.set_mark(m, 100.0, ts_ns=120 * S)

    assert ex.markets[m].spec.tiers[0].maintenance_rate == pytest.approx(0.025)
    assert ex.journal.events(RiskParamsChanged) == []
    state = ex.risk.markets[m].proactive
    assert state is not None
    assert state.counts.cancellations == 1


def test_an_applied_raise_is_lifted_after_the_hold_below_release() -> None:
    policy = ProactiveMargin(level=0.5, release_level=0.2, grace_s=0.0, hold_s=30.0)
    ex, m, _, _ = _market(margin=policy)

    ex.report_risk(m, 0.9, ts_ns=S)  # grace 0: applied at once
    raised = ex.markets[m].spec.tiers[0].maintenance_rate
    ex.report_risk(m, 0.1, ts_ns=10 * S)  # below release: the hold starts
    ex.report_risk(m, 0.1, ts_ns=20 * S)  # 10 s of 30
    still = ex.markets[m].spec.tiers[0].maintenance_rate
    ex.report_risk(m, 0.1, ts_ns=41 * S)  # 31 s below: lifted

    assert raised == pytest.approx(0.025 * 1.5)
    assert still == pytest.approx(0.025 * 1.5)
    assert ex.markets[m].spec.tiers[0].maintenance_rate == pytest.approx(0.025)
    assert len(ex.journal.events(RiskParamsChanged)) == 2


def test_predictive_deleveraging_closes_a_fraction_of_a_likely_position_once_per_cooldown() -> None:
    # Arrange: fraction 0.25 of a long of 1 -> 0.25 closed on the book (none set: at the mark).
    rule = PredictiveDeleveraging(level=0.5, account_level=0.5, fraction=0.25, cooldown_s=60.0)
    ex, m, a, b = _market(deleveraging=rule)

    # Act
    ex.report_risk(m, 0.8, accounts=[a, b], probabilities=[0.9, 0.1], ts_ns=S)
    ex.report_risk(m, 0.8, accounts=[a, b], probabilities=[0.9, 0.1], ts_ns=30 * S)  # cooling

    # Assert
    fills = [
        f
        for f in ex.journal.events(Fill)
        if isinstance(f, Fill) and f.reason == FillReason.PREDICTIVE
    ]
    assert len(fills) == 1
    assert fills[0].seller == a
    assert fills[0].size == pytest.approx(0.25)
    assert ex.columns(m).size[a] == pytest.approx(0.75)
    assert ex.columns(m).size[b] == pytest.approx(-1.0)
    ex.assert_conserved()


def test_a_proactive_run_replays_to_the_same_state() -> None:
    ex, m, a, _b = _market(
        margin=ProactiveMargin(level=0.5, grace_s=5.0),
        deleveraging=PredictiveDeleveraging(level=0.5, account_level=0.5),
    )
    for k in range(1, 20):
        ex.set_mark(m, 100.0 - 0.1 * k, ts_ns=k * S)
        ex.report_risk(m, 0.7, accounts=[a], probabilities=[0.8], ts_ns=k * S)

    replayed = Exchange.replay(ex.journal)

    assert replayed.state_hash() == ex.state_hash()
    assert replayed.markets[m].spec == ex.markets[m].spec


def test_bad_predictions_are_refused_before_anything_changes() -> None:
    ex, m, a, _ = _market(deleveraging=PredictiveDeleveraging())
    before = len(ex.journal)

    with pytest.raises(ValidationError, match="cascade_probability"):
        ex.report_risk(m, 1.5)
    with pytest.raises(ValidationError, match="probabilities"):
        ex.report_risk(m, 0.9, accounts=[a], probabilities=[0.5, 0.5])
    with pytest.raises(ValidationError, match="probabilities"):
        ex.report_risk(m, 0.9, accounts=[a], probabilities=[-0.1])
    with pytest.raises(ValidationError, match="accounts"):
        ex.report_risk(m, 0.9, accounts=[999], probabilities=[0.9])
    assert len(ex.journal) == before


def test_a_market_without_a_policy_refuses_reports_and_dynamic_margin_excludes_it() -> None:
    ex = Exchange()
    m = ex.list_market(MarketSpec.simple("BTCUSDT", max_leverage=20.0, maintenance_rate=0.025))
    ex.set_mark(m, 100.0)

    with pytest.raises(ValidationError, match="market"):
        ex.report_risk(m, 0.5)
    ex.set_dynamic_margin(m, VolatilityScaledMargin())
    with pytest.raises(ValidationError, match="dynamic"):
        ex.set_proactive_policy(m, margin=ProactiveMargin())


def test_release_level_above_level_is_refused_naming_the_field() -> None:
    with pytest.raises(ValidationError, match="release_level"):
        ProactiveMargin(level=0.3, release_level=0.5)


def test_only_likely_solvent_positions_not_cooling_are_reduced() -> None:
    chosen = positions_to_reduce(
        np.array([0.9, 0.9, 0.9, 0.4, 0.9]),
        np.array([0.3, 1.0, -0.5, 0.3, 0.99]),
        account_level=0.5,
        cooling=np.array([False, False, False, False, False]),
    )

    assert chosen.tolist() == [True, False, False, False, True]


@settings(max_examples=25, deadline=None)
@given(
    steps=st.lists(
        st.tuples(
            st.floats(0.9, 1.1),  # mark move
            st.floats(0.0, 1.0),  # cascade probability
            st.floats(0.0, 1.0),  # the long's probability
        ),
        min_size=1,
        max_size=25,
    )
)
def test_any_sequence_of_predictions_conserves_money_and_replays(
    steps: list[tuple[float, float, float]],
) -> None:
    # Invariants: money adds up after every operation (check_invariants), the policies never
    # grow a position, and the journal replays to the same state.
    ex, m, a, b = _market(
        margin=ProactiveMargin(level=0.5, release_level=0.3, grace_s=2.0, hold_s=3.0),
        deleveraging=PredictiveDeleveraging(level=0.4, account_level=0.5, cooldown_s=2.0),
    )
    mark = 100.0
    for k, (move, cascade, p) in enumerate(steps, start=1):
        mark = round(mark * move, 2)
        ex.set_mark(m, mark, ts_ns=k * S)
        before = abs(float(ex.columns(m).size[a]))
        ex.report_risk(m, cascade, accounts=[a, b], probabilities=[p, 0.0], ts_ns=k * S)
        assert abs(float(ex.columns(m).size[a])) <= before + 1e-12

    ex.assert_conserved()
    assert Exchange.replay(ex.journal).state_hash() == ex.state_hash()
