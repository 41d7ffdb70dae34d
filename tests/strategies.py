"""Shared Hypothesis strategies: markets with valid tier tables, populations, operation sequences.

Strategies draw plain data (specs, frozen dataclasses); turning the data into engine calls is
left to the tests (:func:`build_population`, :func:`run_operation`), so a failing example
shrinks to a short, readable list of operations.

Account references in operations are trader indices ``0 .. n_traders - 1``; ``LIQUIDITY``
(-1) names the venue's outside-liquidity account, the usual other side of a trade.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import numpy as np
from hypothesis import strategies as st

from deleverage import Exchange, MarginMode, MarginTier, MarketSpec

LIQUIDITY = -1

Side = Literal["buyer", "seller"]

# ---------------------------------------------------------------------------- markets

_LEVERAGES = (1.0, 2.0, 3.0, 4.0, 5.0, 10.0, 20.0, 25.0, 50.0, 75.0, 100.0, 125.0)


@st.composite
def tier_tables(draw: st.DrawFn, *, max_tiers: int = 5) -> tuple[MarginTier, ...]:
    """A valid margin-tier table: floors rising from 0, leverage falling, ``mmr < 1 / lev``.

    Maintenance rates never fall from one tier to the next; each one is a random fraction of
    its tier's initial rate, so ``mmr[i] < imr[i]`` always holds.
    """
    n = draw(st.integers(1, max_tiers))
    leverages = sorted(draw(st.lists(st.sampled_from(_LEVERAGES), min_size=n, max_size=n)))[::-1]
    steps = draw(
        st.lists(st.integers(1, 200).map(lambda k: 1_000.0 * k), min_size=n - 1, max_size=n - 1)
    )
    floors = [0.0, *np.cumsum(steps).tolist()]
    tiers: list[MarginTier] = []
    mmr = 0.0
    for floor, lev in zip(floors, leverages, strict=True):
        share = draw(st.floats(0.05, 0.9))
        mmr = max(mmr, round(share / lev, 6))
        tiers.append(MarginTier(notional_floor=floor, max_leverage=lev, maintenance_rate=mmr))
    return tuple(tiers)


@st.composite
def market_specs(draw: st.DrawFn, symbol: str = "BTCUSDT") -> MarketSpec:
    """A linear market with a random valid tier table, grid and fee rates."""
    return MarketSpec.from_mapping(
        {
            "symbol": symbol,
            "tick_size": draw(st.sampled_from([0.01, 0.1, 0.5, 1.0])),
            "lot_size": draw(st.sampled_from([0.001, 0.01, 0.1])),
            "tiers": draw(tier_tables()),
            "maker_fee_rate": draw(st.sampled_from([-0.0001, 0.0, 0.0002])),
            "taker_fee_rate": draw(st.sampled_from([0.0, 0.0004, 0.0005, 0.001])),
        }
    )


marks = st.floats(10.0, 50_000.0).map(lambda x: round(x, 2))


def price_on_grid(reference: float, offset: float, tick: float) -> float:
    """``reference * (1 + offset)`` rounded to the tick grid, at least one tick."""
    return max(1, round(reference * (1.0 + offset) / tick)) * tick


def size_for_notional(notional: float, price: float, lot: float) -> float:
    """The size (on the lot grid, at least one lot) closest to ``notional`` at ``price``."""
    return max(1, round(notional / (price * lot))) * lot


# ---------------------------------------------------------------------------- populations


@dataclass(frozen=True)
class PositionPlan:
    """Open a position by trading ``notional`` quote against the outside liquidity."""

    market: int
    long: bool
    notional: float
    offset: float  # fill price = mark x (1 + offset), on the tick grid


@dataclass(frozen=True)
class AccountPlan:
    """A trader: a deposit, a default margin mode, per-market leverage and positions."""

    deposit: float
    mode: MarginMode
    leverage_share: float  # chosen leverage = 1 + share x (tier-0 max - 1); 0 = not set
    isolated_markets: tuple[int, ...]  # markets switched to isolated whatever the default
    positions: tuple[PositionPlan, ...]


@dataclass(frozen=True)
class Population:
    """Markets, their opening marks, traders, and the marks the test values them at."""

    markets: tuple[MarketSpec, ...]
    opening_marks: tuple[float, ...]
    final_marks: tuple[float, ...]
    accounts: tuple[AccountPlan, ...]


@st.composite
def populations(draw: st.DrawFn, *, max_markets: int = 3, max_accounts: int = 12) -> Population:
    """Random markets and traders holding cross and isolated positions, then a mark move."""
    n_markets = draw(st.integers(1, max_markets))
    specs = tuple(draw(market_specs(f"M{i}USDT")) for i in range(n_markets))
    opening = tuple(draw(marks) for _ in range(n_markets))
    moves = draw(st.lists(st.floats(-0.3, 0.3), min_size=n_markets, max_size=n_markets))
    final = tuple(round(m * math.exp(r), 2) for m, r in zip(opening, moves, strict=True))
    plans = st.builds(
        PositionPlan,
        market=st.integers(0, n_markets - 1),
        long=st.booleans(),
        notional=st.floats(10.0, 300_000.0),
        offset=st.floats(-0.01, 0.01),
    )
    accounts = draw(
        st.lists(
            st.builds(
                AccountPlan,
                deposit=st.floats(100.0, 100_000.0),
                mode=st.sampled_from(MarginMode),
                leverage_share=st.one_of(st.just(0.0), st.floats(0.0, 1.0)),
                isolated_markets=st.lists(st.integers(0, n_markets - 1), max_size=2).map(tuple),
                positions=st.lists(plans, max_size=4).map(tuple),
            ),
            min_size=1,
            max_size=max_accounts,
        ).map(tuple)
    )
    return Population(markets=specs, opening_marks=opening, final_marks=final, accounts=accounts)


def build_population(pop: Population) -> tuple[Exchange, list[int]]:
    """Build an engine holding the population; return it and the traders' account ids.

    Trades the engine refuses (not enough margin) are skipped: the population is whatever
    the engine accepted, which is what the oracle tests value.
    """
    from deleverage.errors import DeleverageError

    ex = Exchange()
    for spec, mark in zip(pop.markets, pop.opening_marks, strict=True):
        m = ex.list_market(spec)
        ex.set_mark(m, mark)
    ids: list[int] = []
    for plan in pop.accounts:
        a = ex.open_account(margin_mode=plan.mode)
        ids.append(a)
        ex.deposit(a, plan.deposit)
        for m in plan.isolated_markets:
            ex.set_margin_mode(a, m, MarginMode.ISOLATED)
        if plan.leverage_share > 0:
            for m, spec in enumerate(pop.markets):
                lev = 1.0 + plan.leverage_share * (spec.max_leverage - 1.0)
                ex.set_leverage(a, m, lev)
        for pos in plan.positions:
            spec = pop.markets[pos.market]
            price = price_on_grid(pop.opening_marks[pos.market], pos.offset, spec.tick_size)
            size = size_for_notional(pos.notional, price, spec.lot_size)
            buyer, seller = (a, ex.liquidity_account) if pos.long else (ex.liquidity_account, a)
            try:
                ex.trade(pos.market, buyer=buyer, seller=seller, size=size, price=price)
            except DeleverageError:
                continue
    for m, mark in enumerate(pop.final_marks):
        ex.set_mark(m, mark)
    return ex, ids


# ---------------------------------------------------------------------------- operations


@dataclass(frozen=True)
class DepositOp:
    account: int
    amount: float


@dataclass(frozen=True)
class WithdrawOp:
    account: int
    share: float  # of the withdrawable amount; > 1 asks for too much


@dataclass(frozen=True)
class TradeOp:
    market: int
    buyer: int
    seller: int
    notional: float  # quote, converted to lots at the fill price
    offset: float  # fill price = mark x (1 + offset), on the tick grid
    taker: Side | None


@dataclass(frozen=True)
class MarkOp:
    market: int
    log_move: float


@dataclass(frozen=True)
class AddMarginOp:
    account: int
    market: int
    amount: float


@dataclass(frozen=True)
class RemoveMarginOp:
    account: int
    market: int
    amount: float


@dataclass(frozen=True)
class SetModeOp:
    account: int
    market: int
    mode: MarginMode


@dataclass(frozen=True)
class SetLeverageOp:
    account: int
    market: int
    leverage: float


Operation = (
    DepositOp
    | WithdrawOp
    | TradeOp
    | MarkOp
    | AddMarginOp
    | RemoveMarginOp
    | SetModeOp
    | SetLeverageOp
)


def operations(n_traders: int, n_markets: int) -> st.SearchStrategy[Operation]:
    """One random operation on ``n_traders`` traders and ``n_markets`` markets.

    Sizes, amounts and leverages range past what margin allows, so some operations are
    refused: the tests check that a refusal leaves the state untouched.
    """
    trader = st.integers(0, n_traders - 1)
    party = st.one_of(trader, trader, st.just(LIQUIDITY))
    market = st.integers(0, n_markets - 1)
    amount = st.floats(1.0, 50_000.0)
    notional = st.floats(1.0, 5.5).map(lambda e: 10.0**e)  # log-uniform, 10 to 300k quote
    offset = st.floats(-0.02, 0.02)
    taker = st.sampled_from(["buyer", "seller", None])
    with_liquidity = st.builds(
        TradeOp, market=market, buyer=party, seller=party, notional=notional, offset=offset,
        taker=taker,
    )  # fmt: skip
    between_traders = st.builds(
        TradeOp, market=market, buyer=trader, seller=trader, notional=notional, offset=offset,
        taker=taker,
    )  # fmt: skip
    mark = st.builds(MarkOp, market=market, log_move=st.floats(-0.25, 0.25))
    return st.one_of(
        with_liquidity,
        with_liquidity,
        between_traders,
        between_traders,
        mark,
        mark,
        st.builds(DepositOp, account=trader, amount=amount),
        st.builds(WithdrawOp, account=trader, share=st.floats(0.01, 1.5)),
        st.builds(AddMarginOp, account=trader, market=market, amount=amount),
        st.builds(RemoveMarginOp, account=trader, market=market, amount=st.floats(0.01, 5_000.0)),
        st.builds(SetModeOp, account=trader, market=market, mode=st.sampled_from(MarginMode)),
        st.builds(SetLeverageOp, account=trader, market=market, leverage=st.floats(0.5, 130.0)),
    )


def operation_lists(
    n_traders: int, n_markets: int, *, max_size: int = 40
) -> st.SearchStrategy[list[Operation]]:
    """A sequence of ``max_size / 2`` to ``max_size`` operations (see :func:`operations`)."""
    ops = operations(n_traders, n_markets)
    return st.lists(ops, min_size=max(1, max_size // 2), max_size=max_size)


def account_id(ex: Exchange, traders: list[int], i: int) -> int:
    """The engine's id of trader ``i`` (or of the outside liquidity for ``LIQUIDITY``)."""
    return ex.liquidity_account if i == LIQUIDITY else traders[i]


def run_operation(ex: Exchange, op: Operation, traders: list[int]) -> None:
    """Apply one operation to the engine; refusals raise the engine's own errors."""

    def acct(i: int) -> int:
        return account_id(ex, traders, i)

    if isinstance(op, DepositOp):
        ex.deposit(acct(op.account), op.amount)
    elif isinstance(op, WithdrawOp):
        allowed = ex.account_margins(acct(op.account)).withdrawable
        ex.withdraw(acct(op.account), op.share * max(allowed, 1.0))
    elif isinstance(op, TradeOp):
        spec = ex.market(op.market).spec
        price = price_on_grid(ex.market(op.market).mark, op.offset, spec.tick_size)
        size = size_for_notional(op.notional, price, spec.lot_size)
        ex.trade(
            op.market,
            buyer=acct(op.buyer),
            seller=acct(op.seller),
            size=size,
            price=price,
            taker=op.taker,
        )
    elif isinstance(op, MarkOp):
        ex.set_mark(op.market, round(ex.market(op.market).mark * math.exp(op.log_move), 2))
    elif isinstance(op, AddMarginOp):
        ex.add_isolated_margin(acct(op.account), op.market, op.amount)
    elif isinstance(op, RemoveMarginOp):
        ex.remove_isolated_margin(acct(op.account), op.market, op.amount)
    elif isinstance(op, SetModeOp):
        ex.set_margin_mode(acct(op.account), op.market, op.mode)
    else:
        ex.set_leverage(acct(op.account), op.market, op.leverage)


# ---------------------------------------------------------------------------- engine scenarios


@dataclass(frozen=True)
class EngineScenario:
    """Markets, funded traders with default margin modes, and operations to run on them."""

    markets: tuple[MarketSpec, ...]
    opening_marks: tuple[float, ...]
    modes: tuple[MarginMode, ...]
    deposits: tuple[float, ...]
    operations: tuple[Operation, ...]


@st.composite
def engine_scenarios(
    draw: st.DrawFn,
    *,
    min_markets: int = 2,
    max_markets: int = 3,
    max_traders: int = 5,
    max_operations: int = 30,
) -> EngineScenario:
    """A venue with 2-3 random markets, a few funded traders and a random operation sequence."""
    n_markets = draw(st.integers(min_markets, max_markets))
    n_traders = draw(st.integers(2, max_traders))
    return EngineScenario(
        markets=tuple(draw(market_specs(f"M{i}USDT")) for i in range(n_markets)),
        opening_marks=tuple(draw(marks) for _ in range(n_markets)),
        modes=tuple(
            draw(st.lists(st.sampled_from(MarginMode), min_size=n_traders, max_size=n_traders))
        ),
        deposits=tuple(
            draw(st.lists(st.floats(1_000.0, 100_000.0), min_size=n_traders, max_size=n_traders))
        ),
        operations=tuple(draw(operation_lists(n_traders, n_markets, max_size=max_operations))),
    )


def build_scenario(
    scenario: EngineScenario, *, check_invariants: bool = False
) -> tuple[Exchange, list[int]]:
    """The engine before the scenario's operations: markets listed and marked, traders funded."""
    ex = Exchange(check_invariants=check_invariants)
    for spec, mark in zip(scenario.markets, scenario.opening_marks, strict=True):
        ex.set_mark(ex.list_market(spec), mark)
    traders = []
    for mode, cash in zip(scenario.modes, scenario.deposits, strict=True):
        a = ex.open_account(margin_mode=mode)
        ex.deposit(a, cash)
        traders.append(a)
    return ex, traders
