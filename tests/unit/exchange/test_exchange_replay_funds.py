"""Replaying a journal restores the insurance fund ledgers.

The venue's accounts, traders opened in a columnar batch (:meth:`Exchange.open_accounts`), stakes
into the fund from batch accounts, liquidation penalties flowing in and bankrupt positions
covered: :meth:`Exchange.replay` of the journal must give funds whose balance, shares, stakers
and history equal the live ones (the live engine is the oracle, rebuilt from its facts).
"""

from __future__ import annotations

import contextlib
from typing import Literal

import numpy as np
import pytest

from deleverage import AccountKind, Exchange, MarginMode, MarketSpec
from deleverage.errors import DeleverageError
from deleverage.venues import preset


def _liquidating_engine(
    insurance: Literal["shared", "per_market"], seed: int
) -> tuple[Exchange, np.ndarray]:
    rng = np.random.default_rng(seed)
    ex = Exchange(insurance=insurance)
    specs = [
        MarketSpec.simple("AUSDT", max_leverage=50, maintenance_rate=0.01),
        preset("binance", "BTCUSDT"),
    ]
    marks = [100.0, 60_000.0]
    for m, spec in enumerate(specs):
        ex.list_market(spec)
        ex.set_mark(m, marks[m])
    traders = ex.open_accounts(12, margin_mode=MarginMode.ISOLATED)
    crosses = ex.open_accounts(6)
    stakers = ex.open_accounts(3)
    everyone = np.concatenate([traders, crosses, stakers])
    ex.deposit_many(everyone, np.full(len(everyone), 5_000.0))
    for k, a in enumerate(stakers.tolist()):
        ex.stake(a, 1_000.0 * (k + 1), market=None if insurance == "shared" else k % 2)
    for m, spec in enumerate(specs):
        acc = np.concatenate([traders, crosses])
        notional = rng.uniform(2_000.0, 40_000.0, len(acc))
        lot = spec.lot_size
        sizes = np.maximum(1, np.round(notional / marks[m] / lot)) * lot
        sizes *= rng.choice([-1.0, 1.0], len(acc))
        ex.open_positions(m, acc, sizes, np.full(len(acc), marks[m]), leverage=20.0)
    ts = 0
    for _ in range(40):  # a walk with gaps: penalties in, covers out
        for m in range(len(specs)):
            ts += 1_000_000_000
            move = rng.normal(0.0, 0.02) if rng.random() < 0.8 else rng.choice([-0.1, 0.1])
            with contextlib.suppress(DeleverageError):
                ex.set_mark(m, ex.markets[m].mark * float(np.exp(move)), ts_ns=ts)
    return ex, stakers


def _ledger(
    ex: Exchange, account: int
) -> tuple[float, float, tuple[object, ...], dict[str, float]]:
    """Balance, shares, stakers and the flows summed by kind (the live engine may merge a
    step's penalties into one record where the replay keeps one per account)."""
    fund = ex.funds[account]
    flows: dict[str, float] = {}
    for record in fund.history:
        flows[str(record.kind)] = flows.get(str(record.kind), 0.0) + record.amount
    return (fund.balance, fund.total_shares, tuple(fund.stakers), flows)


@pytest.mark.parametrize("insurance", ["shared", "per_market"])
@pytest.mark.parametrize("seed", [0, 1])
def test_replay_restores_fund_ledgers(
    insurance: Literal["shared", "per_market"], seed: int
) -> None:
    ex, stakers = _liquidating_engine(insurance, seed)
    fund = ex.insurance_fund(None if insurance == "shared" else 0)
    # The walk moved the fund beyond the stakes: penalties came in (or covers went out).
    assert len(fund.history) > 3
    assert any(r.liquidations for r in ex.risk.reports)
    replayed = Exchange.replay(ex.journal)
    assert sorted(replayed.funds) == sorted(ex.funds)
    assert replayed.insurance_fund().balance == pytest.approx(
        ex.insurance_fund().balance, rel=1e-12, abs=1e-9
    )
    for account in ex.funds:
        got, want = _ledger(replayed, account), _ledger(ex, account)
        assert got[0] == pytest.approx(want[0], rel=1e-12, abs=1e-9), account
        assert got[1] == pytest.approx(want[1], rel=1e-12, abs=1e-9), account
        assert got[2] == want[2], account
        assert got[3].keys() == want[3].keys(), account
        for kind, amount in want[3].items():
            assert got[3][kind] == pytest.approx(amount, rel=1e-12, abs=1e-9), (account, kind)
        # The fund's balance is its account's cash (the engine keeps the two in step).
        assert replayed.funds[account].balance == pytest.approx(
            replayed.cash(account), rel=1e-9, abs=1e-9
        )
    for k, a in enumerate(stakers.tolist()):
        market = None if insurance == "shared" else k % 2
        want_value = ex.insurance_fund(market).staker_value(a)
        assert replayed.insurance_fund(market).staker_value(a) == pytest.approx(
            want_value, rel=1e-12
        )
    assert replayed.state_hash() == ex.state_hash()


def test_replay_of_a_fresh_engine_has_the_shared_fund() -> None:
    ex = Exchange()
    ex.open_accounts(3)
    replayed = Exchange.replay(ex.journal)
    assert replayed.insurance_fund().balance == 0.0
    assert sorted(replayed.funds) == [ex.insurance_account]


def test_insurance_accounts_opened_in_a_batch_have_ledgers_live_and_replayed() -> None:
    """An insurance account opened by the columnar path gets its ledger, as one opened alone
    does; the replayed engine must hold the same ledgers as the live one."""
    ex = Exchange()
    single = ex.open_account(kind=AccountKind.INSURANCE, label="extra")
    batch = ex.open_accounts(2, kind=AccountKind.INSURANCE)
    assert single in ex.funds
    replayed = Exchange.replay(ex.journal)
    assert sorted(replayed.funds) == sorted(ex.funds)
    assert all(int(a) in ex.funds for a in batch)
