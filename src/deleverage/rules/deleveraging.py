"""One interface for every deleveraging policy: the issue's "AdlPolicy interface".

(It is called :class:`DeleveragingPolicy` because :class:`deleverage.spec.AdlPolicy` is already
the name of a market's ADL *configuration*.)

A policy answers one question. Given the bankrupt side of an ADL round (:class:`BankruptSide`:
its signed size, bankruptcy price, deficit in quote and the mark) and the counterparties that
could pay (:class:`Counterparties`: arrays of account id, signed size, entry, mark, equity,
unrealized PnL, leverage, margin ratio and lot size), who pays what? The answer
(:class:`Deleveraging`) gives per counterparty the size closed (base units) and the cash
haircut (quote), the execution price of the closed sizes, and what the insurance fund paid.

Two families:

- **closing policies** close counterparties' positions against the bankrupt one at the ADL
  price ``p`` (the bankruptcy price). Each unit closed moves ``|p - mark|`` of value from the
  counterparty to the bankrupt account, so covering a deficit ``D`` needs ``q = D / |p - mark|``
  base units, at most the bankrupt size (budget-driven ADL: a deficit smaller than the
  position's, e.g. after the fund paid part, closes the bankrupt position only partially). The
  venue queues (:class:`QueuePolicy`: BitMEX, Bybit, Binance, OKX, Hyperliquid, dYdX's random
  start, a risk score) walk a ranking; :class:`SizeProRata` closes every winner by the same
  fraction of its size; :class:`WholeLots` closes whole lots by largest remainder.
- **haircut policies** leave positions open and take cash from winners' unrealized profit,
  never more than their cap (``cap_fraction x profit``: never principal).
  :class:`CappedProRata` shares the deficit in proportion to profit, equity or notional with
  water-filling at the caps (so the deficit is met exactly when the caps allow);
  :func:`socialized_loss` is the same over profit or open interest with the cap at profit;
  :class:`MinMaxHaircut` minimizes the largest haircut percentage with a linear program
  (scipy's HiGHS).

:class:`FundFirst` is a hybrid: the insurance fund pays up to a drawdown limit, then a policy
covers the rest. :func:`policy_named` builds any of them by name (the names a market's
:attr:`deleverage.spec.AdlPolicy.deleveraging` and ``deleverage adl-study --policy`` accept).

Pure functions over arrays; formulas and sources in docs/formulas.md ("ADL laboratory").
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Literal, NamedTuple, Protocol, runtime_checkable

import numpy as np
import numpy.typing as npt

from deleverage.errors import UnknownEntityError, ValidationError
from deleverage.rules import adl as adl_math
from deleverage.rules.adl_ranking import (
    AdlRanking,
    LeveragePnlRanking,
    MarginModeRanking,
    PnlLeverageRanking,
    PriceRatioLeverageRanking,
    RandomStartRanking,
    RankingInputs,
    RiskScoreRanking,
)

__all__ = [
    "POLICY_NAMES",
    "BankruptSide",
    "CappedProRata",
    "Counterparties",
    "Deleveraging",
    "DeleveragingPolicy",
    "FundFirst",
    "MinMaxHaircut",
    "OkxQueue",
    "QueuePolicy",
    "SizeProRata",
    "WholeLots",
    "bankrupt_side",
    "counterparties",
    "policy_named",
    "socialized_loss",
    "transfers",
    "water_fill",
]

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]
ArrayLike = npt.ArrayLike
Basis = Literal["profit", "equity", "notional"]


class BankruptSide(NamedTuple):
    """The bankrupt position of one ADL round.

    ``size`` signed base (long > 0), ``bankruptcy_price`` and ``mark`` quote per base,
    ``deficit`` quote >= 0: the loss beyond the position's collateral at the mark, which the
    round must cover (``|size| x |bankruptcy_price - mark|`` when the whole position is
    bankrupt at the mark).
    """

    size: float
    bankruptcy_price: float
    deficit: float
    mark: float


class Counterparties(NamedTuple):
    """The accounts that may pay, one entry each (arrays of equal length).

    ``size`` signed base; ``entry``, ``mark`` quote per base; ``equity`` quote (collateral plus
    unrealized PnL backing the position); ``upnl = size x (mark - entry)`` quote;
    ``leverage = |size| x mark / equity`` (``inf`` at non-positive equity); ``margin_ratio`` =
    maintenance / equity (1 = at liquidation); ``lot_size`` base; ``cross`` True for
    cross-margined accounts (OKX ranks those by margin ratio).
    """

    account: IntArray
    size: FloatArray
    entry: FloatArray
    mark: FloatArray
    equity: FloatArray
    upnl: FloatArray
    leverage: FloatArray
    margin_ratio: FloatArray
    lot_size: FloatArray
    cross: BoolArray


class Deleveraging(NamedTuple):
    """A policy's answer for one round.

    ``closed`` base >= 0 and ``haircut`` quote >= 0 per counterparty (aligned with the
    :class:`Counterparties`); ``price`` the execution price of the closed sizes; ``fund_paid``
    quote the insurance fund put in first (hybrids); ``bankrupt_closed`` base: how much of the
    bankrupt position was closed (``closed.sum()``).
    """

    closed: FloatArray
    haircut: FloatArray
    price: float
    fund_paid: float
    bankrupt_closed: float


@runtime_checkable
class DeleveragingPolicy(Protocol):
    """The issue's "AdlPolicy interface": who pays a round's deficit, and how much.

    ``allocate`` must cover ``min(deficit - fund_paid, capacity)`` exactly (to float
    rounding), take nothing from a counterparty :meth:`eligible` rejects, never close more than
    a position holds nor haircut more than the cap, and give the same answer for the same
    inputs (a random order comes from ``rng`` when given, else from the policy's seed).
    """

    @property
    def name(self) -> str:
        """The policy's name (:func:`policy_named`)."""
        ...

    def eligible(self, bankrupt: BankruptSide, cps: Counterparties) -> BoolArray:
        """Which counterparties this policy may touch."""
        ...

    def allocate(
        self, bankrupt: BankruptSide, cps: Counterparties, rng: np.random.Generator | None = None,
        budget: float | None = None,
    ) -> Deleveraging:  # fmt: skip
        """Sizes closed and haircuts per counterparty, the price and the fund's part.

        ``budget`` (quote) overrides the deficit to cover (the hybrid passes what the fund
        left).
        """
        ...


# ---------------------------------------------------------------------------- inputs
def bankrupt_side(
    size: float, bankruptcy_price: float, deficit: float, mark: float
) -> BankruptSide:
    """A validated :class:`BankruptSide` (ValidationError naming the field and the rule).

    Examples
    --------
    >>> bankrupt_side(2.0, 95.0, 10.0, 100.0).deficit
    10.0
    """
    s = float(size)
    if not math.isfinite(s) or s == 0.0:
        raise ValidationError("size", size, "must be a finite non-zero size (base)")
    for name, value in (("bankruptcy_price", bankruptcy_price), ("mark", mark)):
        if not math.isfinite(float(value)) or float(value) <= 0:
            raise ValidationError(name, value, "must be a finite price > 0")
    d = float(deficit)
    if not math.isfinite(d) or d < 0:
        raise ValidationError("deficit", deficit, "must be a finite amount >= 0 (quote)")
    return BankruptSide(s, float(bankruptcy_price), d, float(mark))


def counterparties(
    account: ArrayLike,
    size: ArrayLike,
    entry: ArrayLike,
    mark: ArrayLike,
    equity: ArrayLike,
    *,
    margin_ratio: ArrayLike | None = None,
    lot_size: ArrayLike | float = 1e-9,
    cross: ArrayLike | None = None,
) -> Counterparties:
    """Validated :class:`Counterparties`; unrealized PnL and leverage are derived.

    ``mark`` and ``lot_size`` may be scalars (one market). ``margin_ratio`` defaults to 0.

    Examples
    --------
    >>> c = counterparties([7], [-2.0], [120.0], 100.0, [50.0])
    >>> float(c.upnl[0]), float(c.leverage[0])
    (40.0, 4.0)
    """
    acc = np.atleast_1d(np.asarray(account))
    if acc.ndim != 1 or (len(acc) and not np.issubdtype(acc.dtype, np.integer)):
        raise ValidationError("account", acc.dtype, "must be a one-dimensional integer array")
    n = len(acc)
    s = adl_math._float_array("size", size, n)
    e = adl_math._float_array("entry", entry, n)
    m = adl_math._float_array("mark", np.broadcast_to(np.asarray(mark, dtype=np.float64), (n,)), n)
    eq = adl_math._float_array("equity", equity, n)
    if np.any(m <= 0):
        raise ValidationError("mark", float(m[m <= 0][0]), "must be > 0")
    if np.any((s != 0) & (e <= 0)):
        raise ValidationError("entry", float(e[(s != 0) & (e <= 0)][0]), "must be > 0 when open")
    mr = (
        np.zeros(n)
        if margin_ratio is None
        else adl_math._float_array("margin_ratio", margin_ratio, n)
    )
    lots = adl_math._float_array(
        "lot_size", np.broadcast_to(np.asarray(lot_size, dtype=np.float64), (n,)), n
    )
    if np.any(lots <= 0):
        raise ValidationError("lot_size", float(lots[lots <= 0][0]), "must be > 0")
    if len(np.unique(acc)) != n:
        raise ValidationError("account", acc.tolist()[:10], "must not repeat an account")
    cr = np.zeros(n, dtype=np.bool_) if cross is None else np.asarray(cross, dtype=np.bool_)
    upnl = s * (m - e)
    lev = np.full(n, np.inf)
    with np.errstate(over="ignore"):  # a tiny equity: leverage inf
        np.divide(np.abs(s) * m, eq, out=lev, where=eq > 0)
    lev[s == 0] = 0.0
    return Counterparties(acc.astype(np.int64), s, e, m, eq, upnl, lev, mr, lots, cr)


def _opposite(bankrupt: BankruptSide, cps: Counterparties) -> BoolArray:
    return np.asarray(np.sign(cps.size) == -math.copysign(1.0, bankrupt.size))


def _winners(bankrupt: BankruptSide, cps: Counterparties) -> BoolArray:
    return _opposite(bankrupt, cps) & (cps.upnl > 0)


def transfers(bankrupt: BankruptSide, cps: Counterparties, result: Deleveraging) -> FloatArray:
    """Value each counterparty gave to cover the deficit, quote, measured at the round's mark.

    ``closed_i x sign(bankrupt size) x (price - mark) + haircut_i``: a closed unit trades at
    ``price`` instead of the mark, a haircut is cash.
    """
    side = math.copysign(1.0, bankrupt.size)
    return result.closed * side * (result.price - bankrupt.mark) + result.haircut


def _empty(n: int, price: float) -> Deleveraging:
    return Deleveraging(np.zeros(n), np.zeros(n), price, 0.0, 0.0)


def _closing_need(bankrupt: BankruptSide, budget: float) -> float:
    """Base units of the bankrupt position to close at its bankruptcy price to move ``budget``."""
    gap = abs(bankrupt.bankruptcy_price - bankrupt.mark)
    if budget <= 0.0 or gap <= 0.0:
        return 0.0
    return min(abs(bankrupt.size), budget / gap)


def _exact_price(bankrupt: BankruptSide, closed_total: float, budget: float) -> float:
    """The ADL price at which ``closed_total`` base units move exactly ``budget`` (never beyond
    the bankruptcy price)."""
    if closed_total <= 0.0:
        return bankrupt.bankruptcy_price
    side = math.copysign(1.0, bankrupt.size)
    gap = min(budget / closed_total, abs(bankrupt.bankruptcy_price - bankrupt.mark))
    return bankrupt.mark + side * gap


def _budget(bankrupt: BankruptSide, budget: float | None) -> float:
    return bankrupt.deficit if budget is None else budget


# ---------------------------------------------------------------------------- closing policies
def _take(cps: Counterparties, idx: npt.NDArray[np.intp]) -> Counterparties:
    """The counterparties at ``idx``."""
    return Counterparties(
        cps.account[idx], cps.size[idx], cps.entry[idx], cps.mark[idx], cps.equity[idx],
        cps.upnl[idx], cps.leverage[idx], cps.margin_ratio[idx], cps.lot_size[idx],
        cps.cross[idx],
    )  # fmt: skip


def _ranking_inputs(cps: Counterparties) -> RankingInputs:
    mark = float(cps.mark[0]) if len(cps.mark) else 1.0
    wallet = cps.equity - cps.upnl
    maintenance = np.maximum(cps.margin_ratio, 0.0) * np.maximum(cps.equity, 0.0)
    return RankingInputs(cps.size, cps.entry, mark, cps.equity, wallet, maintenance)


@dataclass(frozen=True, slots=True)
class QueuePolicy:
    """A venue queue: rank the counterparties and close whole positions from the top.

    ``ranking`` is one of :mod:`deleverage.rules.adl_ranking`'s objects (BitMEX / Bybit
    profit-percent x leverage, Binance leverage-PnL, Hyperliquid price ratio x leverage, the
    risk score, dYdX's random start). Closes ``q = min(|size|, D / |p - mark|)`` base units of
    the bankrupt position at its bankruptcy price ``p``, walking the queue.
    """

    ranking: AdlRanking
    name: str = "queue"
    seed: int = 0

    def eligible(self, bankrupt: BankruptSide, cps: Counterparties) -> BoolArray:
        if self.ranking.takes_losers:
            return _opposite(bankrupt, cps)
        return _winners(bankrupt, cps)

    def order(
        self, cps: Counterparties, ok: BoolArray, rng: np.random.Generator | None
    ) -> IntArray:
        """Indices of the eligible counterparties, first deleveraged first."""
        idx = np.flatnonzero(ok)
        sub = _take(cps, idx)
        with np.errstate(over="ignore"):  # a tiny equity: an infinite score
            scores = self.ranking.scores(_ranking_inputs(sub))
        if scores is not None:
            return idx[adl_math.rank(scores, sub.account)].astype(np.int64)
        by_id = np.argsort(sub.account, kind="stable")
        walk = self.ranking.order(len(idx), rng or np.random.default_rng(self.seed))
        assert walk is not None
        return idx[by_id[walk]].astype(np.int64)

    def allocate(
        self, bankrupt: BankruptSide, cps: Counterparties, rng: np.random.Generator | None = None,
        budget: float | None = None,
    ) -> Deleveraging:  # fmt: skip
        n = len(cps.account)
        need = _closing_need(bankrupt, _budget(bankrupt, budget))
        ok = self.eligible(bankrupt, cps)
        if need <= 0.0 or not ok.any():
            return _empty(n, bankrupt.bankruptcy_price)
        order = self.order(cps, ok, rng)
        available = np.where(ok, np.abs(cps.size), 0.0)
        closed = adl_math.allocate_ranked(order, available, need)
        return Deleveraging(
            closed, np.zeros(n), bankrupt.bankruptcy_price, 0.0, float(closed.sum())
        )


@dataclass(frozen=True, slots=True)
class OkxQueue(QueuePolicy):
    """OKX: the engine's ranking by margin mode
    (:class:`~deleverage.rules.adl_ranking.MarginModeRanking`: isolated positions by profit
    percent x leverage, cross accounts by margin ratio, merged by per-mode percentile)."""

    ranking: AdlRanking = field(default_factory=MarginModeRanking)
    name: str = "okx"

    def order(
        self, cps: Counterparties, ok: BoolArray, rng: np.random.Generator | None
    ) -> IntArray:
        idx = np.flatnonzero(ok)
        sub = _take(cps, idx)
        with np.errstate(over="ignore", divide="ignore", invalid="ignore"):
            percentile = self.ranking.scores(_ranking_inputs(sub)._replace(cross=sub.cross))
        assert percentile is not None
        return idx[adl_math.rank(percentile, sub.account)].astype(np.int64)


@dataclass(frozen=True, slots=True)
class SizeProRata:
    """Every eligible winner closes the same fraction of its size (in lots,
    :func:`~.adl.allocate_pro_rata`): size pro rata. Takes as much profit as a queue."""

    name: str = "size_pro_rata"

    def eligible(self, bankrupt: BankruptSide, cps: Counterparties) -> BoolArray:
        return _winners(bankrupt, cps)

    def allocate(
        self, bankrupt: BankruptSide, cps: Counterparties, rng: np.random.Generator | None = None,
        budget: float | None = None,
    ) -> Deleveraging:  # fmt: skip
        n = len(cps.account)
        need = _closing_need(bankrupt, _budget(bankrupt, budget))
        ok = self.eligible(bankrupt, cps)
        if need <= 0.0 or not ok.any():
            return _empty(n, bankrupt.bankruptcy_price)
        available = np.where(ok, np.abs(cps.size), 0.0)
        total = float(available.sum())
        closed = available * min(1.0, need / total)
        return Deleveraging(
            closed, np.zeros(n), bankrupt.bankruptcy_price, 0.0, float(closed.sum())
        )


@dataclass(frozen=True, slots=True)
class WholeLots:
    """Contract-level allocation: whole lots only, shared in proportion to size by largest
    remainder (:func:`~.adl.allocate_pro_rata`).

    The bankrupt side needs ``ceil(q / lot)`` lots; the price then moves toward the mark so
    that those lots move exactly the deficit (``p' = mark + side x D / closed``), never past
    the bankruptcy price.
    """

    name: str = "whole_lots"

    def eligible(self, bankrupt: BankruptSide, cps: Counterparties) -> BoolArray:
        return _winners(bankrupt, cps)

    def allocate(
        self, bankrupt: BankruptSide, cps: Counterparties, rng: np.random.Generator | None = None,
        budget: float | None = None,
    ) -> Deleveraging:  # fmt: skip
        n = len(cps.account)
        want = _budget(bankrupt, budget)
        need = _closing_need(bankrupt, want)
        ok = self.eligible(bankrupt, cps)
        if need <= 0.0 or not ok.any():
            return _empty(n, bankrupt.bankruptcy_price)
        lot = float(np.max(cps.lot_size[ok]))
        lots_avail = np.where(ok, np.floor(np.abs(cps.size) / lot + 1e-9), 0.0)
        cap = min(math.floor(abs(bankrupt.size) / lot + 1e-9), int(lots_avail.sum()))
        # At least one lot for any positive need (the slack only absorbs float noise at an
        # integer; a need below 1e-9 lots must still be covered).
        lots = min(max(1, math.ceil(need / lot - 1e-9)), cap)
        if lots <= 0:
            return _empty(n, bankrupt.bankruptcy_price)
        closed = adl_math.allocate_pro_rata(lots_avail * lot, lots * lot, lot)
        total = float(closed.sum())
        price = _exact_price(bankrupt, total, want)
        return Deleveraging(closed, np.zeros(n), price, 0.0, total)


# ---------------------------------------------------------------------------- haircut policies
def water_fill(weights: ArrayLike, caps: ArrayLike, target: float) -> FloatArray:
    """``x_i = min(cap_i, lam x w_i)`` with ``lam`` such that ``sum(x) = target``.

    When ``target >= sum(caps)`` every cap is taken (the deficit is not fully covered). The
    float remainder is put on the uncapped share with the most room, so ``sum(x)`` equals
    ``target`` to rounding. Entries with ``w_i = 0`` or ``cap_i = 0`` get nothing.

    Examples
    --------
    >>> water_fill([1.0, 1.0, 1.0], [1.0, 5.0, 5.0], 7.0).tolist()
    [1.0, 3.0, 3.0]
    """
    w = adl_math._nonnegative_array("weights", weights)
    c = adl_math._nonnegative_array("caps", caps, len(w))
    c = np.where(w > 0, c, 0.0)
    t = float(target)
    if not math.isfinite(t) or t < 0:
        raise ValidationError("target", target, "must be a finite amount >= 0")
    if t == 0.0 or c.sum() <= 0.0:
        return np.zeros_like(w)
    if t >= math.fsum(c.tolist()):
        return c.copy()
    live = np.flatnonzero(c > 0)
    with np.errstate(over="ignore"):  # a subnormal weight: its cap is never reached
        ratio = c[live] / w[live]  # lam at which each share hits its cap
    order = np.argsort(ratio, kind="stable")
    r, cs, ws = ratio[order], c[live][order], w[live][order]
    capped_before = np.concatenate(([0.0], np.cumsum(cs)[:-1]))
    weight_from = np.cumsum(ws[::-1])[::-1]
    with np.errstate(over="ignore", invalid="ignore"):
        reach = capped_before + r * weight_from  # sum(x) at lam = r_k
    k = int(np.searchsorted(reach, t, side="left"))
    lam = (t - capped_before[k]) / weight_from[k]
    x = np.minimum(c, lam * w)
    room = np.where(x < c, c - x, 0.0)
    rest = t - math.fsum(x.tolist())
    if rest != 0.0:
        j = int(np.argmax(room)) if rest > 0 else int(np.argmax(x))
        x[j] = min(max(x[j] + rest, 0.0), c[j])
    return np.asarray(x, dtype=np.float64)


@dataclass(frozen=True, slots=True)
class CappedProRata:
    """Haircut winners' profit in proportion to ``basis`` (profit, equity or notional), each
    at most ``cap_fraction`` of its profit; water-filling meets the deficit exactly when the
    caps allow (:func:`water_fill`). No position is closed."""

    basis: Basis = "profit"
    cap_fraction: float = 1.0
    name: str = "profit_pro_rata"

    def eligible(self, bankrupt: BankruptSide, cps: Counterparties) -> BoolArray:
        return _winners(bankrupt, cps)

    def caps(self, bankrupt: BankruptSide, cps: Counterparties) -> FloatArray:
        """Most each counterparty can lose, quote: ``cap_fraction x max(upnl, 0)``."""
        return np.where(
            self.eligible(bankrupt, cps), self.cap_fraction * np.maximum(cps.upnl, 0.0), 0.0
        )

    def weights(self, cps: Counterparties) -> FloatArray:
        if self.basis == "profit":
            return np.maximum(cps.upnl, 0.0)
        if self.basis == "equity":
            return np.maximum(cps.equity, 0.0)
        return np.abs(cps.size) * cps.mark

    def allocate(
        self, bankrupt: BankruptSide, cps: Counterparties, rng: np.random.Generator | None = None,
        budget: float | None = None,
    ) -> Deleveraging:  # fmt: skip
        n = len(cps.account)
        caps = self.caps(bankrupt, cps)
        target = _budget(bankrupt, budget)
        haircut = water_fill(np.where(caps > 0, self.weights(cps), 0.0), caps, target)
        rest = target - math.fsum(haircut.tolist())
        if rest > 1e-12 * target:  # winners of zero weight (equity <= 0) take the rest by room
            room = np.maximum(caps - haircut, 0.0)
            haircut = haircut + water_fill(room, room, rest)
        return Deleveraging(np.zeros(n), haircut, bankrupt.mark, 0.0, 0.0)


def socialized_loss(over: Literal["profit", "open_interest"] = "profit") -> CappedProRata:
    """Socialized loss capped at profit: the deficit charged pro rata to profit or open
    interest, no winner losing more than its unrealized profit (never principal)."""
    basis: Basis = "profit" if over == "profit" else "notional"
    return CappedProRata(basis=basis, cap_fraction=1.0, name=f"socialized_{over}")


@dataclass(frozen=True, slots=True)
class MinMaxHaircut:
    """Minimize the largest haircut percentage subject to covering the deficit.

    The linear program over ``x`` (haircut per eligible winner, quote) and ``t``::

        minimize t   s.t.   sum(x) = D,   0 <= x_i <= cap_i,   x_i <= t x profit_i

    solved by scipy's HiGHS (``linprog(method="highs")``). Where the caps allow less than
    ``D`` every cap is taken. With ``cap_i = c x profit_i`` the optimum equals capped profit
    pro rata (a differential test checks it).
    """

    cap_fraction: float = 1.0
    name: str = "min_max"

    def eligible(self, bankrupt: BankruptSide, cps: Counterparties) -> BoolArray:
        return _winners(bankrupt, cps)

    def allocate(
        self, bankrupt: BankruptSide, cps: Counterparties, rng: np.random.Generator | None = None,
        budget: float | None = None,
    ) -> Deleveraging:  # fmt: skip
        from scipy.optimize import linprog

        n = len(cps.account)
        target = _budget(bankrupt, budget)
        ok = self.eligible(bankrupt, cps)
        profit = np.where(ok, np.maximum(cps.upnl, 0.0), 0.0)
        caps = self.cap_fraction * profit
        live = np.flatnonzero(caps > 0)
        haircut = np.zeros(n)
        if target <= 0.0 or len(live) == 0:
            return Deleveraging(np.zeros(n), haircut, bankrupt.mark, 0.0, 0.0)
        if target >= math.fsum(caps.tolist()):
            return Deleveraging(np.zeros(n), caps, bankrupt.mark, 0.0, 0.0)
        if target < 1e-9 * float(caps.max()):  # below the solver's tolerance: its optimum
            haircut = water_fill(profit, caps, target)  # in closed form (equal percentages)
            return Deleveraging(np.zeros(n), haircut, bankrupt.mark, 0.0, 0.0)
        k = len(live)
        scale = float(caps.max())  # solve in units of the largest cap: well conditioned
        cost = np.zeros(k + 1)
        cost[-1] = 1.0
        a_ub = np.hstack([np.eye(k), -profit[live, None] / scale])
        a_eq = np.concatenate([np.ones(k), [0.0]])[None, :]
        bounds = [(0.0, float(cap / scale)) for cap in caps[live]] + [(0.0, None)]
        sol = linprog(
            cost, A_ub=a_ub, b_ub=np.zeros(k), A_eq=a_eq, b_eq=[1.0], bounds=bounds,
            method="highs",
        )  # fmt: skip
        if sol.status != 0:
            raise ValidationError("deficit", target, f"min-max program failed: {sol.message}")
        x = np.clip(np.asarray(sol.x[:k]) * scale, 0.0, caps[live])
        haircut[live] = x
        haircut = _settle(haircut, caps, target)  # the solver's tolerance (~1e-9) settled
        return Deleveraging(np.zeros(n), haircut, bankrupt.mark, 0.0, 0.0)


def _settle(x: FloatArray, caps: FloatArray, target: float) -> FloatArray:
    """Scale a nearly feasible allocation so it sums to ``target`` within its caps."""
    total = math.fsum(x.tolist())
    if total <= 0.0:
        return x
    if total > target:
        y = x * (target / total)
    else:
        room = caps - x
        y = x + room * ((target - total) / max(math.fsum(room.tolist()), 1e-300))
    y = np.minimum(np.maximum(y, 0.0), caps)
    rest = target - math.fsum(y.tolist())
    j = int(np.argmax(caps - y)) if rest > 0 else int(np.argmax(y))
    y[j] = min(max(y[j] + rest, 0.0), caps[j])
    return y


# ---------------------------------------------------------------------------- hybrid
@dataclass(frozen=True, slots=True)
class FundFirst:
    """Hybrid: the insurance fund pays first, up to ``drawdown_limit x fund`` (quote), then
    ``then`` covers the rest (budget-driven: a closing policy closes the bankrupt position
    only partially)."""

    then: DeleveragingPolicy
    fund: float = 0.0
    drawdown_limit: float = 1.0

    @property
    def name(self) -> str:
        return f"fund_first+{self.then.name}"

    def eligible(self, bankrupt: BankruptSide, cps: Counterparties) -> BoolArray:
        return self.then.eligible(bankrupt, cps)

    def allocate(
        self, bankrupt: BankruptSide, cps: Counterparties, rng: np.random.Generator | None = None,
        budget: float | None = None,
    ) -> Deleveraging:  # fmt: skip
        if not math.isfinite(self.fund) or self.fund < 0:
            raise ValidationError("fund", self.fund, "must be a finite amount >= 0")
        if not 0.0 <= self.drawdown_limit <= 1.0:
            raise ValidationError("drawdown_limit", self.drawdown_limit, "must lie in [0, 1]")
        total = _budget(bankrupt, budget)
        paid = min(total, self.drawdown_limit * self.fund)
        inner = self.then.allocate(bankrupt, cps, rng, budget=total - paid)
        return inner._replace(fund_paid=paid)


# ---------------------------------------------------------------------------- names
_QUEUES: dict[str, AdlRanking] = {
    "bitmex": PnlLeverageRanking(),
    "bybit": PnlLeverageRanking(),
    "binance": LeveragePnlRanking(),
    "hyperliquid": PriceRatioLeverageRanking(),
    "dydx": RandomStartRanking(),
    "risk_score": RiskScoreRanking(),
}

#: Every name :func:`policy_named` accepts (``fund_first+NAME`` for the hybrid).
POLICY_NAMES: tuple[str, ...] = (
    *_QUEUES, "okx", "size_pro_rata", "whole_lots", "profit_pro_rata", "equity_pro_rata",
    "notional_pro_rata", "socialized_profit", "socialized_open_interest", "min_max",
)  # fmt: skip


def policy_named(
    name: str, *, cap_fraction: float = 1.0, fund: float = 0.0, drawdown_limit: float = 1.0,
    seed: int = 0,
) -> DeleveragingPolicy:  # fmt: skip
    """The policy of a name (:data:`POLICY_NAMES`; ``fund_first+NAME`` for the hybrid).

    Examples
    --------
    >>> policy_named("profit_pro_rata").name
    'profit_pro_rata'
    >>> policy_named("fund_first+bitmex", fund=100.0).name
    'fund_first+bitmex'
    """
    if name.startswith("fund_first+"):
        inner = policy_named(name.removeprefix("fund_first+"), cap_fraction=cap_fraction, seed=seed)
        return FundFirst(then=inner, fund=fund, drawdown_limit=drawdown_limit)
    if not 0.0 < cap_fraction <= 1.0:
        raise ValidationError("cap_fraction", cap_fraction, "must lie in (0, 1]")
    if name in _QUEUES:
        return QueuePolicy(ranking=_QUEUES[name], name=name, seed=seed)
    simple: dict[str, DeleveragingPolicy] = {
        "okx": OkxQueue(seed=seed),
        "size_pro_rata": SizeProRata(),
        "whole_lots": WholeLots(),
        "profit_pro_rata": CappedProRata("profit", cap_fraction, "profit_pro_rata"),
        "equity_pro_rata": CappedProRata("equity", cap_fraction, "equity_pro_rata"),
        "notional_pro_rata": CappedProRata("notional", cap_fraction, "notional_pro_rata"),
        "socialized_profit": socialized_loss("profit"),
        "socialized_open_interest": socialized_loss("open_interest"),
        "min_max": MinMaxHaircut(cap_fraction=cap_fraction),
    }
    if name not in simple:
        raise UnknownEntityError("policy", name, ", ".join(POLICY_NAMES) + ", fund_first+NAME")
    return simple[name]
