"""The multi-venue world: assets, their shared markets, venues, traders and risk layers.

A :class:`World` steps any number of venues (anything implementing
:class:`~deleverage.venues.protocol.Venue`: order-book perps, oracle-pool perps, lending, CDPs)
through the same time grid. Each asset has a :class:`~deleverage.world.market.SharedMarket`
(price ``P = X (1 + D)``); a venue with its own book for an asset is tied to it by a
:class:`~deleverage.world.market.VenueLink` (book price ``B = P (1 + d)``). Each step ``k``::

    shared markets: decay, arbitrage toward X_k           -> moves credited to "market"
    venue links: decay, arbitrage toward P; the arbitrageurs' other leg lands in the shared
                 book                                      -> moves credited to the venue
    round r = 0, 1, ... (at most max_rounds):
        every venue steps on PriceInputs(index = P, oracle = P, book = B or P)
        layers.on_round(view); deficits -> layers.route_deficit
        each venue's forced flow: its own book (link) or, through layers.route_flow, the
        shared book                                        -> moves credited to the venue
        no flow anywhere: the step is over
    traders move collateral (SharedWallets, every interval_s); layers.on_step_end

The next round (or step) sees the moved prices. Two **channels** carry contagion and can be
cut for comparisons (:class:`Channels`): ``prices`` (a venue's forced flow reaches the shared
market other venues watch) and ``traders`` (traders rescue one account with collateral from
their others). Everything is deterministic given the inputs (the seeds live in the builders).

**Attribution by round** (docs/formulas.md §19.4): every log move of a price a venue reads is
credited to a source: ``market`` (the exogenous path and the rest of the market's arbitrage) or
the venue whose forced flow (directly or through its link's arbitrageurs) made it. The moves
made since venues last stepped are pending; the liquidations of venue ``B`` in a round are
shared among the sources in proportion to the pending moves that point the way the price went
(per asset: components of the same sign as the asset's total move; summed over the assets ``B``
watches), so liquidations in round ``r + 1`` on ``B`` after venue ``A``'s flow in round ``r``
moved the shared price are credited to ``A``. The **trader channel** comes first: a liquidated
account (its open notional fell in the round) that gave collateral to a sibling account on
venue ``A`` is credited to ``A`` (split by the amounts given), and only the rest of ``B``'s
round is shared by price moves.

The hook surface for risk layers (a clearinghouse, a cross-chain backstop, a cross-venue risk
oracle) is :class:`deleverage.world.hooks.RiskLayer`.
"""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from deleverage.errors import ValidationError
from deleverage.venues.protocol import PriceInputs, SolvencyLines, Venue, VenueStep
from deleverage.world.collateral import CollateralAccess
from deleverage.world.hooks import Deficit, RiskLayer, RoundView
from deleverage.world.market import SharedMarket, VenueLink
from deleverage.world.quiet import WorldQuiet, stretch_ends
from deleverage.world.result import WorldRecorder, WorldResult
from deleverage.world.traders import SharedWallets, TraderMap

__all__ = ["MARKET_SOURCE", "Channels", "ProgressCallback", "World", "WorldVenue"]

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
_NS = 1_000_000_000
#: The attribution source of exogenous moves (the path and the rest of the market).
MARKET_SOURCE = "market"
ProgressCallback = Callable[[int, int], None]
_Watched = tuple[IntArray, FloatArray, FloatArray]  # donors, gross size, exposure
_Key = tuple[str, str]  # (owner: "" for the shared market or the venue of a private copy, asset)
#: A NamedTuple built without its Python-level ``__new__`` (every field given): the round
#: builds a ``PriceInputs`` per venue and asset and a ``RoundView``.
_tuple_new = tuple.__new__


@dataclass(frozen=True)
class Channels:
    """Which contagion channels are open: ``prices`` (forced flow reaches the shared market)
    and ``traders`` (traders move collateral between venues)."""

    prices: bool = True
    traders: bool = True


@dataclass
class WorldVenue:
    """A venue in a world: the venue, its links (own books) per asset, its collateral access
    (None: traders cannot move collateral there) and its kind (for reports)."""

    venue: Venue
    links: dict[str, VenueLink] = field(default_factory=dict)
    collateral: CollateralAccess | None = None
    kind: str = "venue"


class World:
    """Assets, shared markets, venues, traders and risk layers on one time grid.

    Parameters
    ----------
    markets
        One shared market per asset (their exogenous paths all have ``n_steps + 1`` points).
    venues
        The venues, names unique; each watches assets of ``markets``.
    dt_s, start_ns
        The grid: step ``k`` is at ``start_ns + k dt_s``.
    traders
        Who holds which account where (default: nobody mapped).
    wallets
        The trader channel (None: traders never move collateral).
    channels
        Open channels (cut one to measure what it carries).
    max_rounds
        Most rounds in one step.
    layers
        Risk layers (:class:`~deleverage.world.hooks.RiskLayer`), called in order.
    """

    def __init__(
        self,
        markets: Sequence[SharedMarket],
        venues: Sequence[WorldVenue],
        *,
        dt_s: float,
        start_ns: int,
        traders: TraderMap | None = None,
        wallets: SharedWallets | None = None,
        channels: Channels = Channels(),
        max_rounds: int = 20,
        layers: Sequence[RiskLayer] = (),
    ) -> None:
        if not markets:
            raise ValidationError("markets", [], "must hold at least one asset")
        if not venues:
            raise ValidationError("venues", [], "must hold at least one venue")
        self.markets = {m.asset: m for m in markets}
        if len(self.markets) != len(markets):
            raise ValidationError(
                "markets", [m.asset for m in markets], "must name distinct assets"
            )
        lengths = {len(m.exogenous) for m in markets}
        if len(lengths) != 1:
            raise ValidationError("markets", sorted(lengths), "must share one grid length")
        self.n_steps = lengths.pop() - 1
        self.entries = {v.venue.name: v for v in venues}
        if len(self.entries) != len(venues):
            raise ValidationError(
                "venues", [v.venue.name for v in venues], "must have distinct names"
            )
        for name, entry in self.entries.items():
            for asset in (*entry.venue.assets, *entry.links):
                if asset not in self.markets:
                    raise ValidationError(
                        f"venues.{name}.assets",
                        asset,
                        f"must be an asset of the world {list(self.markets)}",
                    )
        if not (isinstance(max_rounds, int) and 1 <= max_rounds <= 1000):
            raise ValidationError("max_rounds", max_rounds, "must be an integer in [1, 1000]")
        if not (math.isfinite(dt_s) and dt_s > 0):
            raise ValidationError("dt_s", dt_s, "must be a finite number > 0")
        self.dt_s = dt_s
        self.start_ns = start_ns
        self.traders = traders if traders is not None else TraderMap()
        self.wallets = wallets
        self.channels = channels
        self.max_rounds = max_rounds
        self.layers: list[RiskLayer] = list(layers)
        self.step_index = 0
        self.round_index = 0
        self.ts_ns = start_ns
        self.absorbed = dict.fromkeys(self.entries, 0.0)
        self._last_lines = {n: e.venue.solvency() for n, e in self.entries.items()}
        self.sources = (MARKET_SOURCE, *self.entries)
        self._source_index = {s: i for i, s in enumerate(self.sources)}
        # With the price channel cut, each venue trades on a private copy of each shared
        # market (its own flow moves only the price it sees); the public market then takes
        # nobody's flow.
        self._books: dict[_Key, SharedMarket] = {("", a): m for a, m in self.markets.items()}
        if not channels.prices:
            for name, entry in self.entries.items():
                for asset in {*entry.venue.assets, *entry.links}:
                    self._books[(name, asset)] = copy.deepcopy(self.markets[asset])
        self._owner = {name: "" if channels.prices else name for name in self.entries}
        self._pending: dict[_Key, dict[str, float]] = {key: {} for key in self._books}
        # What each venue reads, and every link, resolved once (the loop runs per round).
        self._reads = {
            name: [
                (asset, self._books[(self._owner[name], asset)], entry.links.get(asset))
                for asset in entry.venue.assets
            ]
            for name, entry in self.entries.items()
        }
        self._links = [
            (name, asset, link, (self._owner[name], asset))
            for name, entry in self.entries.items()
            for asset, link in entry.links.items()
        ]
        self._pending_link: dict[tuple[str, str], float] = {}
        self._link_gross: dict[tuple[str, str], float] = {}
        # What each venue last stepped on, and its last step.
        self._last_inputs: dict[str, dict[str, PriceInputs]] = {}
        self._last_steps: dict[str, VenueStep] = {}
        self._book_list = list(self._books.items())
        self._market_list = list(self.markets.items())
        self._venue_list = list(self.entries.items())
        self._stepping = [(name, entry, self._reads[name]) for name, entry in self._venue_list]
        self.recorder = WorldRecorder(self)
        #: Quiet stretches taken in bulk (world/quiet.py; ``quiet.enabled = False``: never).
        self.quiet = WorldQuiet(self)

    # ---------------------------------------------------------------- read access
    @property
    def venues(self) -> dict[str, Venue]:
        """Venue name -> venue."""
        return {n: e.venue for n, e in self.entries.items()}

    @property
    def collateral(self) -> dict[str, CollateralAccess]:
        """Venue name -> collateral access, for venues that offer one."""
        return {n: e.collateral for n, e in self.entries.items() if e.collateral is not None}

    @property
    def prices(self) -> dict[str, float]:
        """Asset -> shared price now (quote/base)."""
        return {a: m.price for a, m in self.markets.items()}

    def venue_prices(self, name: str) -> dict[str, PriceInputs]:
        """What venue ``name`` reads now, per asset it watches."""
        out = {}
        for asset, market, link in self._reads[name]:
            p = market.price
            out[asset] = PriceInputs(p, p, link.price if link is not None else p)
        return out

    def add_layer(self, layer: RiskLayer) -> None:
        """Plug a risk layer in (before :meth:`run`)."""
        self.layers.append(layer)

    # ---------------------------------------------------------------- the loop
    def run(self, *, progress: ProgressCallback | None = None) -> WorldResult:
        """Step the whole grid and return the result (see the module docstring)."""
        started = time.perf_counter()
        for layer in self.layers:
            layer.on_start(self)
        every = max(1, self.n_steps // 200)
        k = 0
        while k <= self.n_steps:
            skipped = self.quiet.skip(k)
            if skipped:  # steps k .. k + skipped - 1, in bulk
                k += skipped
                if progress is not None and (
                    stretch_ends(k - skipped, skipped, every) or k - 1 == self.n_steps
                ):
                    progress(k - 1, self.n_steps)
                continue
            self.step(k)
            if progress is not None and (k % every == 0 or k == self.n_steps):
                progress(k, self.n_steps)
            k += 1
        return self.recorder.result(wall_s=time.perf_counter() - started)

    def step(self, k: int) -> None:
        """Run step ``k`` (begin, rounds, traders, layers)."""
        ts = self.start_ns + round(k * self.dt_s * _NS)
        self.step_index, self.ts_ns = k, ts
        gross = dict.fromkeys(self._books, 0.0)
        pending = self._pending
        for key, market in self._book_list:
            move = market.begin(k, ts)
            if move:  # credited to the market (_credit, inline: once per book and step)
                credits = pending[key]
                credits[MARKET_SOURCE] = credits.get(MARKET_SOURCE, 0.0) + move
        to_shared: dict[_Key, dict[str, float]] = {}
        books = self._books
        for name, asset, link, key in self._links:
            own, transfer = link.begin(k, ts, books[key].price)
            if own:
                self._pending_link[(name, asset)] = self._pending_link.get((name, asset), 0.0) + own
            if transfer:
                to_shared.setdefault(key, {})[name] = transfer
        if to_shared:
            self._land(to_shared, ts, gross)
        rounds = self.max_rounds
        for r in range(self.max_rounds):
            if not self._round(k, r, ts, gross):
                rounds = r + 1
                break
        link_gross = self._link_gross
        if link_gross:
            for name, asset, link, _key in self._links:
                link.end(link_gross.get((name, asset), 0.0))
            self._link_gross = {}
        else:
            for _name, _asset, link, _key in self._links:
                link.end(0.0)
        for key, market in self._book_list:
            market.end(gross[key])
        wallets = self.wallets
        if wallets is not None and self.channels.traders and wallets.due(k * self.dt_s):
            wallets.rebalance(ts)
        for layer in self.layers:
            layer.on_step_end(self, k, ts)
        self.recorder.end_step(k, ts, rounds, self._last_steps)

    def _round(self, k: int, r: int, ts: int, gross: dict[_Key, float]) -> bool:
        """One round; return whether forced flow moved anything (another round is due)."""
        steps: dict[str, VenueStep] = {}
        watched = self._watched_exposures() if self.wallets is not None else {}
        liquidated = False
        last_steps, last_inputs = self._last_steps, self._last_inputs
        for name, entry, reads in self._stepping:
            # What the venue steps on (index = oracle = the shared price, its own book's).
            inputs = {}
            for asset, market, link in reads:
                p = market.price
                b = link.price if link is not None else p
                inputs[asset] = _tuple_new(PriceInputs, (p, p, b))
            if r > 0 and last_inputs.get(name) == inputs:
                # Nothing this venue reads moved since it stepped at this time: no new step.
                before = last_steps[name]
                steps[name] = VenueStep(
                    ts, 0, 0.0, dict.fromkeys(before.forced_flow, 0.0), before.solvency
                )
                continue
            last_inputs[name] = inputs
            step = steps[name] = last_steps[name] = entry.venue.step(inputs, ts_ns=ts)
            if step.liquidations:
                liquidated = True
        prices = {asset: market.price for asset, market in self._market_list}
        view = _tuple_new(RoundView, (k, self.round_index, r, ts, steps, prices))
        if liquidated:
            self._attribute(view, watched)
        for pending in self._pending.values():
            if pending:
                pending.clear()
        if self._pending_link:
            self._pending_link = {}
        layers = self.layers
        if layers:
            for layer in layers:
                layer.on_round(self, view)
            self._route_deficits(steps, ts)
        else:  # nothing to route a deficit to: the lines are only remembered
            last_lines = self._last_lines
            for name, step in steps.items():
                last_lines[name] = step.solvency
        to_shared: dict[_Key, dict[str, float]] | None = None
        moved = False
        for name, step in steps.items():
            for asset, flow in step.forced_flow.items():
                if flow == 0.0:
                    continue
                moved = True
                link = self.entries[name].links.get(asset)
                if link is not None:
                    key = (name, asset)
                    self._link_gross[key] = self._link_gross.get(key, 0.0) + abs(flow)
                    own = link.absorb(flow, ts)
                    self._pending_link[key] = self._pending_link.get(key, 0.0) + own
                else:
                    if to_shared is None:
                        to_shared = {}
                    flows = to_shared.setdefault((self._owner[name], asset), {})
                    flows[name] = flows.get(name, 0.0) + flow
        if to_shared:
            self._land(to_shared, ts, gross)
        if liquidated or moved:  # (the solvency lines go into the step's row at its end)
            self.recorder.end_round(view)
        self.round_index += 1
        return moved

    def _land(
        self, to_shared: dict[_Key, dict[str, float]], ts: int, gross: dict[_Key, float]
    ) -> None:
        """Route each asset's flow through the layers into its shared book; credit the moves."""
        for key, routed in to_shared.items():
            owner, asset = key
            flows = routed
            for layer in self.layers:
                flows = layer.route_flow(self, asset, flows, ts_ns=ts)
            self.recorder.add_flow(asset, flows)
            total = math.fsum(flows.values())
            if total == 0.0:
                continue
            market = self._books[key]
            move = market.absorb(total, ts)
            gross[key] += abs(total)
            for name, flow in flows.items():
                if flow:
                    self._credit(key, name, move * flow / total)
            for name, entry in self.entries.items():
                link = entry.links.get(asset)
                if link is not None and self._owner[name] == owner:
                    link.follow(market.price)

    def _credit(self, key: _Key, source: str, move: float) -> None:
        if move:
            pending = self._pending[key]
            pending[source] = pending.get(source, 0.0) + move

    # ---------------------------------------------------------------- attribution
    def _watched_exposures(self) -> dict[str, _Watched]:
        """Gross size and exposure of donor accounts before the round (trader channel)."""
        wallets = self.wallets
        if wallets is None:
            return {}
        out = {}
        for name, given in wallets.donors.items():
            access = self.entries[name].collateral
            if given and access is not None:
                accounts = np.fromiter(given, dtype=np.int64, count=len(given))
                out[name] = (accounts, access.gross_size(accounts), access.exposure(accounts))
        return out

    def _attribute(self, view: RoundView, watched: dict[str, _Watched]) -> None:
        for name, step in view.steps.items():
            if step.liquidations == 0:
                continue
            count, notional = float(step.liquidations), float(step.liquidated_notional)
            if name in watched:
                count, notional = self._attribute_traders(name, watched[name], count, notional)
            if count <= 0.0 and notional <= 0.0:
                continue
            weights = self._price_weights(name)
            self.recorder.add_attribution("prices", name, weights, count, notional)

    def _attribute_traders(
        self, name: str, before: _Watched, count: float, notional: float
    ) -> tuple[float, float]:
        accounts, size_before, exposure_before = before
        access = self.entries[name].collateral
        assert access is not None
        assert self.wallets is not None
        closed = size_before - access.gross_size(accounts)
        hit = np.flatnonzero(closed > 1e-12 * np.maximum(size_before, 1.0))
        with np.errstate(divide="ignore", invalid="ignore"):
            cut = np.where(size_before > 0.0, closed * exposure_before / size_before, 0.0)
        if not len(hit):
            return count, notional
        given = self.wallets.donors[name]
        weights = np.zeros(len(self.sources))
        weights_notional = np.zeros(len(self.sources))
        for i in hit.tolist():
            to = given[int(accounts[i])]
            total = math.fsum(to.values())
            for venue, amount in to.items():
                share = amount / total
                weights[self._source_index[venue]] += share
                weights_notional[self._source_index[venue]] += share * float(cut[i])
        self.recorder.add_trader_attribution(name, weights, weights_notional)
        return count - len(hit), notional - float(cut[hit].sum())

    def _price_weights(self, name: str) -> FloatArray:
        entry = self.entries[name]
        weights = np.zeros(len(self.sources))
        for asset in entry.venue.assets:
            parts = dict(self._pending[(self._owner[name], asset)])
            own = self._pending_link.get((name, asset), 0.0)
            if own:
                parts[name] = parts.get(name, 0.0) + own
            total = math.fsum(parts.values())
            for source, move in parts.items():
                aligned = move * math.copysign(1.0, total) if total else abs(move)
                if aligned > 0.0:
                    weights[self._source_index[source]] += aligned
        if weights.sum() <= 0.0:
            weights[0] = 1.0  # nothing moved since the last round: the venue's own clock
        out: FloatArray = weights / weights.sum()
        return out

    # ---------------------------------------------------------------- deficits
    def _route_deficits(self, steps: Mapping[str, VenueStep], ts: int) -> None:
        for name, step in steps.items():
            now, last = step.solvency, self._last_lines[name]
            self._last_lines[name] = now
            if not self.layers:
                continue
            deficit = _deficit(name, ts, now, last)
            if deficit.total <= 0.0:
                continue
            for layer in self.layers:
                taken = float(layer.route_deficit(self, deficit))
                if not (math.isfinite(taken) and 0.0 <= taken <= deficit.total + 1e-6):
                    raise ValidationError(
                        f"{layer.name}.route_deficit", taken,
                        f"must be a finite amount in [0, {deficit.total}] (the deficit)",
                    )  # fmt: skip
                self.absorbed[name] += taken


def _deficit(name: str, ts: int, now: SolvencyLines, last: SolvencyLines) -> Deficit:
    return Deficit(
        name, ts,
        max(now.insurance_paid - last.insurance_paid, 0.0),
        max(now.backstop_loss - last.backstop_loss, 0.0),
        max(now.adl_loss - last.adl_loss, 0.0),
        max(now.socialized_loss - last.socialized_loss, 0.0),
        max(now.bad_debt - last.bad_debt, 0.0),
        now,
    )  # fmt: skip
