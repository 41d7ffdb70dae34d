"""An Aave v3.3 lending market as a :class:`~deleverage.venues.protocol.Venue`.

State is two arrays, ``collateral[account, reserve]`` and ``debt[account, reserve]`` (tokens),
plus per reserve the treasury's fees and the deficit. Each :meth:`AaveVenue.step`:

1. reads each reserve's **oracle** price (``PriceInputs.oracle``; the quote currency's
   reserves are priced 1) and advances the shared :class:`~deleverage.protocols.chain.Chain`
   with the native token's market price (gas price for the block);
2. finds the accounts with ``HF < 1`` without scanning everyone on a quiet step: at the last
   full pass it kept every account's health factor sorted, at reference prices ``p0``. A
   health factor moves at most by ``min_r(p/p0) / max_r(p/p0)`` (collateral value can fall no
   faster, debt value rise no faster, than the extreme price ratio), so only accounts with
   ``HF0 < max/min`` can be under 1 now: two binary searches find them, plus those changed by a
   liquidation since the pass (kept aside with their ``HF0``). A quiet step stops there; when
   too many are candidates a full pass re-sorts (docs/formulas.md §A6);
3. for each liquidatable account, most distressed first, plans ``liquidationCall`` on its
   largest collateral and largest debt reserve (by value), with the amount
   ``LiquidationDataProvider`` gives (the close factor, no dust; :mod:`.math`), values it for a
   keeper at the **market** price (the collateral it receives less the debt it repays, the
   expected slippage of selling the collateral, gas), and lets the keepers compete
   (:class:`~deleverage.protocols.keepers.Keepers`: latency from the block the account became
   liquidatable, capital, profitability);
4. applies what the keepers did (:mod:`.liquidation`): collateral seized, debt repaid, the
   protocol fee to the treasury, and when an account's last collateral is gone, its remaining
   debt into the reserves' **deficit** (v3.3), valued at the oracle price on the **bad debt**
   solvency line (Aave has no insurance fund in this model; the Umbrella cover of deficits is
   not modelled);
   the keepers sell what they received (``forced_flow`` < 0 for the collateral asset) and buy
   the debt they repay (``forced_flow`` > 0 when the debt is a priced asset).

``VenueStep.liquidated_notional`` is the collateral seized, at the oracle price (quote).

Journal rows (the engine's :class:`~deleverage.engine.events.Journal` schema): one
``LIQUIDATION`` per liquidation (``account`` the borrower, ``counterparty`` the keeper,
``market`` the collateral reserve, ``size`` minus the collateral seized (tokens), ``price`` its
oracle price, ``amount`` the deficit it created (quote), ``fee`` the protocol fee (quote),
``code`` 0 when the debt reserve was cleared, 1 for a partial liquidation, ``text`` JSON with
the debt reserve, debt repaid and gas) and one ``BAD_DEBT`` per reserve deficit (``market``
the debt reserve, ``amount`` quote).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Final

import numpy as np
import numpy.typing as npt
import pandas as pd

from deleverage import portable_linalg as pla
from deleverage.engine.events import EventKind, Journal
from deleverage.errors import ValidationError
from deleverage.protocols.aave import quiet as _quiet_mod
from deleverage.protocols.aave.config import (
    AaveConfig,
    AavePopulation,
    aave_population,
    reserve_prices,
)
from deleverage.protocols.aave.health_nb import health_rows_nb, under_rows_nb
from deleverage.protocols.aave.liquidation import keepers_pass
from deleverage.protocols.aave.math import (
    DEFAULT_LIQUIDATION_CLOSE_FACTOR,
    LIQUIDATABLE,
    LiquidationAmounts,
    LiquidationPlan,
)
from deleverage.protocols.aave.plan_nb import best_opportunity_nb, plan_rows_nb
from deleverage.protocols.aave.step_nb import DROPPED, narrowed_step_nb
from deleverage.protocols.chain import NS_PER_S, Chain
from deleverage.protocols.keepers import Keepers
from deleverage.venues.protocol import (
    LIQUIDATION_LEVEL_COLUMNS,
    PriceInputs,
    QuietPath,
    SolvencyLines,
    VenueStep,
    check_price_inputs,
)

__all__ = ["AaveVenue", "build_aave"]

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
#: At most this many changed accounts are kept aside before a full pass re-sorts.
_TOUCHED_LIMIT: Final = 4096
_NONE: Final = np.empty(0, dtype=np.int64)
#: A narrowed index serves while the outer price-ratio bound stays within this factor of the
#: bound it was built at.
_NARROW_MARGIN: Final = 1.01


class AaveVenue:
    """An Aave v3.3 market stepping on prices (see the module docstring).

    Parameters
    ----------
    config
        Reserves, constants, chain and keepers.
    population
        Collateral and debt per (account, reserve), tokens.
    prices
        The assets' prices now (quote per token): the reference of the liquidation levels
        before the first step.
    chain, keepers
        Shared with other venues of a world; by default the venue makes its own from the
        config.
    """

    def __init__(
        self,
        config: AaveConfig,
        population: AavePopulation,
        *,
        prices: Mapping[str, float],
        chain: Chain | None = None,
        keepers: Keepers | None = None,
    ) -> None:
        self.config = config
        reserves = config.reserves
        r_count = len(reserves)
        # Column-major: one contiguous array per reserve.
        collateral = np.array(population.collateral, dtype=np.float64, copy=True, order="F")
        debt = np.array(population.debt, dtype=np.float64, copy=True, order="F")
        for field, values in (("collateral", collateral), ("debt", debt)):
            if values.ndim != 2 or values.shape[1] != r_count:
                raise ValidationError(
                    f"population.{field}", values.shape, f"must be (accounts, {r_count})"
                )
            if not np.isfinite(values).all() or (values < 0).any():
                raise ValidationError(f"population.{field}", "values", "must be finite and >= 0")
        if collateral.shape != debt.shape:
            raise ValidationError("population.debt", debt.shape, f"must be {collateral.shape}")
        self._c, self._d = collateral, debt
        self._assets = config.assets
        self._asset_of = np.array(
            [-1 if r.asset is None else self._assets.index(r.asset) for r in reserves],
            dtype=np.int64,
        )
        self._lt = np.array([r.liquidation_threshold for r in reserves])
        #: The thresholds of collateral reserves (0 for the others): ``HF``'s weights are
        #: ``p x _lt_weight``.
        self._lt_weight = np.where(self._lt > 0.0, self._lt, 0.0)
        #: The plans' constants (.plan_nb): the close-factor and base thresholds, the minimum
        #: leftover and the default close factor.
        self._plan_constants = np.array(
            [config.close_factor_hf_threshold, config.min_base_max_close_factor_threshold,
             config.min_leftover_base, DEFAULT_LIQUIDATION_CLOSE_FACTOR]
        )  # fmt: skip
        self._bonus = np.array([r.liquidation_bonus for r in reserves])
        self._fee = np.array([r.protocol_fee for r in reserves])
        depth = [
            math.inf if r.sale_depth_per_pct is None else 100.0 * r.sale_depth_per_pct
            for r in reserves
        ]
        self._depth = np.array(depth)
        self._chain = chain if chain is not None else Chain(config.chain, seed=config.seed)
        #: Whether nobody else advances the chain (quiet steps with flagged accounts read
        #: its gas along the path, ``quiet.py``).
        self._own_chain = chain is None
        self._keepers = keepers if keepers is not None else Keepers(config.keepers)
        self._native = config.native_asset
        self._price = reserve_prices(config, prices)
        self._journal = Journal()
        self._last_ts = -1
        n = collateral.shape[0]
        self._since = np.full(n, -1, dtype=np.int64)
        self._flagged = np.empty(0, dtype=np.int64)
        self._mark = np.zeros(n, dtype=np.bool_)
        self._ref: FloatArray | None = None
        self._ref_list: list[float] = []
        self._hf_floor = -math.inf
        self._version = 0
        self._memo_key: tuple[tuple[float, ...], int] | None = None
        self._memo_plan: tuple[LiquidationPlan, IntArray, IntArray] | None = None
        #: Moved by every change of the state (a step, quiet steps, a trader's cash): what
        #: the quiet walks found (``_walks``, ``quiet.py``) is of the state while it stays.
        self._epoch = 0
        self._walks: _quiet_mod.Walks | None = None
        self._hf_sorted = np.empty(0)
        self._hf_order = np.empty(0, dtype=np.int64)
        self._touched = np.empty(0, dtype=np.int64)
        self._touched_hf = np.empty(0)
        self._full_pass_limit = 256 + n // 16
        # The narrowed index (§A6): the outer candidates re-sorted at newer prices.
        self._inner_ref: list[float] | None = None
        self._inner_limit = math.inf
        self._inner_sorted = np.empty(0)
        self._inner_order = np.empty(0, dtype=np.int64)
        #: The narrowed index's accounts' collateral and debt rows in its order (row-major
        #: copies, refreshed when an account changes): a step reads its candidates' rows
        #: one after the other instead of gathering them from the whole book.
        self._inner_c = np.empty((0, r_count))
        self._inner_d = np.empty((0, r_count))
        self._inner_touched = np.empty(0, dtype=np.int64)
        self._inner_touched_hf = np.empty(0)
        self._inner_floor = math.inf
        #: Narrow when the outer bound admits more than 4 x liquidatable + this many.
        self._narrow_slack = 256
        self.treasury = np.zeros(r_count)
        self.deficit = np.zeros(r_count)
        self._bad_debt = 0.0
        self._lines = SolvencyLines(0.0, 0.0, 0.0, 0.0, 0.0, 0.0)
        self._asset_of_list: list[int] = self._asset_of.tolist()
        self._native_index = self._assets.index(config.native_asset)
        #: Sum over steps of (accounts with HF < 1) x step length: time under water (s).
        self.liquidatable_account_seconds = 0.0
        #: Liquidations keepers did not take (unprofitable, no capital, too slow), cumulative.
        self.missed_opportunities = 0

    # -- the Venue protocol ---------------------------------------------------------------

    @property
    def name(self) -> str:
        """The venue's name (``config.name``)."""
        return self.config.name

    @property
    def assets(self) -> tuple[str, ...]:
        """The priced assets of the reserves."""
        return self._assets

    @property
    def chain(self) -> Chain:
        """The chain the venue's keepers transact on."""
        return self._chain

    @property
    def keepers(self) -> Keepers:
        """The keepers liquidating on this venue."""
        return self._keepers

    @property
    def price(self) -> FloatArray:
        """The last oracle price of each reserve (quote per token; quote reserves 1)."""
        view = self._price.view()
        view.flags.writeable = False
        return view

    @property
    def collateral(self) -> FloatArray:
        """Collateral tokens per (account, reserve) (a read-only view)."""
        view = self._c.view()
        view.flags.writeable = False
        return view

    @property
    def debt(self) -> FloatArray:
        """Debt tokens per (account, reserve) (a read-only view)."""
        view = self._d.view()
        view.flags.writeable = False
        return view

    def health_factors(self) -> FloatArray:
        """Every account's health factor at the last oracle prices (``inf`` without debt)."""
        return self._health(None, self._price)

    def journal(self) -> Journal:
        """The venue's journal."""
        return self._journal

    def solvency(self) -> SolvencyLines:
        """Deficits (valued when created) on the bad-debt line; no fund, no ADL."""
        return self._lines

    def step(self, prices: Mapping[str, PriceInputs], *, ts_ns: int) -> VenueStep:
        """Read the prices at ``ts_ns``, find the liquidatable accounts, let keepers act."""
        check_price_inputs(prices, self._assets, ts_ns=ts_ns, last_ts_ns=self._last_ts)
        self._moved()
        # Plain floats on the quiet path: a handful of reserves, no array overhead.
        inputs = [prices[a] for a in self._assets]
        oracle = [x.oracle for x in inputs]
        market = [x.index_price if x.book_price is None else x.book_price for x in inputs]
        native = float(market[self._native_index])
        self._chain.advance(ts_ns, native)
        if self._last_ts >= 0 and self._flagged.size:
            dt_s = (ts_ns - self._last_ts) / NS_PER_S
            self.liquidatable_account_seconds += dt_s * self._flagged.size
        self._last_ts = ts_ns
        p_list = [1.0 if j < 0 else oracle[j] for j in self._asset_of_list]
        p = np.array(p_list)
        pm = np.array([1.0 if j < 0 else market[j] for j in self._asset_of_list])
        count, notional = 0, 0.0
        flow = np.zeros(len(self._assets))
        # The same oracle prices on the same state give the same accounts and plans (oracles
        # move on heartbeats and deviations, not every step): reuse them.
        key = (tuple(p_list), self._version)
        found = None
        if key == self._memo_key:
            liquidatable = self._flagged
        else:
            self._memo_key, self._memo_plan = key, None
            if self._inner_ref is not None and self._touched.size <= _TOUCHED_LIMIT:
                found = self._narrowed_step(p, pm)
            if found is None:
                liquidatable = self._liquidatable(p_list)
        self._price = p
        if found is not None:  # searched, flagged and planned up to the keepers (.step_nb)
            n_ok, self._flagged, best, oldest = found
            count, notional = keepers_pass(
                self, self._flagged, p, pm, native, flow, ts_ns, n_ok, best, oldest
            )
        else:
            if liquidatable.size or self._flagged.size:
                self._flag(liquidatable)
            if liquidatable.size:
                count, notional = self._liquidate(liquidatable, p, pm, native, flow, ts_ns)
        return VenueStep(
            ts_ns=ts_ns,
            liquidations=count,
            liquidated_notional=notional,
            forced_flow=dict(zip(self._assets, flow.tolist(), strict=True)),
            solvency=self._lines,
        )

    def quiet_steps(self, path: QuietPath) -> int:
        """Leading quiet steps of ``path`` (``protocols/aave/quiet.py``); changes nothing."""
        return _quiet_mod.quiet_steps(self, path, touched_limit=_TOUCHED_LIMIT)

    def advance_quiet(self, path: QuietPath) -> None:
        """Take the quiet steps of ``path`` as one step each would (``protocols/aave/quiet.py``)."""
        _quiet_mod.advance_quiet(self, path)

    def liquidation_levels(self) -> pd.DataFrame:
        """Per borrowing account, the price of its largest priced collateral asset (or, with
        only quote collateral, of its largest priced debt asset) at which ``HF = 1``, the
        other prices fixed (§A6); NaN where no such positive price exists."""
        a_count = len(self._assets)
        owing = np.flatnonzero(self._d.sum(axis=1) > 0.0)
        if a_count == 0 or owing.size == 0:
            return pd.DataFrame({c: [] for c in LIQUIDATION_LEVEL_COLUMNS})
        c, d, p = self._c[owing], self._d[owing], self._price
        member = np.zeros((len(p), a_count))
        priced = np.flatnonzero(self._asset_of >= 0)
        member[priced, self._asset_of[priced]] = 1.0
        asset_price = np.zeros(a_count)
        asset_price[self._asset_of[priced]] = p[priced]
        lt_eff = np.where(self._lt > 0.0, self._lt, 0.0)
        coll_value = pla.matmul(c * p, member)
        debt_value = pla.matmul(d * p, member)
        has_coll = coll_value.max(axis=1) > 0.0
        driver = np.where(has_coll, coll_value.argmax(axis=1), debt_value.argmax(axis=1))
        rows = np.arange(owing.size)
        weighted_tokens = pla.matmul(c * lt_eff, member)[rows, driver]
        debt_tokens = pla.matmul(d, member)[rows, driver]
        pa = asset_price[driver]
        other_coll = (c * p * lt_eff).sum(axis=1) - weighted_tokens * pa
        other_debt = (d * p).sum(axis=1) - debt_tokens * pa
        denominator = weighted_tokens - debt_tokens
        with np.errstate(divide="ignore", invalid="ignore"):
            level = (other_debt - other_coll) / denominator
        level = np.where((denominator != 0.0) & (level > 0.0) & np.isfinite(level), level, np.nan)
        size = pla.matmul(c - d, member)[rows, driver]
        return pd.DataFrame(
            {
                "asset": np.array(self._assets, dtype=object)[driver],
                "account": owing,
                "size": size,
                "notional": np.abs(size) * pa,
                "liquidation_price": level,
            },
            columns=list(LIQUIDATION_LEVEL_COLUMNS),
        )

    # -- accounts as a trader sees them (a world's trader channel) ---------------------

    @property
    def quote_reserve(self) -> int | None:
        """Index of the first reserve priced 1 (no asset: the quote stablecoin), else None."""
        found = np.flatnonzero(self._asset_of < 0)
        return int(found[0]) if found.size else None

    def account_values(self, accounts: IntArray) -> tuple[FloatArray, FloatArray, FloatArray]:
        """Collateral value ``C``, threshold-weighted collateral ``W = sum c p LT`` and debt
        value ``D`` of each account at the last oracle prices (quote; ``HF = W / D``)."""
        p = self._price
        c, d = self._c[accounts], self._d[accounts]
        lt = np.where(self._lt > 0.0, self._lt, 0.0)
        return _dot_rows(c, p), _dot_rows(c, p * lt), _dot_rows(d, p)

    def withdrawable_quote(self, account: int) -> float:
        """Quote collateral the account may withdraw now: its quote-reserve collateral, at
        most what leaves ``HF >= 1`` (``(W - D) / LT_q``; Aave's withdraw check,
        ``validateHFAndLtv``); all of it when it owes nothing."""
        q = self.quote_reserve
        if q is None:
            return 0.0
        held = float(self._c[account, q])
        _, weighted, owed = (float(x[0]) for x in self.account_values(np.array([account])))
        if owed <= 0.0:
            return held
        lt = float(self._lt[q])
        if weighted <= owed:
            return 0.0
        return held if lt <= 0.0 else min(held, (weighted - owed) / lt)

    def repay_and_supply(self, account: int, amount: float, *, ts_ns: int) -> None:
        """The trader brings ``amount`` quote: it repays the account's quote-reserve debt
        first, and supplies the rest as quote-reserve collateral (a ``DEPOSIT`` row)."""
        q = self._wallet_check(account, amount, "amount")
        owed = float(self._d[account, q])
        repaid = min(owed, amount)
        self._d[account, q] = owed - repaid if repaid < owed else 0.0
        self._c[account, q] += amount - repaid
        self._changed(account, ts_ns, EventKind.DEPOSIT, amount, q)

    def withdraw_quote(self, account: int, amount: float, *, ts_ns: int) -> None:
        """Withdraw ``amount`` of quote-reserve collateral (refused beyond
        :meth:`withdrawable_quote`; a ``WITHDRAWAL`` row)."""
        q = self._wallet_check(account, amount, "amount")
        allowed = self.withdrawable_quote(account)
        if amount > allowed * (1.0 + 1e-12) + 1e-12:
            raise ValidationError(
                "amount", amount, f"must be <= the withdrawable quote collateral ({allowed})"
            )
        self._c[account, q] = max(float(self._c[account, q]) - amount, 0.0)
        self._changed(account, ts_ns, EventKind.WITHDRAWAL, amount, q)

    def _wallet_check(self, account: int, amount: float, field: str) -> int:
        q = self.quote_reserve
        if q is None:
            raise ValidationError("reserves", "no quote reserve", "must include one to move cash")
        if not 0 <= account < self._c.shape[0]:
            raise ValidationError("account", account, f"must be in [0, {self._c.shape[0]})")
        if not (math.isfinite(amount) and amount >= 0.0):
            raise ValidationError(field, amount, "must be finite and >= 0")
        return q

    def _changed(self, account: int, ts_ns: int, kind: EventKind, amount: float, q: int) -> None:
        # The account left the sorted reference: keep it aside with its reference health
        # (the quiet-step bound stays exact, docs/formulas.md §A6), and plans are stale.
        self._version += 1
        self._moved()
        if self._ref is not None:
            self._touch(np.array([account], dtype=np.int64))
        self._journal.append_columns(
            kind, ts_ns, account=np.array([account]), amount=np.array([amount]),
            market=np.array([q], dtype=np.int32),
        )  # fmt: skip

    def _moved(self) -> None:
        # The state changes: the quiet walks' findings are of the state before.
        self._epoch += 1
        self._walks = None

    # -- the risk step ------------------------------------------------------------------

    def _health(self, idx: IntArray | None, p: FloatArray) -> FloatArray:
        weights = p * np.where(self._lt > 0.0, self._lt, 0.0)
        if idx is not None:  # a few rows: one compiled pass, the same bits (.health_nb)
            return health_rows_nb(self._c, self._d, idx, weights, p)
        c, d = self._c, self._d
        weighted, owed = _dot_rows(c, weights), _dot_rows(d, p)
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.where(owed > 0.0, weighted / np.where(owed > 0.0, owed, 1.0), np.inf)

    def _under_now(self, candidates: IntArray, p: FloatArray) -> IntArray:
        # The candidates under HF 1 at ``p``, most distressed first, ties by account (the full
        # pass's order), in one compiled call (.health_nb).
        weights = p * np.where(self._lt > 0.0, self._lt, 0.0)
        return under_rows_nb(self._c, self._d, candidates, weights, p)

    def _touch(self, acc: IntArray) -> None:
        # Changed accounts: their health at the reference prices (and at the narrowed
        # index's), kept aside from the sorted ones.
        assert self._ref is not None
        self._touched = np.concatenate([self._touched, acc])
        self._touched_hf = np.concatenate([self._touched_hf, self._health(acc, self._ref)])
        self._update_floor()
        if self._inner_ref is not None:
            hf = self._health(acc, np.array(self._inner_ref))
            self._inner_touched = np.concatenate([self._inner_touched, acc])
            self._inner_touched_hf = np.concatenate([self._inner_touched_hf, hf])
            self._inner_floor = min(self._inner_floor, float(hf.min()))
            at = np.flatnonzero(np.isin(self._inner_order, acc))
            self._inner_c[at] = self._c[self._inner_order[at]]
            self._inner_d[at] = self._d[self._inner_order[at]]

    def _full_pass(self, p: FloatArray) -> IntArray:
        hf = self._health(None, p)
        self._inner_ref = None
        self._ref = p.copy()
        self._ref_list = p.tolist()
        self._hf_order = np.argsort(hf)
        self._hf_sorted = hf[self._hf_order]
        self._touched = np.empty(0, dtype=np.int64)
        self._touched_hf = np.empty(0)
        self._update_floor()
        below = int(np.searchsorted(self._hf_sorted, 1.0, side="left"))
        under = self._hf_order[:below]
        # Most distressed first, ties by account.
        return under[np.lexsort((under, hf[under]))]

    def _liquidatable(self, p_list: list[float]) -> IntArray:
        # Accounts under HF 1 now, most distressed first (§A6's bound, then exact values).
        if self._ref is None or self._touched.size > _TOUCHED_LIMIT:
            return self._full_pass(np.array(p_list))
        ratio = [x / r for x, r in zip(p_list, self._ref_list, strict=True)]
        bound = max(ratio) / min(ratio)
        if bound <= self._hf_floor:
            return _NONE
        if self._inner_ref is not None:
            if bound <= self._inner_limit:
                return self._inner_liquidatable(p_list)
            self._inner_ref = None
        p = np.array(p_list)
        k = int(np.searchsorted(self._hf_sorted, bound, side="left"))
        if k == 0 and self._touched.size == 0:
            return _NONE
        extra = self._touched[self._touched_hf < bound]
        if k + extra.size > self._full_pass_limit:
            return self._full_pass(p)
        candidates = np.union1d(self._hf_order[:k], extra) if extra.size else self._hf_order[:k]
        under = self._under_now(candidates, p)
        if candidates.size > 4 * under.size + self._narrow_slack:
            self._narrow(p_list, bound)
        return under

    def _narrow(self, p_list: list[float], bound: float) -> None:
        # The outer bound admits many more accounts than are under water (prices moved far
        # from the full pass, e.g. after a crash): sort those it would admit up to a margin
        # above ``bound`` again at the prices now. While the outer bound stays within that
        # margin no one else can be under 1, and the inner bound (ratios to the prices now)
        # admits only those near 1 now (§A6 applied twice).
        limit = bound * _NARROW_MARGIN
        k = int(np.searchsorted(self._hf_sorted, limit, side="left"))
        extra = self._touched[self._touched_hf < limit]
        if k + extra.size > self._full_pass_limit:
            return
        admitted = np.union1d(self._hf_order[:k], extra) if extra.size else self._hf_order[:k]
        hf = self._health(admitted, np.array(p_list))
        order = np.argsort(hf, kind="stable")
        self._inner_ref, self._inner_limit = list(p_list), limit
        self._inner_order, self._inner_sorted = admitted[order], hf[order]
        self._inner_c = np.ascontiguousarray(self._c[self._inner_order])
        self._inner_d = np.ascontiguousarray(self._d[self._inner_order])
        self._inner_touched = np.empty(0, dtype=np.int64)
        self._inner_touched_hf = np.empty(0)
        self._inner_floor = float(hf[order[0]]) if hf.size else math.inf

    def _inner_liquidatable(self, p_list: list[float]) -> IntArray:
        assert self._inner_ref is not None
        ratio = [x / r for x, r in zip(p_list, self._inner_ref, strict=True)]
        bound = max(ratio) / min(ratio)
        if bound <= self._inner_floor:
            return _NONE
        k = int(np.searchsorted(self._inner_sorted, bound, side="left"))
        extra = self._inner_touched[self._inner_touched_hf < bound]
        if k == 0 and extra.size == 0:
            return _NONE
        head = self._inner_order[:k]
        candidates = np.union1d(head, extra) if extra.size else head
        return self._under_now(candidates, np.array(p_list))

    def _update_floor(self) -> None:
        # The least reference health factor of anyone: no price ratio below it can matter.
        floor = float(self._hf_sorted[0]) if self._hf_sorted.size else math.inf
        if self._touched_hf.size:
            floor = min(floor, float(self._touched_hf.min()))
        self._hf_floor = floor

    def _flag(self, liquidatable: IntArray) -> None:
        block = self._chain.block
        if self._flagged.size:
            # Those flagged before and not now (a scratch mask: no sort of either set).
            mark = self._mark
            mark[liquidatable] = True
            cleared = self._flagged[~mark[self._flagged]]
            mark[liquidatable] = False
            self._since[cleared] = -1
        fresh = liquidatable[self._since[liquidatable] < 0]
        self._since[fresh] = block
        self._flagged = liquidatable

    def _narrowed_step(
        self, p: FloatArray, pm: FloatArray
    ) -> tuple[int, IntArray, float, int] | None:
        # The search on the narrowed index, the flags and the plans' skip-bound figures in
        # one compiled call (.step_nb); None (nothing changed) when the index no longer serves.
        assert self._ref is not None
        assert self._inner_ref is not None
        n_ok, under, best, oldest = narrowed_step_nb(
            self._c, self._d, self._lt_weight, self._lt, self._bonus, self._fee,
            self._plan_constants, LIQUIDATABLE, p, pm, self._ref, self._hf_floor,
            np.array(self._inner_ref), self._inner_limit, self._inner_floor, self._inner_sorted,
            self._inner_order, self._inner_c, self._inner_d, self._inner_touched,
            self._inner_touched_hf, self._flagged,
            self._since, self._chain.block,
        )  # fmt: skip
        return None if n_ok == DROPPED else (n_ok, under, best, oldest)

    def _plan(
        self, accounts: IntArray, p: FloatArray
    ) -> tuple[LiquidationPlan, IntArray, IntArray]:
        # liquidationCall on the largest collateral and debt reserves, as much as the close
        # factor and the data provider allow: math.liquidation_plan row by row in one compiled
        # pass (the same bits, .plan_nb); kept for the step's prices and state.
        if self._memo_plan is None:
            health, most, repaid, seized, fee, status, deficit, coll_reserve, debt_reserve = (
                plan_rows_nb(
                    self._c, self._d, accounts, p, self._lt, self._bonus, self._fee,
                    *self._plan_constants.tolist(),
                )
            )  # fmt: skip
            plan = LiquidationPlan(
                health, most, LiquidationAmounts(repaid, seized, fee), status, deficit
            )
            self._memo_plan = (plan, coll_reserve, debt_reserve)
        return self._memo_plan

    def _liquidate(
        self,
        accounts: IntArray,
        p: FloatArray,
        pm: FloatArray,
        native: float,
        flow: FloatArray,
        ts_ns: int,
    ) -> tuple[int, float]:
        plan, coll_reserve, debt_reserve = self._plan(accounts, p)
        n_ok, best, oldest = best_opportunity_nb(
            plan.status, plan.amounts.debt_repaid, plan.amounts.collateral_seized,
            plan.amounts.protocol_fee, coll_reserve, debt_reserve, pm, self._since, accounts,
            LIQUIDATABLE,
        )  # fmt: skip
        return keepers_pass(self, accounts, p, pm, native, flow, ts_ns, n_ok, best, oldest)


def _dot_rows(matrix: FloatArray, weights: FloatArray) -> FloatArray:
    # Column by column: a row's value never depends on which other rows are evaluated with it
    # (the quiet path and the full pass agree to the bit), and it is fast for few columns.
    out: FloatArray = matrix[:, 0] * weights[0]
    for r in range(1, matrix.shape[1]):
        out = out + matrix[:, r] * weights[r]
    return out


def build_aave(
    config: AaveConfig,
    population: AavePopulation | None = None,
    *,
    prices: Mapping[str, float],
    seed: int = 0,
    chain: Chain | None = None,
    keepers: Keepers | None = None,
) -> AaveVenue:
    """Build an :class:`AaveVenue` (the world's entry): with ``population`` None, its accounts
    are drawn by :func:`aave_population` from ``config.population`` at ``prices`` with
    ``seed``."""
    if population is None:
        population = aave_population(config, seed=seed, prices=prices)
    return AaveVenue(config, population, prices=prices, chain=chain, keepers=keepers)
