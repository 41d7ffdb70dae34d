"""Invariants of the risk step over random populations, price paths and policies (Hypothesis).

After every mark update:

(a) money is conserved (``Exchange.conservation().holds``) and no loss is silent: a flat trader
    with negative equity has declared at least that much as BadDebt;
(b) a liquidation or ADL fill never grows a position or flips its sign;
(c) an account liquidated in the step is not left below maintenance unless it was closed, is
    in its fixed-fraction cooldown, is bankrupt (BadDebt), or the step was halted or capped;
(d) ADL never closes more than the bankrupt position and never a position on its side;
(e) an account without a position never pays a socialized loss;

and (f) the same seed and inputs give the same journal, whose replay gives the same state hash.
The batch path of isolated liquidations is also checked against the per-account path.

(a) checks one direction of "bad debt is explicit" (no negative balance without a BadDebt
notice); the other (a notice never larger than the negative balance left) fails today and is
pinned by a strict xfail in test_risk_bad_debt.py, as are the known batch-path differences in
test_risk_batch_differential.py, which the batch comparison's cases stay clear of. Partial and
fixed-fraction kinds leave a book's slippage to the next step by design, so (c) is checked for
them only without a book.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from deleverage import AccountKind, Exchange, MarginMode, MarketSpec
from deleverage.engine.events import EventKind, FillReason, TransferReason
from deleverage.engine.risk import StepReport
from deleverage.liquidity import ConstantDepthBook
from strategies import tier_tables

S = 1_000_000_000
OPEN = 1_000.0
KINDS = ["full", "partial", "fixed_fraction", "tier_down"]
RANKINGS = [
    "pnl_leverage", "binance", "hyperliquid", "risk_score", "random_start", "pro_rata",
    "socialized_loss",
]  # fmt: skip


@dataclass(frozen=True)
class Trader:
    """One trader: a position opened at ``OPEN x (1 + entry_offset)`` against the book."""

    isolated: bool
    long: bool
    notional: float  # quote at the opening mark
    leverage_share: float  # chosen leverage = 1 + share x (tier maximum - 1)
    slack: float  # extra cash, as a multiple of the initial margin, kept outside the position
    entry_offset: float


@dataclass(frozen=True)
class Scenario:
    spec: MarketSpec
    depth_multiple: float | None  # book depth per 100% move, as a multiple of open interest
    fund: float
    traders: tuple[Trader, ...]
    path: tuple[tuple[int, float], ...]  # (seconds since the previous mark, log return)
    seed: int


@st.composite
def _policies(draw: st.DrawFn, *, batchable: bool, caps: bool) -> dict[str, Any]:
    policy: dict[str, Any] = {
        "kind": draw(st.sampled_from(KINDS)),
        "target": draw(st.sampled_from(["maintenance", "maintenance", "initial"])),
        "buffer": draw(st.sampled_from([0.0, 0.01, 0.02])),
        "fraction": draw(st.sampled_from([0.2, 0.5])),
        "fraction_min_notional": draw(st.sampled_from([0.0, 2_000.0, 20_000.0])),
        "cooldown_s": draw(st.sampled_from([0.0, 30.0, 120.0])),
        "margin_call_ratio": draw(st.sampled_from([0.5, 0.8, 1.0])),
    }
    if not batchable:
        policy["execution"] = draw(st.sampled_from(["market", "market", "liquidator"]))
        policy["backstop_equity_fraction"] = draw(st.sampled_from([0.0, 0.0, 2 / 3]))
    if caps:
        policy["max_notional_per_account_step"] = draw(st.sampled_from([None, 5_000.0]))
        policy["max_notional_per_market_step"] = draw(st.sampled_from([None, 20_000.0, 60_000.0]))
    return policy


@st.composite
def scenarios(
    draw: st.DrawFn,
    *,
    modes: tuple[bool, ...] = (True, False),
    batchable: bool = False,
    caps: bool = False,
    breaker: bool = True,
) -> Scenario:
    """A market with random tiers and policies, 5-40 traders and a path of 5-15 marks.

    ``modes`` are the margin modes drawn for traders (True: isolated). ``batchable`` keeps to
    what the batch path covers; it also keeps away from the known batch differences (pinned by
    strict xfails in test_risk_batch_differential.py): a fee or a book only with a funded
    insurance, a cooldown for fixed fractions.
    """
    fund = draw(st.sampled_from([0.0, 0.0, 1_000.0, 50_000.0] if not batchable else [0.0, 1e9]))
    policy = draw(_policies(batchable=batchable, caps=caps))
    depth = draw(st.sampled_from([None, None, 2.0, 10.0, 100.0]))
    fee = draw(st.sampled_from([0.0, 0.005, 0.01]))
    adl = {
        "ranking": draw(st.sampled_from(RANKINGS)),
        "price": draw(st.sampled_from(["bankruptcy", "bankruptcy", "mark"])),
        "socialize_over": draw(st.sampled_from(["profit", "open_interest"])),
    }
    if batchable:
        fee = fee if fund > 0 else 0.0
        depth = depth if fund > 0 else None
        if policy["kind"] == "fixed_fraction":
            policy["cooldown_s"] = max(policy["cooldown_s"], 30.0)
    fields: dict[str, Any] = {
        "symbol": "BTCUSDT", "tick_size": 0.01, "lot_size": 0.001,
        "tiers": draw(tier_tables(max_tiers=3)), "maker_fee_rate": 0.0002,
        "taker_fee_rate": draw(st.sampled_from([0.0, 0.0005])), "liquidation_fee_rate": fee,
        "liquidation": policy, "adl": adl,
    }  # fmt: skip
    if breaker and not batchable and draw(st.booleans()):
        fields["circuit_breaker"] = {
            "threshold": draw(st.sampled_from([0.05, 0.1])), "window_s": 60.0,
            "cooldown_s": draw(st.sampled_from([0.0, 90.0])), "halt_trading": draw(st.booleans()),
        }  # fmt: skip
    trader = st.builds(
        Trader,
        isolated=st.sampled_from(modes),
        long=st.booleans(),
        notional=st.floats(100.0, 60_000.0),
        leverage_share=st.floats(0.0, 1.0),
        slack=st.sampled_from([0.0, 0.05, 0.3, 1.0, 3.0]),
        entry_offset=st.floats(-0.01, 0.01),
    )
    step = st.tuples(st.integers(1, 120), st.floats(-0.15, 0.15))
    return Scenario(
        spec=MarketSpec.from_mapping(fields),
        depth_multiple=depth,
        fund=fund,
        traders=tuple(draw(st.lists(trader, min_size=5, max_size=40))),
        path=tuple(draw(st.lists(step, min_size=5, max_size=15))),
        seed=draw(st.integers(0, 3)),
    )


def build(sc: Scenario) -> tuple[Exchange, int]:
    """The venue of a scenario: market at ``OPEN``, funded insurance, traders' positions."""
    ex = Exchange(seed=sc.seed)
    m = ex.list_market(sc.spec)
    ex.set_mark(m, OPEN)
    if sc.fund > 0:
        ex.deposit(ex.insurance_account, sc.fund)
    tiers, lot = sc.spec.tier_arrays, sc.spec.lot_size
    n = len(sc.traders)
    ids = np.empty(n, dtype=np.int64)
    for isolated in (True, False):
        rows = [k for k, t in enumerate(sc.traders) if t.isolated is isolated]
        if rows:
            mode = MarginMode.ISOLATED if isolated else MarginMode.CROSS
            ids[rows] = ex.open_accounts(len(rows), margin_mode=mode)
    sizes, prices, leverage, cash = np.empty(n), np.empty(n), np.empty(n), np.empty(n)
    for k, t in enumerate(sc.traders):
        price = round(OPEN * (1.0 + t.entry_offset), 2)
        qty = max(1, round(t.notional / (price * lot))) * lot
        notional = qty * OPEN
        tier = int(np.searchsorted(tiers.floor, notional, side="right") - 1)
        lev = 1.0 + t.leverage_share * (1.0 / tiers.imr[tier] - 1.0)
        sizes[k] = qty if t.long else -qty
        prices[k], leverage[k] = price, lev
        loss = max(0.0, -sizes[k] * (OPEN - price))
        fee = qty * price * sc.spec.taker_fee_rate
        cash[k] = notional / lev * (1.0 + t.slack) + fee + loss + 1.0
    ex.deposit_many(ids, cash)
    ex.open_positions(m, ids, sizes, prices, leverage=leverage)
    if sc.depth_multiple is not None:
        depth = sc.depth_multiple * float(np.abs(sizes).sum())  # base units per 100% move
        ex.set_liquidity(m, ConstantDepthBook(depth_per_pct=depth / 100.0, half_life_s=30.0))
    return ex, m


def marks(sc: Scenario) -> list[tuple[int, float]]:
    out, ts, mark = [], 0, OPEN
    for dt, log_return in sc.path:
        ts += dt * S
        mark = round(mark * math.exp(log_return), 2)
        out.append((ts, mark))
    return out


# ---------------------------------------------------------------------------- the checks


def _check_step(
    ex: Exchange,
    m: int,
    sc: Scenario,
    ts: int,
    before: np.ndarray,
    rows: list[dict[str, Any]],
    declared: dict[int, float],
) -> None:
    n = ex.n_accounts
    cols = ex.columns(m)
    after = cols.size[:n].copy()
    traders = np.flatnonzero(ex.state_arrays()["kind"] == AccountKind.TRADER)
    report = ex.last_step
    policy = sc.spec.liquidation

    # (a) conservation, and no silent loss
    conservation = ex.conservation()
    assert conservation.holds, conservation
    for r in rows:
        if r["kind"] == EventKind.BAD_DEBT:
            declared[r["account"]] = declared.get(r["account"], 0.0) + r["amount"]
    margins = ex.margin_state()
    for a in traders.tolist():
        owed = -min(float(margins["total_equity"][a]), 0.0)
        if after[a] == 0.0 and owed > 0.0:
            assert declared.get(a, 0.0) >= owed - 1e-6 * max(1.0, owed), (a, owed)

    # (b) no position grew or flipped
    b, a_ = before[traders], after[traders]
    assert np.all(np.abs(a_) <= np.abs(b) * (1 + 1e-12)), "a position grew"
    assert np.all(b * a_ >= 0.0), "a position flipped"

    # (c) not left below maintenance after its own liquidation
    no_book = sc.depth_multiple is None
    capped = (
        policy.max_notional_per_account_step is not None
        or policy.max_notional_per_market_step is not None
    )
    if (policy.kind in ("full", "tier_down") or no_book) and not capped and not report.halted:
        acted = {
            r["account"] for r in rows if r["kind"] in (EventKind.LIQUIDATION, EventKind.ADL_ROUND)
        }
        deleveraged = {r["account"] for r in rows if r["kind"] == EventKind.ADL_ROUND}
        isolated = ex.isolated_state(m)
        cooldown = ex.risk.markets[m].cooldown_until_ns
        for a in sorted(acted):
            if ex.account_kind(a) != AccountKind.TRADER or after[a] == 0.0 or a in declared:
                continue
            if cooldown.get(a, -1) > ts:
                continue
            if policy.kind == "fixed_fraction" and cooldown.get(a, -1) == ts:
                continue  # cut by a fraction in this step, no cooldown: the next step goes on
            if policy.execution == "liquidator" and a in deleveraged:
                continue  # dYdX: partial deleveraging (refused counterparties) leaves the rest
            if cols.mode[a] == MarginMode.ISOLATED:
                equity, maint = isolated["equity"][a], isolated["maintenance"][a]
            else:
                equity, maint = margins["cross_equity"][a], margins["cross_maintenance"][a]
            assert equity >= maint - 1e-9 * max(1.0, maint), (a, equity, maint)

    # (d) ADL: at most the bankrupt size, never the bankrupt's own side
    bankrupt = {r["account"] for r in rows if r["kind"] == EventKind.ADL_ROUND}
    closed: dict[int, float] = {}
    for r in rows:
        if r["kind"] != EventKind.FILL or r["code"] != FillReason.ADL:
            continue
        buyer, seller = r["account"], r["counterparty"]
        if seller in bankrupt and before[seller] > 0:
            victim, other = seller, buyer
        else:
            assert buyer in bankrupt, r
            assert before[buyer] < 0, r
            victim, other = buyer, seller
        assert np.sign(before[other]) == -np.sign(before[victim]), (victim, other)
        closed[victim] = closed.get(victim, 0.0) + r["size"]
    for victim, q in closed.items():
        assert q <= abs(before[victim]) * (1 + 1e-9), (victim, q, before[victim])

    # (e) a socialized loss is charged only to accounts holding a position
    for r in rows:
        if r["kind"] == EventKind.TRANSFER and r["code"] == TransferReason.SOCIALIZED_LOSS:
            assert before[r["account"]] != 0.0, r


def _run_checked(sc: Scenario) -> Exchange:
    ex, m = build(sc)
    assert ex.conservation().holds
    declared: dict[int, float] = {}
    for ts, mark in marks(sc):
        before = ex.columns(m).size[: ex.n_accounts].copy()
        start = len(ex.journal)
        ex.set_mark(m, mark, ts_ns=ts)
        rows = ex.journal.to_arrow().slice(start).to_pylist()
        _check_step(ex, m, sc, ts, before, rows, declared)
    return ex


# ---------------------------------------------------------------------------- properties


@given(scenarios(modes=(True,)))
def test_isolated_populations_keep_the_risk_invariants(sc: Scenario) -> None:
    _run_checked(sc)


@given(scenarios(modes=(False,)))
def test_cross_populations_keep_the_risk_invariants(sc: Scenario) -> None:
    _run_checked(sc)


@given(scenarios())
def test_mixed_populations_keep_the_risk_invariants(sc: Scenario) -> None:
    _run_checked(sc)


@given(scenarios(caps=True))
def test_capped_liquidations_keep_the_risk_invariants(sc: Scenario) -> None:
    _run_checked(sc)


@given(scenarios())
def test_same_seed_and_inputs_give_the_same_journal_and_replay_the_same_state(
    sc: Scenario,
) -> None:
    first = _run_checked(sc)
    ex, m = build(sc)
    for ts, mark in marks(sc):
        ex.set_mark(m, mark, ts_ns=ts)

    assert first.journal.to_arrow().equals(ex.journal.to_arrow())
    assert first.state_hash() == ex.state_hash()
    assert Exchange.replay(ex.journal).state_hash() == ex.state_hash()


# ---------------------------------------------------------------------------- batch path


def _run_path(sc: Scenario, *, batch: bool) -> tuple[Exchange, list[StepReport]]:
    ex, m = build(sc)
    if not batch:
        ex.risk._batchable = lambda m: False  # type: ignore[method-assign]
    reports = []
    for ts, mark in marks(sc):
        ex.set_mark(m, mark, ts_ns=ts)
        reports.append(ex.last_step)
    return ex, reports


@given(scenarios(batchable=True))
def test_batch_path_gives_the_state_and_reports_of_the_per_account_path(sc: Scenario) -> None:
    ex_b, rep_b = _run_path(sc, batch=True)
    ex_r, rep_r = _run_path(sc, batch=False)

    arrays_b, arrays_r = ex_b.state_arrays(), ex_r.state_arrays()
    for name in arrays_b:
        assert np.allclose(arrays_b[name], arrays_r[name], rtol=1e-12, atol=1e-9), name
    for b, r in zip(rep_b, rep_r, strict=True):
        for f in dataclasses.fields(StepReport):
            x, y = getattr(b, f.name), getattr(r, f.name)
            if isinstance(x, float):
                assert x == pytest.approx(y, rel=1e-9, abs=1e-9), f.name
            else:
                assert x == y, f.name
