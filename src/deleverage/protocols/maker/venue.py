"""The Maker venue: one collateral type's vaults, liquidated by keepers through auctions.

:class:`MakerVenue` implements :class:`deleverage.venues.protocol.Venue`. State is a struct of
arrays, one index per vault (``ink`` collateral, ``art`` normalized debt), with one ``rate``,
``mat``, ``dust`` and ``chop`` for the collateral type. Each :meth:`MakerVenue.step`:

1. advances the chain with the collateral's price (a no-op when a world has already advanced a
   shared chain with the native token's price at this time; gas is paid at the chain's native
   price) and credits keepers' due
   sale proceeds; the gas of the keepers' transactions of the step is queued on the chain
   (:meth:`~deleverage.protocols.chain.Chain.submit`), so liquidations congest later blocks;
2. reads the OSM (:class:`~deleverage.protocols.maker.osm.Osm`): the price the system uses is
   the oracle price published an hour earlier;
3. **quiet path**: when no auction or debt auction runs and the highest liquidation price of an
   open vault (``art x rate x mat / ink``; sorted once, unchanged by partial liquidations since
   they scale ``ink`` and ``art`` alike) is at or below both the OSM price and the market
   price, nothing can happen: it returns at once;
4. otherwise, vaults below the OSM price are barked (``design = "dutch"``: Dog.bark, a Clipper
   sale, the ``tip + chip x tab`` incentive) or bitten (``"english"``: Cat.bite, a Flipper
   auction), most distressed first, each by a keeper for whom it pays
   (:meth:`deleverage.protocols.keepers.Keepers.act`), within ``Hole``/``hole`` (or ``box``);
5. runs the auctions (:mod:`.clipper` or :mod:`.flipper`) and the Vow (:mod:`.vow`): the
   collateral keepers receive is sold into the market at once, the **forced flow**.

Vaults that are unsafe at the market price but not yet liquidated (the oracle's delay, keepers'
latency, limits) count as under-collateralized time (vault-seconds and DAI-seconds of debt).
The solvency lines: ``fund_balance`` is the Vow's surplus, ``insurance_paid`` what the surplus
absorbed, ``socialized_loss`` what debt auctions raised (MKR dilution), ``bad_debt`` what is
still uncovered when :meth:`MakerVenue.close` is called (backstop and ADL lines stay 0).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd

from deleverage.engine.events import Journal
from deleverage.errors import ValidationError
from deleverage.protocols.chain import Chain, gas_cost_quote
from deleverage.protocols.keepers import Keepers
from deleverage.protocols.maker import math as mk
from deleverage.protocols.maker import quiet as _quiet_mod
from deleverage.protocols.maker.actions import (
    NEAR_ZERO_RATIO,
    ActionLog,
    MakerAction,
    SaleLog,
    StepContext,
    record_bad_debt,
)
from deleverage.protocols.maker.bark_nb import bark_prefix_nb
from deleverage.protocols.maker.clipper import Clipper
from deleverage.protocols.maker.config import MakerConfig, MakerPopulation
from deleverage.protocols.maker.flipper import Flipper
from deleverage.protocols.maker.open_vaults import OpenVaults
from deleverage.protocols.maker.osm import Osm
from deleverage.protocols.maker.vow import Vow
from deleverage.venues.protocol import (
    LIQUIDATION_LEVEL_COLUMNS,
    PriceInputs,
    QuietPath,
    SolvencyLines,
    VenueStep,
    check_price_inputs,
)

__all__ = ["MakerVenue", "build_maker"]

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
NS_PER_S = 1_000_000_000


class MakerVenue:
    """A Maker collateral type as a :class:`~deleverage.venues.protocol.Venue` (module doc)."""

    def __init__(
        self, config: MakerConfig, population: MakerPopulation, *, chain: Chain | None = None
    ) -> None:
        ink = np.array(population.ink, dtype=np.float64)
        art = np.array(population.art, dtype=np.float64)
        if ink.ndim != 1 or ink.shape != art.shape:
            raise ValidationError(
                "population", (ink.shape, art.shape), "must be two equal 1-d arrays"
            )
        for field, values in (("population.ink", ink), ("population.art", art)):
            bad = ~np.isfinite(values) | (values < 0.0)
            if bad.any():
                i = int(np.flatnonzero(bad)[0])
                raise ValidationError(f"{field}[{i}]", float(values[i]), "must be finite and >= 0")
        self.config = config
        self.ink, self.art = ink, art
        self.rate = config.rate
        self.chain = chain if chain is not None else Chain(config.chain)
        #: Whether nobody else advances the chain (quiet steps through a sale need its gas).
        self._own_chain = chain is None
        self.keepers = Keepers(config.keepers)
        self.osm = Osm(delay_s=config.osm_delay_s)
        self.vow = Vow(config.vow)
        self.clipper = Clipper(config.clipper, dust=config.dust, chop=config.chop)
        self.flipper = Flipper(config.flipper)
        self.sales = SaleLog()
        self._journal = Journal()
        self._log = ActionLog()
        self._name, self._assets = config.name, (config.asset,)
        p_liq = mk.liquidation_price(ink, art, self.rate, config.mat)
        p_liq = np.where(np.isnan(p_liq), 0.0, p_liq)
        #: Vault indices by liquidation price, highest first (static: a partial liquidation
        #: scales ``ink`` and ``art`` alike).
        self._by_trigger = np.argsort(-p_liq, kind="stable")
        self._trigger_sorted = p_liq[self._by_trigger]
        self._minus_trigger = -self._trigger_sorted  # ascending, for binary searches
        self._open = OpenVaults(self._by_trigger, art)
        self._unsafe_block = np.full(ink.shape, -1, dtype=np.int64)
        self._stamped = 0  # every open vault of a lower rank has its first unsafe block
        self._last_ts = 0
        self._zero_flow = {config.asset: 0.0}
        self.osm_price = math.nan
        self.market_price = math.nan
        #: Cumulative vault-seconds and DAI-seconds of debt of vaults unsafe at the market
        #: price but not (yet) liquidated.
        self.undercollateralized_vault_s = 0.0
        self.undercollateralized_debt_s = 0.0
        self.barks = 0
        #: Plan the barks in one compiled pass (§M10; ``False``: the scalar loop over
        #: every unsafe vault, the reference of the twin tests).
        self.fast_bark = True
        self.collateral_sold = 0.0
        self.closed = False

    # -- the Venue protocol ----------------------------------------------------------------

    @property
    def name(self) -> str:
        """The venue's name."""
        return self._name

    @property
    def assets(self) -> tuple[str, ...]:
        """The collateral asset, the one price the venue reads."""
        return self._assets

    def journal(self) -> Journal:
        """The venue's journal (Maker actions as notices, :mod:`.actions`)."""
        return self._journal

    def solvency(self) -> SolvencyLines:
        """The Vow's lines (module docstring)."""
        vow = self.vow
        return SolvencyLines(
            fund_balance=vow.joy,
            insurance_paid=vow.insurance_paid,
            backstop_loss=0.0,
            adl_loss=0.0,
            socialized_loss=vow.socialized_loss,
            bad_debt=vow.bad_debt,
        )

    def liquidation_levels(self) -> pd.DataFrame:
        """Open vaults (``art > 0``) and the oracle price below which each is unsafe."""
        open_ = np.flatnonzero(self.art > 0.0)
        price = self.market_price if math.isfinite(self.market_price) else np.nan
        return pd.DataFrame(
            {
                "asset": self.config.asset,
                "account": open_.astype(np.int64),
                "size": self.ink[open_],
                "notional": self.ink[open_] * price if math.isfinite(price) else 0.0,
                "liquidation_price": mk.liquidation_price(
                    self.ink[open_], self.art[open_], self.rate, self.config.mat
                ),
            },
            columns=list(LIQUIDATION_LEVEL_COLUMNS),
        )

    def step(self, prices: Mapping[str, PriceInputs], *, ts_ns: int) -> VenueStep:
        """Read the collateral's prices at ``ts_ns`` and run the liquidation machinery."""
        check_price_inputs(prices, self._assets, ts_ns=ts_ns, last_ts_ns=self._last_ts)
        if self.closed:
            raise ValidationError("step", self._name, "must not be called after close()")
        inputs = prices[self.config.asset]
        market = inputs.index_price
        self.chain.advance(ts_ns, market)  # a no-op if a world advanced the shared chain
        block = self.chain.block_at(ts_ns)  # (both refuse a time before the chain's, unchanged)
        dt_s = (ts_ns - self._last_ts) / NS_PER_S if math.isfinite(self.market_price) else 0.0
        self._last_ts = ts_ns
        self.keepers.settle(block)
        osm = self.osm.read(ts_ns, inputs.oracle)
        self.osm_price, self.market_price = osm, market
        top = self._highest_trigger()
        busy = self.clipper.sales or self.flipper.flips or self.vow.flops
        if not busy and top <= min(osm, market):
            return VenueStep(ts_ns, 0, 0.0, dict(self._zero_flow), self.solvency())
        if top > market and dt_s > 0.0:
            self._count_undercollateralized(market, dt_s)
        gas_price, native = self.chain.gas_price_gwei, self.chain.native_price
        ctx = StepContext(
            ts_ns=ts_ns,
            block=block,
            feed_price=osm,
            market_price=market,
            gas_price_gwei=gas_price,
            gas_cost=gas_cost_quote(self.keepers.gas_units, gas_price, native),
            depth=self.config.market_depth,
            native_price=native,
        )
        paid_before = float(self.keepers.gas_paid.sum())
        count, notional = self._liquidate(ctx) if top > osm else (0, 0.0)
        auctions = self.clipper if self.config.design == "dutch" else self.flipper
        sold = auctions.run(ctx, self.keepers, self.vow, self._log, self.sales)
        for action, dai, mkr in self.vow.step(ts_ns):
            code = {
                "flop_kick": MakerAction.FLOP_KICK,
                "flop_tick": MakerAction.FLOP_TICK,
                "flop_deal": MakerAction.FLOP_DEAL,
            }[action]
            self._log.add(code, dai=dai, mkr=mkr)
        self._log.flush(self._journal, ts_ns)
        # The keepers' transactions queue for block space (congestion raises the next fees).
        paid = float(self.keepers.gas_paid.sum()) - paid_before
        if paid > 0.0 and gas_price > 0.0:
            self.chain.submit(paid / (gas_price * 1e-9 * native))
        self.collateral_sold += sold
        flow = {self.config.asset: -sold if sold > 0.0 else 0.0}
        return VenueStep(ts_ns, count, notional, flow, self.solvency())

    def quiet_steps(self, path: QuietPath) -> int:
        """Leading quiet steps of ``path`` (``protocols/maker/quiet.py``); changes nothing."""
        return _quiet_mod.quiet_steps(self, path)

    def advance_quiet(self, path: QuietPath) -> None:
        """Take the quiet steps of ``path`` as one step each would (``maker/quiet.py``)."""
        _quiet_mod.advance_quiet(self, path)

    # -- beyond the protocol ---------------------------------------------------------------

    def close(self, *, ts_ns: int | None = None) -> float:
        """End the run: declare the Vow's uncovered system debt as bad debt; return it."""
        if self.closed:
            return 0.0
        amount = self.vow.close()
        if amount > 0.0:
            record_bad_debt(
                self._journal, ts_ns=self._last_ts if ts_ns is None else ts_ns, amount=amount
            )
        self.closed = True
        return amount

    def summary(self) -> dict[str, Any]:
        """Totals of the run so far (DAI unless named otherwise)."""
        vow, lines = self.vow, self.solvency()
        frame = self.sales.frame()
        auctions = self.clipper.kicks if self.config.design == "dutch" else self.flipper.kicks
        totals: dict[str, Any] = {
            "design": self.config.design,
            "vaults": int(self.ink.size),
            "open_vaults": int(np.count_nonzero(self.art > 0.0)),
            "auctions": auctions,
            "running_auctions": len(self.clipper.sales) + len(self.flipper.flips),
            # Debt of running auctions not raised yet, backed by the lots still on sale: not a
            # loss until an auction ends short (then it lands on a solvency line).
            "running_auction_debt": sum(max(0.0, a.due - a.raised) for a in self.clipper.sales)
            + sum(max(0.0, f.due - f.bid) for f in self.flipper.flips),
            "running_auction_collateral": sum(a.lot for a in self.clipper.sales)
            + sum(f.lot for f in self.flipper.flips),
            "redos": self.clipper.redos,
            "ticks": self.flipper.ticks,
            "sales": len(frame),
            "near_zero_sales": int((frame["price_ratio"] < NEAR_ZERO_RATIO).sum()),
            "collateral_sold": self.collateral_sold,
            "dai_raised": float(frame["dai"].sum()) if len(frame) else 0.0,
            "auction_deficits": vow.auction_deficits,
            "penalty_income": vow.penalty_income,
            "keeper_incentives": vow.incentives_paid,
            "surplus": vow.joy,
            "pending_system_debt": vow.pending,
            "insurance_paid": lines.insurance_paid,
            "debt_auctions_kicked": vow.flops_kicked,
            "debt_auctions_settled": vow.flops_settled,
            "mkr_minted": vow.mkr_minted,
            "socialized_loss": lines.socialized_loss,
            "bad_debt": lines.bad_debt,
            "undercollateralized_vault_s": self.undercollateralized_vault_s,
            "undercollateralized_debt_s": self.undercollateralized_debt_s,
            "keeper_capital": float(self.keepers.capital.sum()),
            "keeper_gas_paid": float(self.keepers.gas_paid.sum()),
        }
        return {k: float(v) if isinstance(v, np.floating) else v for k, v in totals.items()}

    # -- internals -------------------------------------------------------------------------

    def _highest_trigger(self) -> float:
        first = self._open.first_rank()
        return float(self._trigger_sorted[first]) if first >= 0 else 0.0

    def _unsafe_end(self, price: float) -> int:
        # Sorted descending: the vaults whose trigger is above ``price`` form a prefix.
        return int(np.searchsorted(self._minus_trigger, -price, side="left"))

    def _unsafe_prefix(self, price: float) -> npt.NDArray[np.int64]:
        """Open vaults whose trigger is above ``price``, highest trigger first."""
        return self._open.vaults_before(self._unsafe_end(price))

    def _count_undercollateralized(self, market: float, dt_s: float) -> None:
        count, art = self._open.art_before(self._unsafe_end(market))
        self.undercollateralized_vault_s += count * dt_s
        self.undercollateralized_debt_s += art * self.rate * dt_s

    def _liquidate(self, ctx: StepContext) -> tuple[int, float]:
        """Bark (or bite) the vaults unsafe at the OSM price, most distressed first.

        The amounts are planned in order within the limits (``Hole``/``hole`` or ``box``),
        keepers then compete for all of them at once (one compiled pass,
        :meth:`~deleverage.protocols.keepers.Keepers.act`); a vault no keeper liquidates keeps
        its collateral and debt and is tried again next step (the room planned for it is
        released).
        """
        cfg = self.config
        spot = ctx.feed_price / cfg.mat
        dutch = cfg.design == "dutch"
        if dutch:
            room = min(cfg.dog.hole_global, cfg.dog.hole) - self.clipper.dirt
        else:
            room = cfg.flipper.box - self.flipper.litter
        lump = not dutch and cfg.flipper.cat == "lump"
        if lump:
            room = math.inf  # the launch Cat had no global limit
        fast = dutch and self.fast_bark
        end = self._unsafe_end(ctx.feed_price) if fast else 0
        if fast and room <= 0.0 and end <= self._stamped:
            # Hole/hole reached: every bark is refused (the walk plans none, §M9) and every
            # unsafe vault has its first unsafe block already: nothing changes.
            return 0, 0.0
        # Only an incentive above the cheapest keeper's gas can find a keeper: skip the rest.
        floor = float(ctx.gas_cost.min()) + float(self.keepers.min_profit.min())
        if fast:
            # One compiled pass: stamp the newly unsafe vaults and plan the barks (§M10).
            order, ranks, open_art = self._open.ranks_before(end)
            # Open vaults of rank below ``_stamped`` were stamped when it was set (none opens).
            first = ranks.size
            if end > self._stamped:
                first = int(np.searchsorted(ranks, self._stamped))
            self._stamped = max(self._stamped, end)
            clip = cfg.clipper
            plans = bark_prefix_nb(
                order, ranks, open_art, first, self._unsafe_block, ctx.block, self.ink, self.art,
                self.rate, spot, cfg.dust, cfg.chop, room, clip.tip, clip.chip, floor,
            )  # fmt: skip
        else:
            idx = self._unsafe_prefix(ctx.feed_price)
            fresh = self._unsafe_block[idx] < 0
            self._unsafe_block[idx[fresh]] = ctx.block
            plans = self._plan_each(idx, spot, room, floor, dutch=dutch, lump=lump)
        vaults, dart, dink, due, tab, coin = plans
        if not vaults.size:
            return 0, 0.0
        acts = self.keepers.act(
            block=ctx.block,
            seen_block=self._unsafe_block[vaults],
            incentive=coin,
            need=np.zeros(vaults.size),
            slippage=np.zeros(vaults.size),
            gas_price_gwei=ctx.gas_price_gwei,
            native_price=ctx.native_price,
        )
        won = np.flatnonzero(acts.winner >= 0)
        count, notional = 0, 0.0
        for i, d_art, d_ink, owed, tab_i, incentive, keeper in zip(
            vaults[won].tolist(), dart[won].tolist(), dink[won].tolist(), due[won].tolist(),
            tab[won].tolist(), coin[won].tolist(), acts.winner[won].tolist(), strict=True,
        ):  # fmt: skip
            self.ink[i] -= d_ink
            self.art[i] -= d_art
            if self.art[i] <= 0.0 or self.ink[i] <= 0.0:
                self.ink[i] = self.art[i] = 0.0
            if dutch:
                sale = self.clipper.kick(vault=i, tab=tab_i, lot=d_ink, due=owed, ctx=ctx)
                self.keepers.capital[keeper] += incentive
                self.vow.pay_incentive(incentive)
                auction, action = sale.id, MakerAction.BARK
            else:
                flip = self.flipper.kick(vault=i, tab=tab_i, lot=d_ink, due=owed, ctx=ctx)
                auction, action = flip.id, MakerAction.BITE
            self._log.add(
                action, vault=i, size=-d_ink, price=ctx.feed_price, penalty=tab_i - owed,
                auction=auction, keeper=keeper, due=owed, tab=tab_i,
            )  # fmt: skip
            self.barks += 1
            count += 1
            notional += d_ink * ctx.market_price
        self._open.update(vaults[won], self.art)
        return count, notional

    def _plan_each(
        self, idx: IntArray, spot: float, room: float, floor: float, *, dutch: bool, lump: bool
    ) -> tuple[IntArray, FloatArray, FloatArray, FloatArray, FloatArray, FloatArray]:
        """The barks (or bites) of one step, vault by vault in order (the reference of
        :func:`.bark_nb.plan_barks_nb`): vault, ``dart``, ``dink``, ``due``, ``tab`` and the
        keeper's incentive of each plan."""
        cfg = self.config
        plans: list[tuple[int, float, float, float, float, float]] = []
        for i in idx.tolist():
            if dutch:
                bark = mk.bark_amounts(
                    ink=self.ink[i], art=self.art[i], rate=self.rate, spot=spot, dust=cfg.dust,
                    chop=cfg.chop, global_room=room, ilk_room=room,
                )  # fmt: skip
                incentive = self.clipper.incentive(bark.tab)
            elif lump:
                bark = mk.bite_amounts_lump(
                    ink=self.ink[i], art=self.art[i], rate=self.rate, spot=spot, chop=cfg.chop,
                    lump=cfg.flipper.lump,
                )  # fmt: skip
            else:
                bark = mk.bite_amounts(
                    ink=self.ink[i], art=self.art[i], rate=self.rate, spot=spot, dust=cfg.dust,
                    chop=cfg.chop, dunk=cfg.flipper.dunk, room=room,
                )  # fmt: skip
            if not dutch:
                # The Cat pays no incentive: a keeper bites to bid, for the margin an auction whose
                # bids reach tab leaves (the penalty part of tab).
                incentive = bark.tab - bark.due
            if bark.refusal == mk.BarkRefusal.LIMIT_HIT:
                break
            if bark.refusal or incentive <= floor:
                continue
            plans.append((i, bark.dart, bark.dink, bark.due, bark.tab, incentive))
            room -= bark.tab
        vaults = np.array([p[0] for p in plans], dtype=np.int64)
        columns = np.array([p[1:] for p in plans], dtype=np.float64).reshape(len(plans), 5)
        dart, dink, due, tab, coin = (np.ascontiguousarray(columns[:, k]) for k in range(5))
        return vaults, dart, dink, due, tab, coin


def build_maker(
    config: MakerConfig, population: MakerPopulation, *, chain: Chain | None = None
) -> MakerVenue:
    """Build a :class:`MakerVenue` over ``population``.

    ``chain`` is a shared :class:`~deleverage.protocols.chain.Chain` (a world steps several
    venues on one chain); by default the venue builds its own from ``config.chain``.
    """
    return MakerVenue(config, population, chain=chain)
