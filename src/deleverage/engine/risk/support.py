"""The risk step's records and helpers: per-market risk state, the step report, the ADL
queue, per-step caps and the ADL round metrics."""

from __future__ import annotations

import json
import math
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from deleverage.engine.kernels import top_scores_nb
from deleverage.liquidity import ConstantDepthBook, LiquidityModel
from deleverage.rules import adl as adl_math
from deleverage.rules import margin as mm
from deleverage.rules.dynamic import RiskParameterPolicy
from deleverage.spec import MarketSpec, TierArrays

if TYPE_CHECKING:
    from deleverage.engine.risk.proactive import ProactiveState


FloatArray = npt.NDArray[np.float64]

_POLICY_CODES = {"full": 0, "partial": 1, "fixed_fraction": 2, "tier_down": 3, "portion": 4}
_NS = 1_000_000_000
_MAX_ROUNDS = 8  # liquidation passes per step over accounts still below maintenance


Book = LiquidityModel


@dataclass
class MarketRisk:
    """Runtime risk state of one market (not part of the ledger)."""

    liquidity: Book | None = None
    #: Mid of the venue's own book when it differs from the mark (the simulator's venue price
    #: model: marks follow a venue rule, fills walk the book around its own mid); None: the
    #: book trades around the mark.
    book_mid: float | None = None
    breaker_halted: bool = False
    breaker_since_ns: int = 0
    marks: deque[tuple[int, float]] = field(default_factory=deque)
    cooldown_until_ns: dict[int, int] = field(default_factory=dict)
    #: Accounts margin-called and still in the warning zone (any order).
    called_isolated: npt.NDArray[np.int64] = field(
        default_factory=lambda: np.zeros(0, dtype=np.int64)
    )
    called_cross: npt.NDArray[np.int64] = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    dynamic: RiskParameterPolicy | None = None
    base_spec: MarketSpec | None = None
    multiplier: float = 1.0
    history: deque[tuple[int, float]] = field(default_factory=deque)
    #: Proactive margin and predictive deleveraging (engine/risk/proactive.py), if set.
    proactive: ProactiveState | None = None
    #: Liquidator response time (ns) and the notional they can take per step (quote).
    latency_ns: int = 0
    capital_per_step: float = math.inf
    mark_interval_ns: int = 0
    #: Notional the liquidators used at time ``capital_ts`` (every re-mark at one time shares
    #: the step's capital).
    capital_used: float = 0.0
    capital_ts: int = -1
    #: Positions found under maintenance and waiting for a liquidator: account -> first seen.
    pending: dict[int, int] = field(default_factory=dict)
    #: Whether the fund-drawdown ADL trigger (AdlPolicy.trigger_fund_drawdown) is on.
    fund_trigger_on: bool = False

    def book_price(self, mark: float) -> float:
        """Mid the book's fills walk from: :attr:`book_mid` when set (and a book), else the mark."""
        return mark if self.liquidity is None or self.book_mid is None else self.book_mid


@dataclass
class StepReport:
    """What one risk step did (quote amounts, base sizes).

    ``shortfall`` is the loss beyond the collateral of the positions closed in the step
    (docs/formulas.md, "Shortfall"), each on one line: ``insurance_paid`` (the fund),
    ``backstop_loss`` (the backstop vault: a taken-over deficit, or a realized loss beyond the
    margin it took over), ``adl_loss`` (taken from ADL counterparties: their fills away from
    the mark), ``socialized_loss`` and ``bad_debt``. A deficit a partial close left on a
    still-open position is counted when it arises and lands on its line at the full close.
    ``backstop_pnl`` is the backstop vault's PnL after the step (equity minus net capital in,
    marked to market; 0 when it never held anything).
    """

    market: int
    ts_ns: int
    liquidations: int = 0
    liquidated_notional: float = 0.0
    penalties: float = 0.0
    shortfall: float = 0.0
    insurance_paid: float = 0.0
    adl_rounds: int = 0
    adl_notional: float = 0.0
    socialized_loss: float = 0.0
    backstop_takeovers: int = 0
    bad_debt: float = 0.0
    margin_calls: int = 0
    halted: bool = False
    adl_loss: float = 0.0
    backstop_loss: float = 0.0
    backstop_pnl: float = 0.0


class _Queue:
    """Accounts in deleveraging order, consumed from the head as ADL rounds take them.

    With scores, the order is built lazily: :meth:`ensure` sorts the top of the queue (all
    accounts scoring at or above the k-th best, so ties are never split) and grows it on
    demand; the prefix equals that of a full :func:`deleverage.rules.adl.rank`.
    """

    def __init__(
        self,
        idx: npt.NDArray[np.int64],
        *,
        scores: FloatArray | None = None,
        order: npt.NDArray[np.intp] | None = None,
        capacity: tuple[int, float] | None = None,
    ) -> None:
        self._idx = idx
        self.candidates = idx  # every queued account, ranked or not yet
        self._scores = scores
        #: (positions version, total |size| of the candidates) when the queue was built.
        self.capacity = capacity
        self.complete = order is not None or len(idx) == 0
        self.accounts = idx[order] if order is not None else np.zeros(0, dtype=np.int64)
        self.head = 0

    def ensure(self, count: int) -> None:
        """Rank at least ``count`` accounts (or all of them)."""
        if self.complete or count <= len(self.accounts):
            return
        assert self._scores is not None
        n = len(self._idx)
        k = min(n, max(count, 2 * len(self.accounts), 1024))
        if k >= n:
            sel = np.arange(n)
        else:
            sel = top_scores_nb(np.ascontiguousarray(self._scores, dtype=np.float64), k)
            if len(sel) == 0:  # a NaN score: the reference selection (rank refuses NaN)
                threshold = np.partition(-self._scores, k - 1)[k - 1]
                sel = np.flatnonzero(-self._scores <= threshold)
        order = adl_math.rank(self._scores[sel], self._idx[sel])
        self.accounts = self._idx[sel][order]
        self.complete = len(sel) == n

    def covering(self, size: FloatArray, need: float) -> npt.NDArray[np.int64]:
        """Ranked accounts from the head whose sizes add up to at least ``need`` (or all)."""
        count = 64
        if not self.complete and len(self._idx):
            # First guess from the average candidate size (a strided sample): one partial
            # sort, rarely two.
            stride = max(1, len(self._idx) // 4096)
            mean = float(np.abs(size[self._idx[::stride]]).mean())
            count = max(count, int(1.5 * need / mean) + 64) if mean > 0 else count
        while True:
            self.ensure(self.head + count)
            tail = self.accounts[self.head :]
            if self.complete or np.abs(size[tail]).sum() >= need:
                return tail
            count *= 4

    def skip_flat(self, size: FloatArray) -> None:
        """Move the head past the ranked accounts now flat (``size == 0``) at its front."""
        ahead = self.accounts[self.head :]
        if len(ahead) == 0 or size[ahead[0]] != 0.0:
            return
        still = np.flatnonzero(size[ahead] != 0.0)
        self.head += int(still[0]) if len(still) else len(ahead)

    def walk(self, size: FloatArray, need: float) -> tuple[npt.NDArray[np.int64], FloatArray]:
        """Accounts and sizes to close, in order, to cover ``need``; empty if not enough."""
        candidates = self.covering(size, need)
        taken: list[int] = []
        amounts: list[float] = []
        left = need
        for a in candidates.tolist():
            if left <= 0.0:
                break
            available = abs(float(size[a]))
            if available > 0.0:
                q = min(available, left)
                taken.append(a)
                amounts.append(q)
                left -= q
        if left > need * 1e-12:
            return np.zeros(0, dtype=np.int64), np.zeros(0)
        # Positions wholly taken are done; the head moves past them.
        done = set(taken[:-1])
        while self.head < len(self.accounts) and (
            int(self.accounts[self.head]) in done or size[self.accounts[self.head]] == 0.0
        ):
            self.head += 1
        return np.array(taken, dtype=np.int64), np.array(amounts)


class _Caps:
    """Per-step liquidation caps (dYdX block limits, Synthetix window cap), in notional."""

    def __init__(self, spec: MarketSpec, capital: float = math.inf) -> None:
        self.per_account = spec.liquidation.max_notional_per_account_step
        self.per_market = spec.liquidation.max_notional_per_market_step
        if math.isfinite(capital):
            self.per_market = max(0.0, min(capital, self.per_market or math.inf))
        self.lot_size = spec.lot_size
        self.used_market = 0.0
        self.used_account: dict[int, float] = {}
        self.per_account_insurance = spec.liquidation.max_insurance_loss_per_account_step
        self.insurance_lost: dict[int, float] = {}
        #: (account, market) pairs liquidated this step: dYdX liquidates each once per block.
        self.liquidated: set[tuple[int, int]] = set()
        #: Deleveragings still allowed this step (dYdX MaxDeleveragingAttemptsPerBlock).
        cap = spec.liquidation.max_deleveragings_per_step
        self.deleveragings_left = math.inf if cap is None else float(cap)

    def take_deleveraging(self) -> bool:
        """Use one of the step's deleveraging attempts; False when none is left."""
        if self.deleveragings_left <= 0:
            return False
        self.deleveragings_left -= 1
        return True

    def insurance_room(self, a: int) -> float:
        """What the fund may still lose on account ``a`` this step (dYdX block limit)."""
        if self.per_account_insurance is None:
            return math.inf
        return self.per_account_insurance - self.insurance_lost.get(a, 0.0)

    def use_insurance(self, a: int, amount: float) -> None:
        self.insurance_lost[a] = self.insurance_lost.get(a, 0.0) + amount

    @property
    def market_exhausted(self) -> bool:
        return self.per_market is not None and self.used_market >= self.per_market

    def clip(self, a: int, qty: float, price: float) -> float:
        room = math.inf
        if self.per_account is not None:
            room = self.per_account - self.used_account.get(a, 0.0)
        if self.per_market is not None:
            room = min(room, self.per_market - self.used_market)
        qty = max(0.0, min(qty, room / price))
        if qty <= 1e-9 * max(room / price, 1.0) and qty < self.lot_size:
            qty = 0.0  # float remainder of a used-up cap, not a fill
        notional = qty * price
        self.used_market += notional
        self.used_account[a] = self.used_account.get(a, 0.0) + notional
        return qty


def _sizes_to_close(
    size: FloatArray,
    equity: FloatArray,
    maintenance: FloatArray,
    mark: float,
    spec: MarketSpec,
    tiers: TierArrays | None = None,
) -> FloatArray:
    """Vectorized :meth:`RiskEngine._size_to_close` for isolated positions (base units).

    ``tiers``: ``spec.tier_arrays`` when the caller holds them (the market's tiers in force
    without open-interest scaling); built from ``spec`` otherwise."""
    policy = spec.liquidation
    abs_size = np.abs(size)
    notional = abs_size * mark
    if policy.kind == "full":
        close = abs_size.copy()
    elif policy.kind == "fixed_fraction":
        close = np.where(
            notional > policy.fraction_min_notional, abs_size * policy.fraction, abs_size
        )
    elif policy.kind == "tier_down":
        tiers = spec.tier_arrays if tiers is None else tiers  # built on each read
        t = mm.tier_index(notional, tiers)
        # Down one tier ("next"), or into the first tier ("first": below the second's floor).
        to = t if policy.tier_down_target == "next" else np.minimum(t, 1)
        target = tiers.floor[to] * (1.0 - 1e-9) / mark
        down = np.ceil((abs_size - target) / spec.lot_size - 1e-9) * spec.lot_size
        close = np.where(t <= 0, abs_size, np.maximum(down, spec.lot_size))
    else:
        tiers = spec.tier_arrays if tiers is None else tiers
        t = mm.tier_index(notional, tiers)
        if policy.target == "initial":
            rate = tiers.imr[t] + tiers.initial_fee
            requirement = notional * rate
        else:
            rate = tiers.mmr[t] + policy.buffer
            requirement = maintenance + notional * policy.buffer
        shortage = requirement - equity
        release = mark * (rate - spec.liquidation_fee_rate)
        with np.errstate(divide="ignore", invalid="ignore"):
            raw = np.where(release > 0, shortage / release, abs_size)
        lots = np.ceil(raw / spec.lot_size - 1e-9) * spec.lot_size
        close = np.where(shortage <= 0, 0.0, np.minimum(abs_size, lots))
    return np.where(equity <= 0.0, abs_size, np.minimum(close, abs_size))


def _maintenance(notional: float, tiers: TierArrays) -> float:
    """Scalar :func:`deleverage.rules.margin.maintenance_margin` (per-account path's hot spot)."""
    floor = tiers.floor
    t = len(floor) - 1
    while t > 0 and notional < floor[t]:
        t -= 1
    tiered = float(notional * tiers.mmr[t] - tiers.cum[t])
    return max(tiered, tiers.min_margin) if notional > 0.0 else tiered


def _linear_quotes(
    book: LiquidityModel | None, order_side: float, sizes: FloatArray, mark: float
) -> FloatArray:
    """VWAP of a market order of each size on the book's current state, without filling.

    The constant-depth book's closed form (:func:`deleverage.liquidity.linear_fill`) applied to
    every size at once; no book fills at the mark.
    """
    if book is None:
        return np.full(len(sizes), mark)
    assert isinstance(book, ConstantDepthBook)
    depth = book.depth
    y0 = order_side * float(book.snapshot()["consumed_depth"])
    room = max(book.max_move * depth - y0, 0.0)
    filled = np.minimum(sizes, room)
    y1 = y0 + filled
    return mark * (1.0 + order_side * (y0 + y1) / (2.0 * depth))


def _round_metrics_many(
    size: FloatArray,
    entry: FloatArray,
    closed: FloatArray,
    bounds: npt.NDArray[np.intp],
    mark: float,
    price: FloatArray,
    shortfall: FloatArray,
    policy: str,
) -> tuple[FloatArray, FloatArray, Callable[[], list[str]]]:
    """:func:`_round_metrics` for many rounds at once; fills of round ``r`` are
    ``bounds[r]:bounds[r + 1]`` (queue order). Returns profit, notional and a function
    formatting the JSON texts (called when the journal is read)."""
    rounds = len(bounds) - 1
    starts = bounds[:-1]
    fill_round = np.repeat(np.arange(rounds), np.diff(bounds))
    side = np.sign(size)
    unit = np.maximum(side * (mark - entry), 0.0)
    profit_f = closed * unit
    notional_f = closed * price[fill_round]
    haircut_f = closed * side * (mark - price[fill_round])
    profit = np.add.reduceat(profit_f, starts)
    notional = np.add.reduceat(notional_f, starts)
    haircut = np.add.reduceat(haircut_f, starts)
    cum_profit = np.cumsum(profit_f)
    cum_notional = np.cumsum(notional_f)
    base_profit = np.where(starts > 0, cum_profit[np.maximum(starts - 1, 0)], 0.0)
    base_notional = np.where(starts > 0, cum_notional[np.maximum(starts - 1, 0)], 0.0)
    k = np.searchsorted(cum_profit, base_profit + shortfall, side="left")
    covered = (k < bounds[1:]) & (shortfall > 0)
    kk = np.minimum(k, len(profit_f) - 1)
    before = np.where(k > starts, cum_profit[np.maximum(kk - 1, 0)] - base_profit, 0.0)
    before_notional = np.where(k > starts, cum_notional[np.maximum(kk - 1, 0)] - base_notional, 0.0)
    with np.errstate(divide="ignore", invalid="ignore"):
        part = np.minimum((shortfall - before) / unit[kk], closed[kk])
        ratio = np.where(shortfall > 0, profit / shortfall, np.where(profit > 0, np.inf, 1.0))
    required = np.where(
        shortfall <= 0, 0.0, np.where(covered, before_notional + part * price, notional)
    )
    arrays = (np.diff(bounds), notional, profit, shortfall, ratio, required, haircut)
    name = json.dumps(policy)[1:-1]
    finite = bool(np.isfinite(ratio).all() and np.isfinite(required).all())

    def texts() -> list[str]:  # the columns as lists only when the journal is read
        columns = list(zip(*(a.tolist() for a in arrays), strict=True))
        return _metric_texts(columns, name, finite)

    return profit, notional, texts


def _metric_texts(columns: list[tuple[Any, ...]], name: str, finite: bool) -> list[str]:
    """The ADL round metrics as JSON texts (formatted only when the journal is read)."""
    rows = list(columns)
    if finite:
        # All finite (the usual case): floats print as JSON does, via repr, without a call each.
        texts = [
            f'{{"policy": "{name}", "counterparties": {c}, "notional_closed": {n!r}, '
            f'"profit_taken": {p!r}, "shortfall": {sh!r}, "excess_profit": {p - sh!r}, '
            f'"profit_ratio": {r!r}, "notional_required": {q!r}, "haircut_vs_mark": {h!r}}}'
            for c, n, p, sh, r, q, h in rows
        ]
    else:
        template = (
            '{{"policy": "{}", "counterparties": {}, "notional_closed": {}, "profit_taken": {}, '
            '"shortfall": {}, "excess_profit": {}, "profit_ratio": {}, "notional_required": {}, '
            '"haircut_vs_mark": {}}}'
        )
        texts = [
            template.format(name, c, _js(n), _js(p), _js(sh), _js(p - sh), _js(r), _js(q), _js(h))
            for c, n, p, sh, r, q, h in rows
        ]
    return texts


def _js(x: float) -> str:
    """A float as JSON writes it (``json.dumps``): repr, with Infinity and NaN tokens."""
    if x != x:
        return "NaN"
    if x in (math.inf, -math.inf):
        return "Infinity" if x > 0 else "-Infinity"
    return repr(x)


def _round_metrics(
    size: FloatArray,
    entry: FloatArray,
    closed: FloatArray,
    mark: float,
    price: float,
    shortfall: float,
) -> adl_math.AdlRoundMetrics:
    """Scalar-loop :func:`deleverage.rules.adl.adl_round_metrics` for the few positions of a round.

    Same definitions, in queue order; a differential test checks both agree.
    """
    sides = [1.0 if v > 0 else -1.0 if v < 0 else 0.0 for v in size.tolist()]
    q = closed.tolist()
    unit = [max(sd * (mark - e), 0.0) for sd, e in zip(sides, entry.tolist(), strict=True)]
    profits = [qi * u for qi, u in zip(q, unit, strict=True)]
    notionals = [qi * price for qi in q]
    profit = math.fsum(profits)
    notional = math.fsum(notionals)
    haircut = math.fsum(qi * sd * (mark - price) for qi, sd in zip(q, sides, strict=True))
    if shortfall == 0:
        ratio = math.inf if profit > 0 else 1.0
        required = 0.0
    else:
        ratio = profit / shortfall
        required = notional
        running = 0.0
        for k, p in enumerate(profits):
            before = running
            running += p  # np.cumsum adds left to right, as here
            if running >= shortfall:
                part = min((shortfall - before) / unit[k], q[k])
                required = math.fsum(notionals[:k]) + part * price
                break
    return adl_math.AdlRoundMetrics(
        notional_closed=notional,
        profit_taken=profit,
        shortfall=shortfall,
        excess_profit=profit - shortfall,
        profit_ratio=ratio,
        notional_required=required,
        haircut_vs_mark=haircut,
    )


def _below(scan: dict[str, Any], *, isolated: bool) -> list[tuple[float, int, bool]]:
    """(health, account, isolated) of a scan's accounts under maintenance."""
    return [
        (_health(e, mt), a, isolated)
        for a, e, mt in zip(
            scan["below"].tolist(), scan["below_equity"].tolist(),
            scan["below_maintenance"].tolist(), strict=True,
        )
    ]  # fmt: skip


def _health(equity: float, maintenance: float) -> float:
    return float(equity - maintenance) / max(float(maintenance), 1e-12)
