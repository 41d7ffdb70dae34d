"""A GMX v2 market as a :class:`~deleverage.venues.protocol.Venue`.

State is struct-of-arrays, one entry per position (``is_long``, collateral amount and token,
``size_usd``, ``size_tokens``, the borrowing factor at open), plus the pool's two token amounts
and each side's open interest in USD and tokens. A step:

1. reads the oracle's min / max prices (``oracle_band``) and accrues borrowing and funding;
2. returns at once when the price stays inside the quiet band, neither side's PnL is capped
   and ADL is not due. Remaining collateral is linear in the price, ``A + B p``, so each
   position has a trigger price ``(threshold - A) / B``. A **trigger index** (two
   ``triggers.TriggerLadder``, rebuilt when sizes change other than by liquidation, or when
   the borrowing / funding look-ahead runs out) keeps *conservative* triggers sorted: with
   the worst price impact and close fee any open interest could give, so no one else's close
   can move a position past it. The band set at the end of each step is the exact triggers
   (the open interest now) nearest the price, scanned outwards from the crossed positions
   until the next conservative trigger cannot be nearer. Where the long token is another
   asset, the band narrows by how far its price moved times the largest ``collateral / |B|``;
3. otherwise evaluates exactly only the open positions whose conservative trigger the price
   has crossed (a binary search per direction; every open position when the index is stale),
   in rounds while closes move the open interest, each round only the positions the closes
   can push past their threshold (``math.remaining_collateral_usd`` against
   ``math.liquidation_threshold_usd``); keepers (``oracle_pool.PoolKeepers``) liquidate the
   most distressed first (ties by position) when the execution fee beats gas, after their
   latency; the pool receives the collateral and pays out what is left (the profit part from
   the PnL token's pool); a loss beyond collateral is the LP pool's: ``backstop_loss``;
4. runs ADL per side while its PnL-to-pool factor exceeds ``max_pnl_factor_for_adl``: keepers
   close the most profitable positions, the last one partly, until the factor is at
   ``min_pnl_factor_after_adl`` (not below: GMX reverts an over-correcting ADL); profit cut by
   the MAX_PNL_FACTOR_FOR_TRADERS cap on those closes is ``adl_loss``.

ADL keepers (``PoolKeepers``, paid the execution fee) execute the planned closes.
Funding is GMX's static funding: the larger side pays ``fundingFactor x diff ** exponent /
total open interest`` per second on its size, accrued like borrowing; what a closing position
owes becomes the other side's claimable funding (``funding_claimable_usd``), outside the pool.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import numpy.typing as npt
import pandas as pd

from deleverage.engine.events import EventKind, Journal
from deleverage.errors import ValidationError
from deleverage.protocols.chain import Chain
from deleverage.protocols.gmx import math as gm
from deleverage.protocols.gmx import quiet as _quiet_mod
from deleverage.protocols.gmx.adl import deleverage_side
from deleverage.protocols.gmx.config import GmxConfig, GmxPopulation, gmx_population
from deleverage.protocols.gmx.kernels import close_costs_nb
from deleverage.protocols.gmx.triggers import TriggerLadder
from deleverage.protocols.keepers import Keepers
from deleverage.protocols.oracle_pool import PoolAction, PoolKeepers, append_actions, oracle_band
from deleverage.venues.protocol import (
    LIQUIDATION_LEVEL_COLUMNS,
    PriceInputs,
    QuietPath,
    SolvencyLines,
    VenueStep,
    check_price_inputs,
)

__all__ = ["GmxVenue", "build_gmx"]

F64 = npt.NDArray[np.float64]
_NS = 1e-9
#: Look-ahead of borrowing included in the trigger band (seconds of accrual).
_BORROW_LOOKAHEAD_S = 3_600.0
#: Relative slack on the band so float noise never skips a position on the boundary.
_BAND_RTOL = 1e-9
#: Liquidation rounds per step (each round's closes change the others' price impact).
_MAX_ROUNDS = 64


class GmxVenue:
    """One GMX v2 market behind the Venue protocol (see the module docstring).

    Examples
    --------
    >>> import numpy as np
    >>> cfg = GmxConfig(asset="ETH", long_pool_tokens=1_000.0, short_pool_usd=5e6)
    >>> pop = GmxPopulation(
    ...     is_long=np.array([True]), collateral_amount=np.array([10.0]),
    ...     collateral_is_long_token=np.array([True]), size_usd=np.array([200_000.0]),
    ...     size_tokens=np.array([40.0]))
    >>> venue = build_gmx(cfg, pop)
    >>> venue.step({"ETH": PriceInputs(4_200.0)}, ts_ns=1).liquidations
    0
    >>> venue.step({"ETH": PriceInputs(4_000.0)}, ts_ns=2).liquidations
    1
    """

    def __init__(
        self,
        config: GmxConfig,
        population: GmxPopulation,
        *,
        keepers: Keepers | None = None,
        chain: Chain | None = None,
        native_asset: str | None = None,
        full_pass: bool = False,
    ) -> None:
        pop = population.check()
        self._cfg = config
        self._is_long = pop.is_long.astype(np.bool_).copy()
        self._long_weight = self._is_long.astype(np.float64)
        self._coll = pop.collateral_amount.astype(np.float64).copy()
        self._coll_long = pop.collateral_is_long_token.astype(np.bool_).copy()
        self._size_usd = pop.size_usd.astype(np.float64).copy()
        self._size_tok = pop.size_tokens.astype(np.float64).copy()
        n = self._size_usd.shape[0]
        self._borrow_entry = np.zeros(n)
        self._fund_entry = np.zeros(n)  # the side's cumulative funding factor at open
        self._seen = np.full(n, -1, dtype=np.int64)  # block a liquidation was first seen
        self._adl_seen = [-1, -1]  # block ADL became due, longs and shorts
        self._pool_long = float(config.long_pool_tokens)
        self._pool_short = float(config.short_pool_usd)
        self._cum_borrow = 0.0
        #: Funding paid per USD of size since the start, longs and shorts (the paying side's
        #: factor grows; what it pays becomes the other side's claimable funding).
        self._cum_fund = np.zeros(2)
        self._funding_claimable = 0.0
        self._last_ts = 0
        self._mid = float("nan")
        self._journal = Journal()
        self._backstop_loss = 0.0
        self._adl_loss = 0.0
        self._bad_debt = 0.0
        # The trigger index: conservative trigger prices (worst-case impact and fee), positions
        # that lose on a fall sorted by trigger descending, those that lose on a rise
        # ascending, and those liquidatable at any price.
        self._falls = TriggerLadder.empty()
        self._rises = TriggerLadder.empty()
        self._always_idx = np.empty(0, dtype=np.intp)
        self._bad_idx = np.empty(0, dtype=np.intp)  # liquidatable after the last evaluation
        # The quiet band: no position can be liquidatable while lo < price < hi (exact
        # triggers near the price, conservative ones beyond), set at the end of each step.
        self._lo, self._hi = np.inf, -np.inf
        self._edge_q = float("nan")  # the long token's min price when the band was set
        self._band_cum = -1.0  # borrowing factor the band assumed (look-ahead included)
        self._band_fund = np.full(2, -1.0)  # funding factors it assumed
        self._dirty = True
        #: The reference mode: every step evaluates every open position (no quiet return,
        #: no trigger index), for differential tests of the fast path.
        self._full_pass = full_pass
        #: The compiled close costs match NumPy's bits where the impact needs no ``power``
        #: (NumPy's vectorized ``power`` may differ from libm's in the last bit).
        self._compiled_costs = config.impact_exponent == 2.0 or (
            config.positive_impact_factor == 0.0 and config.negative_impact_factor == 0.0
        )
        self._long_asset = config.long_token_asset or config.asset
        self._separate = self._long_asset != config.asset
        self._band_q = float("nan")  # the long token's min price the band assumed
        self._q_shift = 0.0  # how far the band's edges move per unit of that price
        self._q_min = self._q_max = float("nan")  # the long token's min / max price
        if native_asset is not None and native_asset not in self.assets:
            raise ValidationError("native_asset", native_asset, f"must be one of {self.assets}")
        self._keepers = PoolKeepers(keepers, chain, native_asset)
        self._refresh_open_interest()

    # -- the Venue protocol ------------------------------------------------------------
    @property
    def name(self) -> str:
        """The venue's name."""
        return self._cfg.name

    @property
    def assets(self) -> tuple[str, ...]:
        """The index asset, then the long token when it is another asset."""
        return (self._cfg.asset, self._long_asset) if self._separate else (self._cfg.asset,)

    def journal(self) -> Journal:
        """Liquidations (``LIQUIDATION`` rows) and ADL closes (``ADL_ROUND``), append-only."""
        return self._journal

    def solvency(self) -> SolvencyLines:
        """Cumulative losses: the LP pool's loss beyond collateral is ``backstop_loss``, profit
        cut on ADL closes ``adl_loss``, profit the pool could not pay ``bad_debt``; GMX has no
        insurance fund (``fund_balance`` 0)."""
        return SolvencyLines(0.0, 0.0, self._backstop_loss, self._adl_loss, 0.0, self._bad_debt)

    def step(self, prices: Mapping[str, PriceInputs], *, ts_ns: int) -> VenueStep:
        """Read the oracle at ``ts_ns``; liquidate and deleverage (module docstring)."""
        check_price_inputs(prices, self.assets, ts_ns=ts_ns, last_ts_ns=self._last_ts)
        cfg = self._cfg
        p_min, mid, p_max = oracle_band(prices[cfg.asset], cfg.oracle_half_spread)
        if self._separate:
            q_min, _, q_max = oracle_band(prices[self._long_asset], cfg.oracle_half_spread)
        else:
            q_min, q_max = p_min, p_max
        self._q_min, self._q_max = q_min, q_max
        if self._last_ts:
            dt = (ts_ns - self._last_ts) * _NS
            self._cum_borrow += cfg.borrowing_rate_per_s * dt
            self._cum_fund += self._funding_rates() * dt
        self._last_ts = ts_ns
        self._mid = mid
        block = self._keepers.advance(ts_ns, prices)
        flow = dict.fromkeys(self.assets, 0.0)
        # a long token priced apart moves long-token collateral: triggers move by its bound
        slack = self._q_slack(q_min, self._band_q)
        indexed = (
            not self._full_pass
            and not self._dirty
            and self._cum_borrow <= self._band_cum
            and bool((self._cum_fund <= self._band_fund).all())
            and not self._cap_binds(p_min, p_max)
        )
        if indexed:
            edge = slack + self._q_slack(q_min, self._edge_q)
            inside = (
                self._lo * (1.0 + _BAND_RTOL) + edge < mid < self._hi * (1.0 - _BAND_RTOL) - edge
            )
            if inside and not self._adl_due(p_min, p_max):
                self._quiet()
                return VenueStep(ts_ns, 0, 0.0, flow, self.solvency())
            cand = self._candidates(mid, slack)
        else:
            cand = np.flatnonzero(self._size_usd > 0.0)
        count, notional, moved = 0, 0.0, 0.0
        for _ in range(_MAX_ROUNDS):  # a close moves open interest, so price impact: re-check
            n, value, signed, near = self._liquidate(ts_ns, block, p_min, mid, cand)
            count, notional, moved = count + n, notional + value, moved + signed
            if n == 0:
                break
            if indexed and self._cap_binds(p_min, p_max):  # the index assumed no cap
                indexed = False
                cand = np.flatnonzero(self._size_usd > 0.0)
            elif indexed:  # only those the closes can push past their threshold
                cand = near
                if cand.size == 0:
                    break
            else:
                cand = cand[self._size_usd[cand] > 0.0]
        if cfg.adl_enabled:
            for is_long in (True, False):
                moved += deleverage_side(self, ts_ns, block, is_long, p_min, mid, p_max)
        if (
            self._dirty
            or self._cum_borrow > self._band_cum
            or bool((self._cum_fund > self._band_fund).any())
        ):
            self._rebuild_band(p_min, p_max)
        self._set_band(mid, self._q_slack(q_min, self._band_q))
        flow[cfg.asset] = moved * cfg.hedge_ratio
        return VenueStep(ts_ns, count, notional, flow, self.solvency())

    def quiet_steps(self, path: QuietPath) -> int:
        """Leading quiet steps of ``path`` (``protocols/gmx/quiet.py``); changes nothing."""
        return _quiet_mod.quiet_steps(self, path, band_rtol=_BAND_RTOL)

    def advance_quiet(self, path: QuietPath) -> None:
        """Take the quiet steps of ``path`` as one step each would (``protocols/gmx/quiet.py``)."""
        _quiet_mod.advance_quiet(self, path)

    def liquidation_levels(self) -> pd.DataFrame:
        """Open positions and the oracle price at which each becomes liquidatable (the long
        token's price held where it is another asset: NaN for its collateral before the first
        step)."""
        open_ = np.flatnonzero(self._size_usd > 0.0)
        A, Bc, thr = self._linear_terms(open_, self._cum_borrow, self._cum_fund)
        with np.errstate(divide="ignore", invalid="ignore"):
            level = (thr - A) / Bc
        level = np.where((Bc != 0.0) & (level > 0.0), level, np.nan)
        sign = np.where(self._is_long[open_], 1.0, -1.0)
        mid = self._mid if np.isfinite(self._mid) else np.nan
        frame = pd.DataFrame(
            {
                "asset": self._cfg.asset,
                "account": open_.astype(np.int64),
                "size": sign * self._size_tok[open_],
                "notional": self._size_tok[open_] * mid
                if np.isfinite(mid)
                else self._size_usd[open_],
                "liquidation_price": level,
            }
        )
        return frame.loc[:, list(LIQUIDATION_LEVEL_COLUMNS)]

    # -- views ---------------------------------------------------------------------------
    def funding_claimable_usd(self) -> float:
        """Funding paid by closed positions to the other side (claimable, USD; cumulative)."""
        return self._funding_claimable

    def pool_amounts(self) -> tuple[float, float]:
        """The pool's long-token amount (asset units) and short-token amount (USD)."""
        return self._pool_long, self._pool_short

    def pnl_to_pool_factor(
        self, *, is_long: bool, price: float, long_token_price: float | None = None
    ) -> float:
        """A side's PnL-to-pool factor at the index ``price`` and the long token's price
        (default: the index price), without spread (``getPnlToPoolFactor``)."""
        q = price if long_token_price is None else long_token_price
        return gm.pnl_to_pool_factor(self._side_pnl(is_long, price), self._pool_usd(is_long, q))

    def open_positions(self) -> pd.DataFrame:
        """Open positions' arrays (for people and tests)."""
        open_ = np.flatnonzero(self._size_usd > 0.0)
        return pd.DataFrame(
            {
                "position": open_,
                "is_long": self._is_long[open_],
                "collateral_amount": self._coll[open_],
                "collateral_is_long_token": self._coll_long[open_],
                "size_usd": self._size_usd[open_],
                "size_tokens": self._size_tok[open_],
            }
        )

    # -- internals -----------------------------------------------------------------------
    def _refresh_open_interest(self) -> None:
        # closed positions hold size 0, so sums weighted by the side indicator suffice (no
        # BLAS dot: its threads contend on a busy machine)
        longs = self._long_weight
        self._oi_long_usd = float((self._size_usd * longs).sum())
        self._oi_long_tok = float((self._size_tok * longs).sum())
        self._oi_short_usd = float(self._size_usd.sum()) - self._oi_long_usd
        self._oi_short_tok = float(self._size_tok.sum()) - self._oi_long_tok

    def _side_pnl(self, is_long: bool, price: float) -> float:
        if is_long:
            return gm.side_pnl_usd(
                is_long=True,
                open_interest_usd=self._oi_long_usd,
                open_interest_tokens=self._oi_long_tok,
                price=price,
            )
        return gm.side_pnl_usd(
            is_long=False,
            open_interest_usd=self._oi_short_usd,
            open_interest_tokens=self._oi_short_tok,
            price=price,
        )

    def _pool_usd(self, is_long: bool, long_token_price: float) -> float:
        return self._pool_long * long_token_price if is_long else self._pool_short

    def _adl_due(self, p_min: float, p_max: float) -> bool:
        if not self._cfg.adl_enabled:
            return False
        limit = self._cfg.max_pnl_factor_for_adl
        q = self._q_min
        long_f = gm.pnl_to_pool_factor(self._side_pnl(True, p_max), self._pool_usd(True, q))
        short_f = gm.pnl_to_pool_factor(self._side_pnl(False, p_min), self._pool_usd(False, q))
        return long_f > limit or short_f > limit

    def _quiet(self) -> None:
        """What a full pass does on a step where nothing is liquidatable and ADL is not due:
        positions liquidatable before are seen afresh, and so is ADL."""
        if self._bad_idx.size:
            self._seen[self._bad_idx] = -1
            self._bad_idx = self._bad_idx[:0]
        self._adl_seen = [-1, -1]

    def _cap_scales(self, p_min: float, p_max: float) -> tuple[float, float]:
        cap = self._cfg.max_pnl_factor_for_traders
        return (
            gm.capped_pnl_scale(
                self._side_pnl(True, p_max), self._pool_usd(True, self._q_min), cap
            ),
            gm.capped_pnl_scale(self._side_pnl(False, p_min), self._pool_usd(False, 1.0), cap),
        )

    def _cap_binds(self, p_min: float, p_max: float) -> bool:
        long_s, short_s = self._cap_scales(p_min, p_max)
        return long_s < 1.0 or short_s < 1.0

    def _funding_rates(self) -> F64:
        """Funding factor per second paid by longs and by shorts (the larger side pays):
        ``min(fundingFactor x diff ** exponent / total OI, maxFundingFactorPerSecond)``
        (``MarketUtils.getNextFundingFactorPerSecond``, static funding)."""
        cfg = self._cfg
        total = self._oi_long_usd + self._oi_short_usd
        diff = abs(self._oi_long_usd - self._oi_short_usd)
        if cfg.funding_factor == 0.0 or total <= 0.0 or diff == 0.0:
            return np.zeros(2)
        rate = min(
            cfg.funding_factor * diff**cfg.funding_exponent / total, cfg.max_funding_factor_per_s
        )
        return (
            np.array([rate, 0.0])
            if self._oi_long_usd > self._oi_short_usd
            else np.array([0.0, rate])
        )

    def _funding_owed(self, idx: npt.NDArray[np.intp]) -> F64:
        side_fund = np.where(self._is_long[idx], self._cum_fund[0], self._cum_fund[1])
        owed: F64 = self._size_usd[idx] * (side_fund - self._fund_entry[idx])
        return owed

    def _accrued(self, idx: npt.NDArray[np.intp], cum: float, fund: F64) -> F64:
        """Borrowing and funding a position owes at cumulative factors ``cum`` / ``fund``."""
        size = self._size_usd[idx]
        side_fund = np.where(self._is_long[idx], fund[0], fund[1])
        owed: F64 = size * (cum - self._borrow_entry[idx]) + size * (
            side_fund - self._fund_entry[idx]
        )
        return owed

    def _close_costs(self, idx: npt.NDArray[np.intp], cum: float, fund: F64) -> tuple[F64, F64]:
        """Capped price impact (<= 0) and fees (position fee, borrowing, funding owed) of
        closing whole; the position fee factor is the positive-impact one when the close
        improves balance (``balanceWasImproved``); compiled (``kernels.close_costs_nb``)
        where its bits match (``_compiled_costs``), except in the ``full_pass`` reference."""
        cfg = self._cfg
        if not self._full_pass and self._compiled_costs:
            return close_costs_nb(
                idx, self._is_long, self._size_usd, self._borrow_entry, self._fund_entry,
                self._oi_long_usd, self._oi_short_usd, cfg.positive_impact_factor,
                cfg.negative_impact_factor, cfg.impact_exponent,
                cfg.max_impact_factor_for_liquidations, cfg.position_fee_factor_positive,
                cfg.position_fee_factor_negative, cum, float(fund[0]), float(fund[1]),
            )  # fmt: skip
        is_long, size = self._is_long[idx], self._size_usd[idx]
        impact = gm.close_price_impact_usd(
            is_long=is_long,
            size_usd=size,
            long_open_interest_usd=self._oi_long_usd,
            short_open_interest_usd=self._oi_short_usd,
            positive_factor=cfg.positive_impact_factor,
            negative_factor=cfg.negative_impact_factor,
            exponent=cfg.impact_exponent,
        )
        capped = np.where(
            impact >= 0.0, 0.0, np.maximum(impact, -size * cfg.max_impact_factor_for_liquidations)
        )
        improved = gm.close_improves_balance(
            is_long=is_long,
            size_usd=size,
            long_open_interest_usd=self._oi_long_usd,
            short_open_interest_usd=self._oi_short_usd,
        )
        fee_factor = np.where(
            improved, cfg.position_fee_factor_positive, cfg.position_fee_factor_negative
        )
        return capped, size * fee_factor + self._accrued(idx, cum, fund)

    def _linear_terms(
        self, idx: npt.NDArray[np.intp], cum: float, fund: F64, *, conservative: bool = False
    ) -> tuple[F64, F64, F64]:
        """Remaining collateral as ``A + B x mid`` (the band's algebra) and the threshold;
        ``conservative``: with the worst impact and close fee the open interest could give
        (``-size x maxPositionImpactFactorForLiquidations``, the larger fee factor), so that
        no later close by anyone can move a position past its trigger."""
        cfg = self._cfg
        h = cfg.oracle_half_spread
        is_long, coll_long = self._is_long[idx], self._coll_long[idx]
        coll, size, tok = self._coll[idx], self._size_usd[idx], self._size_tok[idx]
        if conservative:  # no negative factor: no close has negative impact
            impact = (
                -size * cfg.max_impact_factor_for_liquidations
                if cfg.negative_impact_factor > 0.0
                else np.zeros(idx.size)
            )
            fee_max = max(cfg.position_fee_factor_positive, cfg.position_fee_factor_negative)
            fees = size * fee_max + self._accrued(idx, cum, fund)
        else:
            impact, fees = self._close_costs(idx, cum, fund)
        if self._separate:  # the long token's price is held fixed while the band stands
            coll_b = np.zeros(idx.size)
            coll_a = np.where(coll_long, coll * self._q_min, coll)
        else:
            coll_b = np.where(coll_long, coll * (1.0 - h), 0.0)
            coll_a = np.where(coll_long, 0.0, coll)
        A = coll_a + np.where(is_long, -size, size) + impact - fees
        Bc = coll_b + np.where(is_long, tok * (1.0 - h), -tok * (1.0 + h))
        thr = gm.liquidation_threshold_usd(
            size,
            min_collateral_usd=self._cfg.min_collateral_usd,
            min_collateral_factor=self._cfg.min_collateral_factor,
        )
        return A, Bc, thr

    def _rebuild_band(self, p_min: float, p_max: float) -> None:
        self._refresh_open_interest()
        cum = self._cum_borrow + self._cfg.borrowing_rate_per_s * _BORROW_LOOKAHEAD_S
        fund = self._cum_fund + self._funding_rates() * _BORROW_LOOKAHEAD_S
        open_ = np.flatnonzero(self._size_usd > 0.0)
        A, Bc, thr = self._linear_terms(open_, cum, fund, conservative=True)
        with np.errstate(divide="ignore", invalid="ignore"):
            level = (thr - A) / Bc
        falls, rises = Bc > 0.0, Bc < 0.0
        keys = -level[falls]
        order = np.argsort(keys, kind="stable")
        self._falls = TriggerLadder(keys[order], open_[falls][order])
        keys = level[rises]
        order = np.argsort(keys, kind="stable")
        self._rises = TriggerLadder(keys[order], open_[rises][order])
        self._always_idx = open_[(Bc == 0.0) & (thr > A)]
        if self._separate:
            # an edge p* = (thr - A) / B moves by c / |B| per unit of the long token's min
            # price, c the position's long-token collateral
            c = np.where(self._coll_long[open_], self._coll[open_], 0.0)
            held = c > 0.0
            if (held & (Bc == 0.0)).any():
                self._q_shift = np.inf
            else:
                ratio = c[held] / np.abs(Bc[held])
                self._q_shift = float(ratio.max()) if ratio.size else 0.0
            self._band_q = self._q_min
        self._band_cum = cum
        self._band_fund = fund
        self._dirty = False

    def _remaining(self, idx: npt.NDArray[np.intp], p_min: float, p_max: float) -> F64:
        is_long = self._is_long[idx]
        pnl = gm.position_pnl_usd(is_long, self._size_usd[idx], self._size_tok[idx], p_min, p_max)
        long_s, short_s = self._cap_scales(p_min, p_max)
        pnl = np.where(pnl > 0.0, pnl * np.where(is_long, long_s, short_s), pnl)
        impact, fees = self._close_costs(idx, self._cum_borrow, self._cum_fund)
        coll_usd = np.where(self._coll_long[idx], self._coll[idx] * self._q_min, self._coll[idx])
        return coll_usd + pnl + impact - fees

    def _q_slack(self, q_min: float, reference: float) -> float:
        """How far triggers may have moved since the long token's min price was
        ``reference`` (0 where the long token is the index asset)."""
        if not self._separate:
            return 0.0
        dq = abs(q_min - reference)
        return 0.0 if dq == 0.0 else self._q_shift * dq

    def _set_band(self, mid: float, slack: float) -> None:
        """The quiet band at the end of a step: the exact triggers (with the open interest
        now) nearest the price on each side, found by scanning each ladder from the positions
        the price has crossed outwards (``TriggerLadder.nearest``); valid until the open
        interest or the index changes."""
        size = self._size_usd

        def exact(idx: npt.NDArray[np.intp]) -> F64:
            A, Bc, thr = self._linear_terms(idx, self._band_cum, self._band_fund)
            level: F64 = (thr - A) / Bc
            return level

        def exact_fall(idx: npt.NDArray[np.intp]) -> F64:
            return -exact(idx)

        lo = -self._falls.nearest(-(mid - slack), size, exact_fall)
        hi = self._rises.nearest(mid + slack, size, exact)
        always = self._always_idx[size[self._always_idx] > 0.0]
        if always.size:
            A, _, thr = self._linear_terms(always, self._band_cum, self._band_fund)
            if (thr > A).any():
                lo, hi = np.inf, -np.inf
        self._lo, self._hi = lo, hi
        self._edge_q = self._q_min

    def _candidates(self, mid: float, slack: float) -> npt.NDArray[np.intp]:
        """Open positions whose conservative trigger the price has crossed (the only ones
        that can be liquidatable), with those liquidatable at any price."""
        low = (mid - slack) * (1.0 - _BAND_RTOL)  # float slack: err towards evaluating
        high = (mid + slack) * (1.0 + _BAND_RTOL)
        size = self._size_usd
        falls = self._falls.crossed(-low, "left", size)  # trigger > low
        rises = self._rises.crossed(high, "right", size)  # trigger <= high
        if self._always_idx.size == 0:
            return falls if rises.size == 0 else np.concatenate([falls, rises])
        always = self._always_idx[size[self._always_idx] > 0.0]
        return np.concatenate([falls, rises, always])

    def _liquidate(
        self, ts_ns: int, block: int, p_min: float, mid: float, open_: npt.NDArray[np.intp]
    ) -> tuple[int, float, float, npt.NDArray[np.intp]]:
        """Evaluate the positions ``open_`` exactly; keepers liquidate the liquidatable ones.
        Returns the count, notional and signed size closed, and the open positions of
        ``open_`` that the closes could make liquidatable (the cap not binding): a close
        changes others' remaining collateral only through the close fee factor and the
        price impact, by at most ``size x (|fee factor difference| + max impact factor)``
        (no negative impact factor: no negative impact)."""
        cfg = self._cfg
        p_max = mid + (mid - p_min)
        remaining = self._remaining(open_, p_min, p_max)
        size = self._size_usd[open_]
        thr = gm.liquidation_threshold_usd(
            size,
            min_collateral_usd=cfg.min_collateral_usd,
            min_collateral_factor=cfg.min_collateral_factor,
        )
        bad = (remaining < thr) | (remaining <= 0.0)
        # positions liquidatable before and not now (or not evaluated: safe) are seen afresh
        seen = self._seen[open_]
        self._seen[self._bad_idx] = -1
        self._seen[open_] = np.where(bad, np.where(seen < 0, block, seen), -1)
        self._bad_idx = open_[bad]
        # Most distressed first: remaining collateral over size, lowest first (ties by
        # position, so the order does not depend on which positions were evaluated).
        cand = np.flatnonzero(bad)
        cand = cand[np.lexsort((open_[cand], remaining[cand] / self._size_usd[open_[cand]]))]
        acted, _ = self._keepers.act(
            block=block, seen_block=self._seen[open_[cand]], incentive=cfg.execution_fee_usd
        )
        go = cand[acted]
        idx = open_[go]
        if idx.size == 0:
            return 0, 0.0, 0.0, open_[:0]
        oi_before = (self._oi_long_usd, self._oi_short_usd)
        net = remaining[go] - self._size_usd[idx] * cfg.liquidation_fee_factor
        coll_usd = np.where(self._coll_long[idx], self._coll[idx] * self._q_min, self._coll[idx])
        payout = np.maximum(net, 0.0)
        shortfall = np.maximum(-net, 0.0)
        from_collateral = np.minimum(payout, coll_usd)
        profit_part = payout - from_collateral
        is_long, coll_long = self._is_long[idx], self._coll_long[idx]
        # The collateral enters its token's pool; the payout leaves it (collateral part) and
        # the PnL token's pool (profit part: the long token for longs, at the max price).
        long_in = float(self._coll[idx][coll_long].sum())
        long_out = float(from_collateral[coll_long].sum()) / self._q_min
        long_profit = float(profit_part[is_long].sum()) / self._q_max
        short_in = float(self._coll[idx][~coll_long].sum())
        short_out = float(from_collateral[~coll_long].sum())
        short_profit = float(profit_part[~is_long].sum())
        self._pool_long += long_in - long_out
        self._pool_short += short_in - short_out
        self._pay_profit(long_profit, short_profit)
        # Funding owed leaves the pool for the other side's claimable funding.
        funding = np.minimum(self._funding_owed(idx), coll_usd)
        self._pool_long -= float(funding[coll_long].sum()) / self._q_min
        self._pool_short -= float(funding[~coll_long].sum())
        self._funding_claimable += float(funding.sum())
        self._backstop_loss += float(shortfall.sum())
        closed_tok = self._size_tok[idx]
        signed = np.where(is_long, -closed_tok, closed_tok)
        notional = float((closed_tok * mid).sum())
        append_actions(
            self._journal,
            kind=EventKind.LIQUIDATION,
            ts_ns=ts_ns,
            code=PoolAction.GMX_LIQUIDATION,
            account=idx,
            market=0,
            size=signed,
            price=mid,
            amount=shortfall,
            fee=np.full(idx.size, cfg.execution_fee_usd),
        )
        self._oi_long_usd -= float(self._size_usd[idx][is_long].sum())
        self._oi_long_tok -= float(closed_tok[is_long].sum())
        self._oi_short_usd -= float(self._size_usd[idx][~is_long].sum())
        self._oi_short_tok -= float(closed_tok[~is_long].sum())
        self._size_usd[idx] = 0.0
        self._size_tok[idx] = 0.0
        self._coll[idx] = 0.0
        self._seen[idx] = -1
        self._bad_idx = self._bad_idx[self._size_usd[self._bad_idx] > 0.0]
        near = gm.may_become_liquidatable(
            is_long=self._is_long[open_], size_usd=size, margin_usd=remaining - thr,
            open_interest_before=oi_before,
            open_interest_after=(self._oi_long_usd, self._oi_short_usd),
            fee_factors=(cfg.position_fee_factor_positive, cfg.position_fee_factor_negative),
            max_impact_factor=cfg.max_impact_factor_for_liquidations
            if cfg.negative_impact_factor > 0.0 else None,
        )  # fmt: skip
        near[go] = False
        return int(idx.size), notional, float(signed.sum()), open_[near]

    def _pay_profit(self, long_tokens: float, short_usd: float) -> None:
        """Pay profit from the pools; what a pool cannot pay is bad debt (USD)."""
        if long_tokens > self._pool_long:
            self._bad_debt += (long_tokens - self._pool_long) * self._q_max
            long_tokens = self._pool_long
        if short_usd > self._pool_short:
            self._bad_debt += short_usd - self._pool_short
            short_usd = self._pool_short
        self._pool_long -= long_tokens
        self._pool_short -= short_usd


def build_gmx(
    config: GmxConfig,
    population: GmxPopulation | None = None,
    *,
    prices: Mapping[str, float] | None = None,
    seed: int = 0,
    keepers: Keepers | None = None,
    chain: Chain | None = None,
    native_asset: str | None = None,
) -> GmxVenue:
    """Build a GMX v2 market venue (a world's entry).

    With ``population`` None the positions are drawn by :func:`gmx_population` from
    ``config.population`` at ``prices[config.asset]`` with ``seed``. Keepers: the given ones,
    else ``config.keepers`` (None: perfect keepers); they act on ``chain`` (a world's shared
    chain), else on a chain built from ``config.chain`` and ``config.seed``. Gas is priced in
    ``native_asset``, else ``config.native_asset``, else the long token's asset.
    """
    if population is None:
        if prices is None or config.asset not in prices:
            raise ValidationError("prices", prices, f"must give {config.asset!r} to draw positions")
        draw = config.population
        population = gmx_population(
            draw.positions,
            seed=seed,
            price=float(prices[config.asset]),
            mean_size_usd=draw.mean_size_usd,
            leverage=(draw.leverage_low, draw.leverage_high),
            long_fraction=draw.long_fraction,
            long_token_collateral_fraction=draw.long_token_collateral_fraction,
            entry_dispersion=draw.entry_dispersion,
        )
    if keepers is None and config.keepers is not None:
        keepers = Keepers(config.keepers)
    if keepers is not None and chain is None:
        chain = Chain(config.chain, seed=config.seed)
    if keepers is not None and native_asset is None:
        native_asset = config.native_asset or config.long_token_asset or config.asset
    return GmxVenue(config, population, keepers=keepers, chain=chain, native_asset=native_asset)
