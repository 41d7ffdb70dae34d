"""Synthetix perps v3 as a :class:`~deleverage.venues.protocol.Venue`.

Accounts are cross-margined over the deployment's markets: USD collateral ``(n,)`` and, per
market, a signed size and the last interaction price ``(n, markets)``. A step:

1. does no margin work while no price, funding value or the keepers' cost of gas has moved
   enough to bring any account to its liquidation line: each account's slack ``available
   margin - maintenance margin - liquidation reward`` falls by at most
   ``k_am = |size| x (1 + MMR + flag reward ratio)`` per unit of price (or funding value) of
   market ``m`` and by the reward's gas cost per unit of gas cost, so
   ``sum_m K_m (|p_m - p_ref,m| + |F_m - F_ref,m|) + K_c |c - c_ref| < 1`` with
   ``K_m = max_a k_am / slack_a`` proves nobody crossed. Past that, only the accounts whose
   own bound (slack and slopes kept from their last exact evaluation) no longer proves them
   safe are evaluated;
2. continues the liquidation of flagged accounts: keepers call ``liquidate`` (paid
   ``keeperReward(0, liquidate cost, 0)`` when something was liquidated), each market closing
   what its window's capacity allows (``maxLiquidationAmountInWindow`` per
   ``maxSecondsInLiquidationWindow``, or one more window while the skew's premium is below
   ``maxLiquidationPd``);
3. flags the accounts whose ``maintenance margin + liquidation reward > available margin``
   (``PerpsAccount.isEligibleForLiquidation``), largest reward first (the protocol sets no
   priority; ties by account), when a keeper takes them: their collateral goes to the LP
   pool, which pays the flag reward; the same call liquidates the first window.

Losses beyond collateral are the LP pool's: at a flag, ``max(0, reward - available margin)``
(the trader's loss beyond collateral plus the reward the collateral could not cover); each
later window's keeper reward, paid by the pool with no collateral left, also goes on
``backstop_loss``. A flagged position's PnL is no one's (the account was wiped at the flag), so
its slow close costs the pool nothing beyond the rewards; it is the pool's hedge that trades
it (forced flow). Funding follows the skew (velocity ``clamp(skew / skewScale) x
maxFundingVelocity``), recomputed whenever a liquidation moves the skew; order fees are not
modelled (docs/architecture.md). A market's funding value enters the quiet bound like its
price (a position's PnL moves by ``size x`` either).
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import numpy.typing as npt
import pandas as pd

from deleverage.engine.events import EventKind, Journal
from deleverage.errors import ValidationError
from deleverage.protocols.chain import Chain
from deleverage.protocols.keepers import Keepers
from deleverage.protocols.oracle_pool import PoolAction, PoolKeepers, append_actions
from deleverage.protocols.synthetix import math as sm
from deleverage.protocols.synthetix.config import (
    SynthetixConfig,
    SynthetixPopulation,
    synthetix_population,
)
from deleverage.venues.protocol import (
    LIQUIDATION_LEVEL_COLUMNS,
    PriceInputs,
    SolvencyLines,
    VenueStep,
    check_price_inputs,
)

__all__ = ["SynthetixVenue", "build_synthetix"]

F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.intp]
_NS = 1e-9
_QUIET = 1.0 - 1e-9


class _Margins:
    """An account set's margin terms at one set of prices (arrays over the accounts)."""

    def __init__(
        self, venue: SynthetixVenue, idx: I64, prices: F64, cost_unit: float, funding: F64
    ) -> None:
        cfg = venue.config
        s = venue._size[idx]
        absolute = np.abs(s)
        pnl = s * (prices - venue._entry[idx]) + s * (funding - venue._entry_funding[idx])
        self.available = venue._coll[idx] + pnl.sum(axis=1)
        mm = np.zeros(idx.size)
        flag_rewards = np.zeros(idx.size)
        windows = np.zeros(idx.size)
        self.slope = np.zeros((idx.size, len(cfg.markets)))
        for m, market in enumerate(cfg.markets):
            _, mm_m = sm.required_margins(
                absolute[:, m],
                prices[m],
                skew_scale=market.skew_scale,
                initial_margin_ratio=market.initial_margin_ratio,
                minimum_initial_margin_ratio=market.minimum_initial_margin_ratio,
                maintenance_margin_scalar=market.maintenance_margin_scalar,
                minimum_position_margin=market.minimum_position_margin,
            )
            mm += mm_m
            flag_rewards += absolute[:, m] * prices[m] * market.flag_reward_ratio
            windows = np.maximum(
                windows, sm.number_of_windows(absolute[:, m], market.max_liquidation_in_window)
            )
            imr = (
                absolute[:, m] / market.skew_scale * market.initial_margin_ratio
                + market.minimum_initial_margin_ratio
            )
            mmr = imr * market.maintenance_margin_scalar
            self.slope[:, m] = absolute[:, m] * (1.0 + mmr + market.flag_reward_ratio)
        feeds = (s != 0.0).sum(axis=1).astype(np.float64)
        self.flag_cost, self.liquidate_cost = venue._costs(feeds, cost_unit)
        self.collateral = venue._coll[idx]
        self.flag_rewards = np.maximum(
            flag_rewards, self.collateral * cfg.collateral_liquidate_reward_ratio
        )
        reward = sm.possible_liquidation_reward(
            flag_rewards=flag_rewards,
            collateral_reward=self.collateral * cfg.collateral_liquidate_reward_ratio,
            flag_cost=self.flag_cost,
            liquidate_cost=self.liquidate_cost,
            collateral_value=self.collateral,
            windows=windows,
            guards=cfg.guards,
        )
        self.maintenance = mm
        self.reward = reward
        self.slack = self.available - mm - reward
        units = cfg.flag_gas_units_per_feed * feeds + cfg.liquidate_gas_units * windows
        self.cost_slope = (1.0 + cfg.min_keeper_profit_ratio) * units


class SynthetixVenue:
    """A Synthetix perps v3 deployment behind the Venue protocol (module docstring).

    Examples
    --------
    >>> import numpy as np
    >>> from deleverage.protocols.synthetix import SynthetixMarketConfig
    >>> cfg = SynthetixConfig(markets=(SynthetixMarketConfig(asset="ETH", skew_scale=1e6),))
    >>> pop = SynthetixPopulation(np.array([1_000.0]), np.array([[5.0]]), np.array([[2_000.0]]))
    >>> venue = SynthetixVenue(cfg, pop)
    >>> venue.step({"ETH": PriceInputs(1_950.0)}, ts_ns=1).liquidations
    0
    >>> venue.step({"ETH": PriceInputs(1_800.0)}, ts_ns=2).liquidations
    1
    """

    def __init__(
        self,
        config: SynthetixConfig,
        population: SynthetixPopulation,
        *,
        keepers: Keepers | None = None,
        chain: Chain | None = None,
        native_asset: str | None = None,
    ) -> None:
        m = len(config.markets)
        pop = population.check(m)
        self.config = config
        self._coll = pop.collateral_usd.astype(np.float64).copy()
        self._size = pop.size.astype(np.float64).copy()
        self._entry = np.where(pop.size != 0.0, pop.entry_price, 0.0).astype(np.float64)
        #: Each position's funding value (quote per base) at its last interaction.
        self._entry_funding = np.zeros_like(self._size)
        self._f_rate = np.zeros(m)  # funding rate per day at the last record
        self._f_value = np.zeros(m)  # funding value (quote per base) at the last record
        self._f_time = np.full(m, np.nan)  # time of the last record (s); set by the first step
        self._f_ref = np.zeros(m)
        self._funding = np.zeros(m)  # funding value now (quote per base), per market
        n = self._coll.shape[0]
        self._flagged = np.zeros(n, dtype=np.bool_)
        self._seen = np.full(n, -1, dtype=np.int64)
        self._skew = self._size.sum(axis=0)
        self._win_ts: list[list[float]] = [[] for _ in range(m)]
        self._win_amount: list[list[float]] = [[] for _ in range(m)]
        if native_asset is not None and native_asset not in config.assets:
            raise ValidationError("native_asset", native_asset, f"must be one of {config.assets}")
        self._keepers = PoolKeepers(keepers, chain, native_asset)
        self._journal = Journal()
        self._last_ts = 0
        # Until the first step, levels are read at each market's size-weighted mean entry.
        weight = np.abs(self._size).sum(axis=0)
        mean_entry = (np.abs(self._size) * self._entry).sum(axis=0) / np.where(
            weight > 0, weight, 1
        )
        self._prices = np.where(weight > 0.0, mean_entry, 0.0)
        self._backstop_loss = 0.0
        self._rewards_paid = 0.0
        self._seized = 0.0
        self._dirty = True
        self._waiting = False  # eligible accounts no keeper took: look again next step
        # Per account, at its last exact evaluation: the prices, funding values and gas cost
        # it was evaluated at, its slack and the slack's slopes (inf slack: nothing to watch)
        self._acc_slack = np.full(n, np.inf)
        self._acc_slope = np.zeros((m, n))  # market-major: one contiguous row per market
        self._acc_cost_slope = np.zeros(n)
        self._acc_p = np.zeros((m, n))
        self._acc_f = np.zeros((m, n))
        self._acc_c = np.zeros(n)
        #: Flagged accounts with size left, in flag order.
        self._queue = np.empty(0, dtype=np.intp)
        self._p_ref = np.full(m, np.nan)
        self._k = np.zeros(m)
        self._k_cost = 0.0
        self._c_ref = 0.0

    # -- the Venue protocol ------------------------------------------------------------
    @property
    def name(self) -> str:
        """The deployment's name."""
        return self.config.name

    @property
    def assets(self) -> tuple[str, ...]:
        """The markets' assets."""
        return self.config.assets

    def journal(self) -> Journal:
        """Flags and window liquidations (``LIQUIDATION`` rows), append-only."""
        return self._journal

    def solvency(self) -> SolvencyLines:
        """The LP pool's losses beyond collateral on ``backstop_loss``; no insurance fund."""
        return SolvencyLines(0.0, 0.0, self._backstop_loss, 0.0, 0.0, 0.0)

    def step(self, prices: Mapping[str, PriceInputs], *, ts_ns: int) -> VenueStep:
        """Read every market's oracle price at ``ts_ns``; liquidate (module docstring)."""
        check_price_inputs(prices, self.assets, ts_ns=ts_ns, last_ts_ns=self._last_ts)
        self._last_ts = ts_ns
        block = self._keepers.advance(ts_ns, prices)
        p = np.array([prices[a].oracle for a in self.assets])
        self._prices = p
        c = self._cost_unit()
        now_s = ts_ns * _NS
        self._f_time = np.where(np.isnan(self._f_time), now_s, self._f_time)
        f = self._funding_now(p, now_s)
        self._funding = f
        flow = np.zeros(len(self.assets))
        count, notional = 0, 0.0
        if self._queue.size:
            count, notional = self._continue_flagged(ts_ns, now_s, block, p, flow)
        cand: I64 | None = None
        slack: F64 | None = None
        if self._dirty:
            cand = np.flatnonzero(~self._flagged & (self._size != 0.0).any(axis=1))
        else:
            shift = np.abs(p - self._p_ref) + np.abs(f - self._f_ref)
            moved = float((self._k * shift).sum()) + self._k_cost * abs(c - self._c_ref)
            if moved >= _QUIET or self._waiting:
                # only accounts whose own bound no longer proves them safe
                slack = self._effective_slack(p, f, c)
                cand = np.flatnonzero(slack <= 0.0)
        if cand is not None:
            flagged, value, evaluated = self._flag(ts_ns, now_s, block, p, c, flow, cand)
            count, notional = count + flagged, notional + value
            if slack is None:
                slack = self._effective_slack(p, f, c)
            else:  # the evaluated accounts' slack is exact now (inf where flagged)
                slack[evaluated] = self._acc_slack[evaluated]
            self._rebuild(p, c, slack)
        hedge = self.config.hedge_ratio
        forced = {a: float(x) * hedge for a, x in zip(self.assets, flow, strict=True)}
        return VenueStep(ts_ns, count, notional, forced, self.solvency())

    def liquidation_levels(self) -> pd.DataFrame:
        """Each open position of an unflagged account and the price of its asset at which the
        account becomes liquidatable, other prices and the liquidation reward held at their
        current values (NaN for flagged accounts; before the first step, prices are each
        market's size-weighted mean entry)."""
        rows, cols = np.nonzero(self._size)
        frames = []
        p = self._prices
        level = np.full(rows.size, np.nan)
        if np.isfinite(p).all() and rows.size:
            idx = np.unique(rows)
            terms = _Margins(self, idx, p, self._cost_unit(), self._funding)
            where = np.searchsorted(idx, rows)
            for m, market in enumerate(self.config.markets):
                here = cols == m
                a = rows[here]
                s = self._size[a, m]
                absolute = np.abs(s)
                imr = (
                    absolute / market.skew_scale * market.initial_margin_ratio
                    + market.minimum_initial_margin_ratio
                )
                mmr = imr * market.maintenance_margin_scalar
                own_mm = absolute * p[m] * mmr + market.minimum_position_margin
                own_pnl = s * (p[m] - self._entry[a, m])  # its funding stays in ``rest``
                k = where[here]
                rest = (
                    terms.available[k] - own_pnl - (terms.maintenance[k] - own_mm) - terms.reward[k]
                )
                # rest + s (x - entry) - |s| x mmr - min margin = 0
                denom = s - absolute * mmr
                x = (self._entry[a, m] * s + market.minimum_position_margin - rest) / denom
                level[here] = np.where((x > 0.0) & ~self._flagged[a], x, np.nan)
        sizes = self._size[rows, cols]
        frames.append(
            pd.DataFrame(
                {
                    "asset": np.array(self.assets, dtype=object)[cols],
                    "account": rows.astype(np.int64),
                    "size": sizes,
                    "notional": np.abs(sizes) * np.where(np.isfinite(p), p, np.nan)[cols],
                    "liquidation_price": level,
                }
            )
        )
        return frames[0].loc[:, list(LIQUIDATION_LEVEL_COLUMNS)]

    # -- views ---------------------------------------------------------------------------
    def pool_flows(self) -> dict[str, float]:
        """What the LP pool received (collateral seized) and paid (keeper rewards), USD."""
        return {"collateral_seized": self._seized, "keeper_rewards_paid": self._rewards_paid}

    def positions(self, account: int) -> dict[str, float]:
        """One account's signed sizes by asset."""
        return {a: float(self._size[account, m]) for m, a in enumerate(self.assets)}

    def account_margins(self, account: int, prices: Mapping[str, float]) -> dict[str, float]:
        """One account's PnL per asset, available margin, maintenance margin and possible
        liquidation reward at ``prices`` (USD), and whether it is eligible (1.0) or not."""
        p = np.array([float(prices[a]) for a in self.assets])
        funding = self._funding_now(p, self._last_ts * _NS) if self._last_ts else self._funding
        terms = _Margins(self, np.array([account]), p, self._cost_unit(), funding)
        pnl = self._size[account] * (p - self._entry[account])
        pnl += self._size[account] * (funding - self._entry_funding[account])
        out = {f"pnl_{a}": float(x) for a, x in zip(self.assets, pnl, strict=True)}
        out.update(
            available=float(terms.available[0]),
            maintenance=float(terms.maintenance[0]),
            reward=float(terms.reward[0]),
            eligible=float(terms.slack[0] < 0.0),
        )
        return out

    def is_flagged(self, account: int) -> bool:
        """Whether the account has been flagged for liquidation."""
        return bool(self._flagged[account])

    # -- internals -----------------------------------------------------------------------
    def _cost_unit(self) -> float:
        chain = self._keepers.chain
        if chain is None or not np.isfinite(chain.native_price):
            return 0.0
        return float(chain.gas_cost_quote(1.0))

    def _costs(self, feeds: F64, cost_unit: float) -> tuple[F64, float]:
        cfg = self.config
        if self._keepers.chain is None:
            return feeds * cfg.flag_cost_usd_per_feed, cfg.liquidate_cost_usd
        return feeds * cfg.flag_gas_units_per_feed * cost_unit, cfg.liquidate_gas_units * cost_unit

    def _capacity(self, m: int, now_s: float) -> tuple[float, bool]:
        """Market ``m``'s capacity now (base) and whether the premium/discount escape
        (``maxLiquidationPd``) opens one more window for the first liquidation of the block
        (``PerpsMarket.maxLiquidatableAmount``); ``inf`` when windows are not limited."""
        market = self.config.markets[m]
        max_in_window = market.max_liquidation_in_window
        if max_in_window <= 0.0:
            return np.inf, False
        ts = self._win_ts[m]
        capacity = sm.liquidation_capacity(
            ts,
            self._win_amount[m],
            now_s=now_s,
            window_s=market.max_seconds_in_liquidation_window,
            max_in_window=max_in_window,
        )
        escape = (
            capacity == 0.0
            and market.max_liquidation_pd > 0.0
            and (not ts or ts[-1] != now_s)
            and abs(self._skew[m]) / market.skew_scale < market.max_liquidation_pd
        )
        return capacity, escape

    def _funding_now(self, p: F64, now_s: float) -> F64:
        """Each market's funding value now (``calculateNextFunding``, quote per base)."""
        out = self._f_value.copy()
        for m, market in enumerate(self.config.markets):
            if market.max_funding_velocity == 0.0 and self._f_rate[m] == 0.0:
                continue
            days = (now_s - self._f_time[m]) / 86_400.0
            rate = sm.funding_rate(
                last_rate=float(self._f_rate[m]),
                skew=float(self._skew[m]),
                skew_scale=market.skew_scale,
                max_velocity=market.max_funding_velocity,
                elapsed_days=days,
            )
            out[m] += sm.unrecorded_funding(
                last_rate=float(self._f_rate[m]), rate=rate, elapsed_days=days, price=float(p[m])
            )
        return out

    def _recompute_funding(self, m: int, p: F64, now_s: float) -> None:
        """``PerpsMarket.recomputeFunding`` before the skew of market ``m`` changes."""
        market = self.config.markets[m]
        days = (now_s - self._f_time[m]) / 86_400.0
        rate = sm.funding_rate(
            last_rate=float(self._f_rate[m]),
            skew=float(self._skew[m]),
            skew_scale=market.skew_scale,
            max_velocity=market.max_funding_velocity,
            elapsed_days=days,
        )
        self._f_value[m] += sm.unrecorded_funding(
            last_rate=float(self._f_rate[m]), rate=rate, elapsed_days=days, price=float(p[m])
        )
        self._f_rate[m] = rate
        self._f_time[m] = now_s

    def _record(self, m: int, amount: float, now_s: float) -> None:
        market = self.config.markets[m]
        ts, amounts = self._win_ts[m], self._win_amount[m]
        if ts and ts[-1] == now_s:
            amounts[-1] += amount
        else:
            ts.append(now_s)
            amounts.append(amount)
        cutoff = now_s - market.max_seconds_in_liquidation_window
        while ts and ts[0] <= cutoff:  # outside every future window
            del ts[0], amounts[0]

    def _plan(self, accounts: I64, now_s: float) -> F64:
        """What each market's window lets go of each of ``accounts`` (base, ``(k, markets)``)
        when their ``liquidate`` calls run in order now (``maxLiquidatableAmount``); nothing
        changes."""
        take = np.zeros((accounts.size, len(self.config.markets)))
        for m, market in enumerate(self.config.markets):
            want = np.abs(self._size[accounts, m])
            if not (want > 0.0).any():
                continue
            capacity, escape = self._capacity(m, now_s)
            if capacity > 0.0:
                take[:, m] = np.clip(capacity - (np.cumsum(want) - want), 0.0, want)
            elif escape:  # the first call of the block gets one more window
                first = int(np.flatnonzero(want > 0.0)[0])
                take[first, m] = min(market.max_liquidation_in_window, float(want[first]))
        return take

    def _close_batch(self, ts_ns: int, now_s: float, accounts: I64, p: F64, flow: F64) -> F64:
        """Liquidate what each market's window allows of ``accounts``, in order (one
        ``liquidate`` call each); return each account's notional liquidated (USD)."""
        take = self._plan(accounts, now_s)
        for m in np.flatnonzero(take.sum(axis=0) > 0.0).tolist():
            hit = take[:, m] > 0.0
            rows = accounts[hit]
            sizes = self._size[rows, m]
            closed = np.sign(sizes) * take[hit, m]
            self._size[rows, m] = np.where(take[hit, m] >= np.abs(sizes), 0.0, sizes - closed)
            total = float(closed.sum())
            self._recompute_funding(m, p, now_s)
            self._skew[m] -= total
            flow[m] -= total
            if np.isfinite(self.config.markets[m].max_liquidation_in_window) and (
                self.config.markets[m].max_liquidation_in_window > 0.0
            ):
                self._record(m, float(take[hit, m].sum()), now_s)
            append_actions(
                self._journal,
                kind=EventKind.LIQUIDATION,
                ts_ns=ts_ns,
                code=PoolAction.SYNTHETIX_LIQUIDATION,
                account=rows,
                market=m,
                size=-closed,
                price=float(p[m]),
                amount=np.zeros(rows.size),
                fee=np.zeros(rows.size),
            )
        if self._queue.size:
            self._queue = self._queue[(self._size[self._queue] != 0.0).any(axis=1)]
        return np.asarray((take * p).sum(axis=1), dtype=np.float64)

    def _continue_flagged(
        self, ts_ns: int, now_s: float, block: int, p: F64, flow: F64
    ) -> tuple[int, float]:
        markets = [m for m in range(len(self.assets)) if (self._size[self._queue, m] != 0).any()]
        if not any(
            capacity > 0.0 or escape
            for capacity, escape in (self._capacity(m, now_s) for m in markets)
        ):
            return 0, 0.0  # every window is used up: no liquidate call can do anything
        # Keepers call only where a call would liquidate something (it pays only then).
        hopeful = self._queue[self._plan(self._queue, now_s).sum(axis=1) > 0.0]
        cfg = self.config
        _, liq_cost = self._costs(np.zeros(1), self._cost_unit())
        reward = float(sm.keeper_reward(0.0, liq_cost, 0.0, **cfg.guards))
        acted, _ = self._keepers.act(block=block, seen_block=self._seen[hopeful], incentive=reward)
        accounts = hopeful[acted]
        value = self._close_batch(ts_ns, now_s, accounts, p, flow)
        paid = accounts[value > 0.0]  # the reward is paid only when something was liquidated
        if paid.size:
            self._rewards_paid += reward * paid.size
            self._backstop_loss += reward * paid.size
            append_actions(
                self._journal,
                kind=EventKind.LIQUIDATION,
                ts_ns=ts_ns,
                code=PoolAction.SYNTHETIX_LIQUIDATION,
                account=paid,
                market=-1,
                size=np.zeros(paid.size),
                price=0.0,
                amount=np.full(paid.size, reward),
                fee=np.full(paid.size, reward),
            )
        return int(paid.size), float(value.sum())

    def _effective_slack(self, p: F64, f: F64, c: float) -> F64:
        """Each account's slack now, bounded below from its last exact evaluation (inf for
        accounts with nothing to watch)."""
        bound: F64 = self._acc_slack - self._acc_cost_slope * np.abs(c - self._acc_c)
        for m in range(p.size):
            shift = np.abs(p[m] - self._acc_p[m]) + np.abs(f[m] - self._acc_f[m])
            bound -= self._acc_slope[m] * shift
        return bound

    def _flag(
        self, ts_ns: int, now_s: float, block: int, p: F64, c: float, flow: F64, active: I64
    ) -> tuple[int, float, I64]:
        """Evaluate ``active`` exactly, remember each one's slack and slopes, and flag the
        eligible ones keepers take; return the flags, their notional and who was evaluated."""
        active = active[~self._flagged[active] & (self._size[active] != 0.0).any(axis=1)]
        if active.size == 0:
            return 0, 0.0, active
        terms = _Margins(self, active, p, c, self._funding)
        self._acc_slack[active] = terms.slack
        self._acc_slope[:, active] = terms.slope.T
        self._acc_cost_slope[active] = terms.cost_slope
        self._acc_p[:, active] = p[:, None]
        self._acc_f[:, active] = self._funding[:, None]
        self._acc_c[active] = c
        eligible = terms.slack < 0.0
        seen = self._seen[active]
        self._seen[active] = np.where(eligible, np.where(seen < 0, block, seen), -1)
        cand = np.flatnonzero(eligible)
        if cand.size == 0:
            return 0, 0.0, active
        cfg = self.config
        paid = sm.keeper_reward(
            terms.flag_rewards[cand],
            terms.flag_cost[cand] + terms.liquidate_cost,
            terms.collateral[cand],
            **cfg.guards,
        )
        # No protocol priority: keepers take the largest rewards first (ties by account).
        order = np.argsort(-paid, kind="stable")
        cand, paid = cand[order], paid[order]
        acted, _ = self._keepers.act(
            block=block, seen_block=self._seen[active[cand]], incentive=paid
        )
        go, reward = cand[acted], paid[acted]
        accounts = active[go]
        if accounts.size == 0:
            return 0, 0.0, active
        loss = np.maximum(reward - terms.available[go], 0.0)
        self._backstop_loss += float(loss.sum())
        self._rewards_paid += float(reward.sum())
        self._seized += float(self._coll[accounts].sum())
        self._coll[accounts] = 0.0
        self._flagged[accounts] = True
        self._acc_slack[accounts] = np.inf
        self._acc_slope[:, accounts] = 0.0
        self._acc_cost_slope[accounts] = 0.0
        append_actions(
            self._journal,
            kind=EventKind.LIQUIDATION,
            ts_ns=ts_ns,
            code=PoolAction.SYNTHETIX_FLAG,
            account=accounts,
            market=-1,
            size=np.zeros(accounts.size),
            price=0.0,
            amount=loss,
            fee=reward,
        )
        self._queue = np.concatenate([self._queue, accounts])
        notional = float(self._close_batch(ts_ns, now_s, accounts, p, flow).sum())
        return int(accounts.size), notional, active

    def _rebuild(self, p: F64, c: float, slack: F64) -> None:
        """Recompute the quiet-step bound from each account's ``slack`` bound at ``p``
        (module docstring, step 1)."""
        self._p_ref, self._c_ref = p.copy(), c
        self._f_ref = self._funding.copy()
        self._dirty = False
        watched = np.isfinite(slack)
        self._waiting = bool((slack[watched] <= 0.0).any())  # eligible, not taken: look again
        safe = watched & (slack > 0.0)
        if not safe.any():
            self._k = np.zeros(p.size)
            self._k_cost = 0.0
            return
        inverse = 1.0 / slack[safe]
        self._k = np.array([float((row[safe] * inverse).max()) for row in self._acc_slope])
        self._k_cost = float((self._acc_cost_slope[safe] * inverse).max())


def build_synthetix(
    config: SynthetixConfig,
    population: SynthetixPopulation | None = None,
    *,
    prices: Mapping[str, float] | None = None,
    seed: int = 0,
    keepers: Keepers | None = None,
    chain: Chain | None = None,
    native_asset: str | None = None,
) -> SynthetixVenue:
    """Build a Synthetix perps v3 venue (a world's entry).

    With ``population`` None the accounts are drawn by :func:`synthetix_population` from
    ``config.population`` at ``prices`` with ``seed``. Keepers: the given ones, else
    ``config.keepers`` (None: perfect keepers); they act on ``chain`` (a world's shared chain),
    else on a chain built from ``config.chain`` and ``config.seed``. Gas is priced in
    ``native_asset``, else ``config.native_asset``, else the first market's asset.
    """
    if population is None:
        if prices is None:
            raise ValidationError(
                "prices", prices, "must give every market's price to draw accounts"
            )
        draw = config.population
        population = synthetix_population(
            draw.accounts,
            seed=seed,
            config=config,
            prices=prices,
            mean_notional_usd=draw.mean_notional_usd,
            leverage=(draw.leverage_low, draw.leverage_high),
            markets_per_account=draw.markets_per_account,
            long_fraction=draw.long_fraction,
            entry_dispersion=draw.entry_dispersion,
        )
    if keepers is None and config.keepers is not None:
        keepers = Keepers(config.keepers)
    if keepers is not None and chain is None:
        chain = Chain(config.chain, seed=config.seed)
    if keepers is not None and native_asset is None:
        native_asset = config.native_asset or config.assets[0]
    return SynthetixVenue(
        config, population, keepers=keepers, chain=chain, native_asset=native_asset
    )
