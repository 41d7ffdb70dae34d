"""ADL rankings as policy objects: who is deleveraged first, and who may be deleveraged at all.

A market's :class:`~deleverage.spec.AdlPolicy` names a ranking; :func:`ranking_for` turns the
name into the object the engine and the queue views ask, so neither holds a branch per venue:

- :meth:`AdlRanking.scores` scores candidates (higher: deleveraged first), or returns None
  for rankings without a score (their order comes from :meth:`AdlRanking.order`);
- :attr:`AdlRanking.ranks_losers`: the venue's published queue includes positions at a loss
  (ranked last), as BitMEX, Binance and dYdX do; Hyperliquid and the profit-based rules rank
  only positions in profit;
- :attr:`AdlRanking.takes_losers`: ADL may close a position at a loss (dYdX v4 walks every
  offsetting subaccount); elsewhere the engine deleverages positions in profit only;
- :attr:`AdlRanking.allocation`: ``ranked`` (walk the queue, each takes up to its size),
  ``pro_rata`` (every winner in proportion to size) or ``socialized`` (no fills: the loss is
  charged to winners' cash, see :func:`deleverage.rules.adl.allocate_socialized_loss`).

The venue modules (:mod:`deleverage.venues`) choose a ranking by name in their presets; the
score formulas and their sources are in :mod:`deleverage.rules.adl` and docs/formulas.md.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Literal, NamedTuple, Protocol, get_args

import numpy as np
import numpy.typing as npt

from deleverage.errors import UnknownEntityError, ValidationError
from deleverage.rules import adl as adl_math
from deleverage.rules.adl import SocializeBasis
from deleverage.spec import AdlPolicy, RiskScoreWeights
from deleverage.spec import AdlRanking as RankingName

__all__ = [
    "AdlRanking",
    "LeveragePnlRanking",
    "MarginModeRanking",
    "PnlLeverageRanking",
    "PriceRatioLeverageRanking",
    "ProRata",
    "RandomStartRanking",
    "RankingInputs",
    "RiskScoreRanking",
    "SocializedLoss",
    "eligible_candidates",
    "queue_order",
    "ranking_for",
    "ranking_named",
]

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.intp]
BoolArray = npt.NDArray[np.bool_]
ArrayLike = npt.ArrayLike
Allocation = Literal["ranked", "pro_rata", "socialized"]


class RankingInputs(NamedTuple):
    """The candidates' positions and collateral (arrays of equal length, quote and base units).

    ``wallet`` is the collateral without unrealized PnL (isolated margin, or the account's cash
    for cross), ``equity`` with it; ``maintenance`` the maintenance margin backing each;
    ``cross`` whether each is a cross-margined account (None: all isolated).
    """

    sizes: FloatArray
    entry: FloatArray
    mark: float
    equity: FloatArray
    wallet: FloatArray
    maintenance: FloatArray
    cross: npt.NDArray[np.bool_] | None = None


class AdlRanking(Protocol):
    """What the engine asks of a market's ADL ranking (see the module docstring)."""

    @property
    def name(self) -> RankingName:
        """The ranking's name in :class:`~deleverage.spec.AdlPolicy`."""
        ...

    @property
    def ranks_losers(self) -> bool:
        """The published queue includes positions at a loss (ranked last)."""
        ...

    @property
    def takes_losers(self) -> bool:
        """ADL may close a position at a loss."""
        ...

    @property
    def allocation(self) -> Allocation:
        """How the deficit is shared: ``ranked``, ``pro_rata`` or ``socialized``."""
        ...

    @property
    def needs_maintenance(self) -> bool:
        """The score needs each candidate's maintenance margin (it costs a pass)."""
        ...

    def scores(self, inputs: RankingInputs) -> FloatArray | None:
        """Scores of the candidates (higher first), or None when the ranking has no score."""
        ...

    def order(self, n: int, rng: np.random.Generator) -> IntArray | None:
        """The walking order of ``n`` candidates sorted by account id, when not by score."""
        ...


@dataclass(frozen=True, slots=True)
class _Scored:
    def order(self, n: int, rng: np.random.Generator) -> IntArray | None:
        return None


@dataclass(frozen=True, slots=True)
class PnlLeverageRanking(_Scored):
    """BitMEX: profit percentage times effective leverage (:func:`~.adl.score_pnl_leverage`)."""

    name: RankingName = "pnl_leverage"
    ranks_losers: bool = True
    takes_losers: bool = False
    allocation: Allocation = "ranked"
    needs_maintenance: bool = False

    def scores(self, inputs: RankingInputs) -> FloatArray | None:
        return adl_math.score_pnl_leverage(
            inputs.sizes, inputs.entry, inputs.mark, equity=inputs.equity
        )


@dataclass(frozen=True, slots=True)
class LeveragePnlRanking(_Scored):
    """Binance "leverage PnL": profit over collateral times the margin ratio
    (:func:`~.adl.score_binance`)."""

    name: RankingName = "binance"
    ranks_losers: bool = True
    takes_losers: bool = False
    allocation: Allocation = "ranked"
    needs_maintenance: bool = True

    def scores(self, inputs: RankingInputs) -> FloatArray | None:
        return adl_math.score_binance(
            inputs.sizes,
            inputs.entry,
            inputs.mark,
            wallet_balance=inputs.wallet,
            maintenance=inputs.maintenance,
        )


@dataclass(frozen=True, slots=True)
class PriceRatioLeverageRanking(_Scored):
    """Hyperliquid: mark over entry times notional over account value, winners only
    (:func:`~.adl.score_hyperliquid`)."""

    name: RankingName = "hyperliquid"
    ranks_losers: bool = False
    takes_losers: bool = False
    allocation: Allocation = "ranked"
    needs_maintenance: bool = False

    def scores(self, inputs: RankingInputs) -> FloatArray | None:
        return adl_math.score_hyperliquid(
            inputs.sizes, inputs.entry, inputs.mark, account_value=inputs.equity
        )


@dataclass(frozen=True, slots=True)
class MarginModeRanking(_Scored):
    """OKX: isolated positions by profit percentage times leverage (as BitMEX), cross accounts
    by margin ratio (maintenance over equity); each mode ranked on its own and the two merged
    by percentile within their mode (OKX publishes a per-mode ranking percentile)."""

    name: RankingName = "okx"
    ranks_losers: bool = True
    takes_losers: bool = False
    allocation: Allocation = "ranked"
    needs_maintenance: bool = True

    def scores(self, inputs: RankingInputs) -> FloatArray | None:
        pnl_lev = adl_math.score_pnl_leverage(
            inputs.sizes, inputs.entry, inputs.mark, equity=inputs.equity
        )
        cross = (
            np.zeros(len(inputs.sizes), dtype=np.bool_) if inputs.cross is None else inputs.cross
        )
        with np.errstate(divide="ignore", invalid="ignore"):
            ratio = np.where(inputs.equity > 0, inputs.maintenance / inputs.equity, np.inf)
        raw = np.where(cross, ratio, pnl_lev)
        percentile = np.zeros(len(raw))
        for mode in (False, True):
            members = np.flatnonzero(cross == mode)
            if len(members):
                # Rank within the mode (ties by position in the list), 1 for the first.
                order = np.argsort(-raw[members], kind="stable")
                place = np.empty(len(members))
                place[order] = np.arange(len(members))
                percentile[members] = 1.0 - place / len(members)
        return np.asarray(percentile, dtype=np.float64)


@dataclass(frozen=True, slots=True)
class RiskScoreRanking(_Scored):
    """A weighted risk score of leverage, margin ratio and size (:func:`~.adl.score_risk_score`)."""

    weights: RiskScoreWeights = field(default_factory=RiskScoreWeights)
    name: RankingName = "risk_score"
    ranks_losers: bool = False
    takes_losers: bool = False
    allocation: Allocation = "ranked"
    needs_maintenance: bool = True

    def scores(self, inputs: RankingInputs) -> FloatArray | None:
        return adl_math.score_risk_score(
            inputs.sizes,
            inputs.mark,
            equity=inputs.equity,
            maintenance=inputs.maintenance,
            weights=self.weights,
        )


@dataclass(frozen=True, slots=True)
class RandomStartRanking:
    """dYdX v4: offsetting subaccounts walked from a pseudo-random start, losers included
    (:func:`~.adl.random_start_order`)."""

    name: RankingName = "random_start"
    ranks_losers: bool = True
    takes_losers: bool = True
    allocation: Allocation = "ranked"
    needs_maintenance: bool = False

    def scores(self, inputs: RankingInputs) -> FloatArray | None:
        return None

    def order(self, n: int, rng: np.random.Generator) -> IntArray | None:
        return adl_math.random_start_order(n, rng)


@dataclass(frozen=True, slots=True)
class ProRata:
    """Every winner gives up the same fraction of its position (size pro rata,
    :func:`~.adl.allocate_pro_rata`)."""

    name: RankingName = "pro_rata"
    ranks_losers: bool = False
    takes_losers: bool = False
    allocation: Allocation = "pro_rata"
    needs_maintenance: bool = False

    def scores(self, inputs: RankingInputs) -> FloatArray | None:
        return None

    def order(self, n: int, rng: np.random.Generator) -> IntArray | None:
        return np.arange(n, dtype=np.intp)


@dataclass(frozen=True, slots=True)
class SocializedLoss:
    """No fills: the loss is charged to winners' cash, or over open interest
    (:func:`~.adl.allocate_socialized_loss`)."""

    name: RankingName = "socialized_loss"
    ranks_losers: bool = False
    takes_losers: bool = False
    allocation: Allocation = "socialized"
    needs_maintenance: bool = False

    def scores(self, inputs: RankingInputs) -> FloatArray | None:
        return None

    def order(self, n: int, rng: np.random.Generator) -> IntArray | None:
        return None


_SIMPLE: dict[str, AdlRanking] = {
    "pnl_leverage": PnlLeverageRanking(),
    "binance": LeveragePnlRanking(),
    "hyperliquid": PriceRatioLeverageRanking(),
    "okx": MarginModeRanking(),
    "random_start": RandomStartRanking(),
    "pro_rata": ProRata(),
    "socialized_loss": SocializedLoss(),
}


def ranking_named(name: str) -> AdlRanking:
    """The ranking object of a ranking name (``risk_score`` with default weights)."""
    if name not in get_args(RankingName):
        raise UnknownEntityError("ranking", name, ", ".join(get_args(RankingName)))
    return ranking_for(AdlPolicy(ranking=name))


def ranking_for(policy: AdlPolicy) -> AdlRanking:
    """The ranking object named by a market's ADL policy.

    Examples
    --------
    >>> from deleverage.spec import AdlPolicy
    >>> ranking_for(AdlPolicy(ranking="hyperliquid")).ranks_losers
    False
    >>> ranking_for(AdlPolicy(ranking="random_start")).takes_losers
    True
    """
    if policy.ranking == "risk_score":
        return RiskScoreRanking(weights=policy.weights)
    found = _SIMPLE.get(policy.ranking)
    if found is None:
        raise UnknownEntityError("ranking", policy.ranking, ", ".join(get_args(RankingName)))
    return found


def queue_order(
    policy: AdlPolicy,
    *,
    account_ids: ArrayLike,
    size: ArrayLike,
    entry_price: ArrayLike,
    mark_price: float,
    margin: ArrayLike,
    maintenance: ArrayLike,
    rng: np.random.Generator | None = None,
) -> IntArray:
    """Deleveraging order of the candidates under a ranked policy.

    Asks the policy's :class:`AdlRanking` for scores (then :func:`~.adl.rank`) or, for
    ``random_start`` (dYdX v4), a walk of the candidates sorted by account id from a random
    offset drawn from ``rng``. ``margin`` is the collateral
    without unrealized PnL (wallet balance or isolated margin); equity = margin + size x (mark -
    entry). Pass only the eligible candidates (:func:`eligible_candidates`); the returned order
    indexes those arrays.

    Raises
    ------
    ValidationError
        For ``pro_rata`` and ``socialized_loss`` (no queue), or ``random_start`` without ``rng``.
    UnknownEntityError
        For a ranking name this module does not know.
    """
    s, e, m = adl_math._positions(size, entry_price, mark_price)
    ids = np.atleast_1d(np.asarray(account_ids))
    if ids.shape != s.shape:
        raise ValidationError(
            "account_ids", len(ids), f"must have one entry per position ({len(s)})"
        )
    wallet = adl_math._float_array("margin", margin, len(s))
    equity = wallet + s * (m - e)
    ranking = ranking_for(policy)
    if ranking.allocation != "ranked":
        raise ValidationError(
            "ranking", ranking.name, "has no queue (use the allocation functions)"
        )
    scores = ranking.scores(
        RankingInputs(
            s, e, m, equity, wallet, adl_math._float_array("maintenance", maintenance, len(s))
        )
    )
    if scores is not None:
        return adl_math.rank(scores, ids)
    if rng is None:
        raise ValidationError("rng", None, f"is required by the {ranking.name} ranking")
    by_id = np.argsort(ids, kind="stable").astype(np.intp)
    walk = ranking.order(len(s), rng)
    assert walk is not None  # a ranked policy without scores has an order
    return by_id[walk]


def eligible_candidates(
    size: ArrayLike,
    entry_price: ArrayLike,
    mark_price: float,
    *,
    bankrupt_size: float,
    ranking: RankingName,
    socialize_over: SocializeBasis = "profit",
) -> BoolArray:
    """Mask of the positions that may be deleveraged (or charged) for a bankrupt position.

    A candidate is open (``size != 0``) and on the opposite side of ``bankrupt_size``; where
    the ranking does not rank losers (:attr:`AdlRanking.ranks_losers`), it is also in profit
    (``size x (mark - entry) > 0``). Socialized loss over open interest (Drift's
    cumulative-funding style) is the exception: it charges every open position on both sides,
    profitable or not.

    Examples
    --------
    >>> eligible_candidates([1.0, -1.0, -2.0, 0.0], [90.0, 90.0, 110.0, 0.0], 100.0,
    ...                     bankrupt_size=3.0, ranking="hyperliquid").tolist()
    [False, False, True, False]
    """
    s, e, m = adl_math._positions(size, entry_price, mark_price)
    b = float(bankrupt_size)
    if not math.isfinite(b) or b == 0:
        raise ValidationError("bankrupt_size", bankrupt_size, "must be a finite non-zero size")
    policy = ranking_named(ranking)
    if socialize_over not in get_args(SocializeBasis):
        raise UnknownEntityError("socialize_over", socialize_over, "profit, open_interest")
    if ranking == "socialized_loss" and socialize_over == "open_interest":
        return np.asarray(s != 0)
    mask = np.sign(s) == -math.copysign(1.0, b)
    if not policy.ranks_losers:
        mask &= s * (m - e) > 0
    return np.asarray(mask)


#: Whether a ranking deleverages only positions in profit in the venue's published queue
#: (kept for 0.1 callers; the policy objects' :attr:`AdlRanking.ranks_losers` is the source).
PROFIT_ONLY: dict[str, bool] = {name: not r.ranks_losers for name, r in _SIMPLE.items()} | {
    "risk_score": not RiskScoreRanking().ranks_losers
}
