"""Scenario files: markets, population, price process, funding, agents, seed (TOML).

A scenario is everything the runner needs to reproduce a run: the same scenario gives the
same journal and the same per-step frame (``RunResult.result_hash``). Every table rejects
unknown keys; :func:`scenario_problems` lists every problem of a document at once (the
``deleverage validate`` command), :meth:`Scenario.from_toml` raises on the first.

A minimal scenario::

    name = "gbm-stress"
    seed = 7
    duration_s = 3600

    [[markets]]
    symbol = "BTCUSDT"
    preset = "binance"
    price = { process = "gbm", s0 = 60000, sigma = 1.2 }
    population = { n_positions = 20000 }

Parameters can be overridden by dotted path (``Scenario.with_overrides``), the way parameter
sweeps vary them: ``{"markets.0.liquidity.depth_per_pct": 5.0, "insurance.fund": 1e6}``.
"""

from __future__ import annotations

import copy
import math
import os
from pathlib import Path
from typing import Annotated, Any, Literal, Self

import numpy as np
from pydantic import Field, field_validator, model_validator

from deleverage.errors import ConfigError, UnknownEntityError
from deleverage.rules.collateral import (
    CollateralAsset,
    CollateralPolicy,
    CollateralTier,
)
from deleverage.rules.dynamic import DynamicLevers
from deleverage.rules.proactive import PredictiveDeleveraging, ProactiveMargin
from deleverage.sim.builtin import builtin_names, builtin_path
from deleverage.sim.depth_spec import DepthDynamicsSpec, L2BookSpec, PowerLawBookSpec
from deleverage.sim.population import PopulationSpec
from deleverage.sim.pricing import PricingSpec
from deleverage.spec import MarketSpec, Slug, _Frozen
from deleverage.venues import preset

PositiveFloat = Annotated[float, Field(gt=0, allow_inf_nan=False)]
NonNegFloat = Annotated[float, Field(ge=0, allow_inf_nan=False)]
Fraction = Annotated[float, Field(ge=0, le=1, allow_inf_nan=False)]

#: Longest run the runner accepts, in steps (one week at one second).
MAX_STEPS = 7 * 86_400
#: Price range of a path, quote per base: far outside any listed market, and small enough that
#: notional x population sums stay exact-ish in float64.
MIN_PRICE = 1e-9
MAX_PRICE = 1e9
#: Largest annualized volatility a price process accepts (2,000% a year: beyond any market's
#: crash). The drift is not bounded on its own (a short squeeze is a huge drift over minutes):
#: the path it makes must stay within [MIN_PRICE, MAX_PRICE] (checked when it is drawn).
MAX_VOLATILITY = 20.0
#: Memory a run needs, measured with ``resource.getrusage`` on the built-in scenarios:
#: about 400 MB of code and compiled kernels, 0.5 KB per position (engine columns, population
#: frame, journal) and 1 KB per step and market (paths, per-step frame); doubled for the margin.
BASE_MEMORY_BYTES = 400 * 2**20
BYTES_PER_POSITION = 1024
BYTES_PER_MARKET_STEP = 2048

Price = Annotated[float, Field(ge=MIN_PRICE, le=MAX_PRICE, allow_inf_nan=False)]
Volatility = Annotated[float, Field(ge=0, le=MAX_VOLATILITY, allow_inf_nan=False)]
Drift = Annotated[float, Field(allow_inf_nan=False)]
JumpSize = Annotated[float, Field(ge=-5, le=5, allow_inf_nan=False)]


# ---------------------------------------------------------------------------- prices
class GbmPrice(_Frozen):
    """Geometric Brownian motion: ``s0`` (quote/base), annual drift ``mu`` and volatility."""

    process: Literal["gbm"] = "gbm"
    s0: Price
    mu: Drift = 0.0
    sigma: Volatility = 0.8


class MertonPrice(_Frozen):
    """Merton jump diffusion: GBM plus ``jump_intensity`` jumps a year of log size
    ``N(jump_mean, jump_std^2)``."""

    process: Literal["merton"] = "merton"
    s0: Price
    mu: Drift = 0.0
    sigma: Volatility = 0.8
    jump_intensity: Annotated[float, Field(ge=0, le=1e6, allow_inf_nan=False)] = 50.0
    jump_mean: JumpSize = -0.05
    jump_std: Annotated[JumpSize, Field(ge=0)] = 0.03


class GarchPrice(_Frozen):
    """GARCH(1,1) returns with unconditional annual volatility ``sigma``."""

    process: Literal["garch"] = "garch"
    s0: Price
    mu: Drift = 0.0
    sigma: Annotated[Volatility, Field(gt=0)] = 0.8
    alpha: Fraction = 0.08
    beta: Fraction = 0.9


class RegimePrice(_Frozen):
    """Regime-switching GBM: ``regimes`` as ``[mu, sigma]`` pairs (annual), a transition
    matrix per step."""

    process: Literal["regime"] = "regime"
    s0: Price
    regimes: tuple[tuple[float, float], ...] = ((0.0, 0.5), (-2.0, 3.0))
    transition: tuple[tuple[float, ...], ...] = ((0.9995, 0.0005), (0.002, 0.998))

    @model_validator(mode="after")
    def _ranges(self) -> Self:
        for k, (mu, sigma) in enumerate(self.regimes):
            if not math.isfinite(mu):
                raise ValueError(f"regimes[{k}] mu must be finite, was {mu}")
            if not (math.isfinite(sigma) and 0.0 <= sigma <= MAX_VOLATILITY):
                raise ValueError(
                    f"regimes[{k}] sigma must be in [0, {MAX_VOLATILITY:g}], was {sigma}"
                )
        return self


class ShockPrice(_Frozen):
    """A crash ramp: flat at ``s0``, a fall of ``drop_fraction`` over ``duration_s`` seconds
    from ``start_s``, then flat (a negative fraction is a rise); ``sigma`` > 0 multiplies it by
    driftless GBM noise of that annual volatility (``exp(sigma W_t - sigma^2 t / 2)``)."""

    process: Literal["shock"] = "shock"
    sigma: Volatility = 0.0
    s0: Price
    drop_fraction: Annotated[float, Field(gt=-10, lt=1, allow_inf_nan=False)] = 0.1
    start_s: NonNegFloat = 60.0
    duration_s: NonNegFloat = 300.0
    shape: Literal["linear", "log"] = "linear"


class HistoricalPrice(_Frozen):
    """Replay OHLCV bars: a bundled crash window (``bundled``) or a CSV/Parquet ``file``.

    ``method`` is how bars become a path (``"ohlc"`` visits each bar's extremes); ``scale_to``
    rescales the path so it starts at that price (to replay a crash's shape on another market).
    """

    process: Literal["historical"] = "historical"
    bundled: str | None = None
    file: str | None = None
    method: Literal["ohlc", "close"] = "ohlc"
    scale_to: Price | None = None

    @model_validator(mode="after")
    def _one_source(self) -> Self:
        if (self.bundled is None) == (self.file is None):
            raise ValueError("give exactly one of `bundled` (a bundled window name) or `file`")
        return self


PriceSpec = Annotated[
    GbmPrice | MertonPrice | GarchPrice | RegimePrice | ShockPrice | HistoricalPrice,
    Field(discriminator="process"),
]


# ---------------------------------------------------------------------------- market parts
class LiquiditySpec(_Frozen):
    """The market's outside liquidity: a constant-depth book (``depth_per_pct`` base units move
    the price 1%) refilling with half-life ``half_life_s``; a power-law book (``power_law``), an
    L2 book from ``bookDepth`` snapshots, fixed or following them over time (``l2``); ``"none"``
    fills at the mark. ``dynamics``: depth that thins with realized volatility and liquidation
    flow and refills (:class:`deleverage.sim.depth_spec.DepthDynamicsSpec`)."""

    model: Literal["constant_depth", "power_law", "l2", "none"] = "constant_depth"
    depth_per_pct: PositiveFloat = 100.0
    half_life_s: PositiveFloat = 60.0
    max_move: Annotated[float, Field(gt=0, le=1, allow_inf_nan=False)] = 0.5
    power_law: PowerLawBookSpec = PowerLawBookSpec()
    l2: L2BookSpec | None = None
    dynamics: DepthDynamicsSpec = DepthDynamicsSpec()

    @model_validator(mode="after")
    def _l2_source(self) -> Self:
        if self.model == "l2" and self.l2 is None:
            raise ValueError('model = "l2" needs an `l2` table (bundled = true, or a file)')
        return self


class FundingSpec(_Frozen):
    """Perpetual funding at every ``interval_s``.

    ``kind``: ``"none"``; ``"constant"`` (``rate`` per interval); ``"premium"`` (Binance's rule on
    mark vs index, the index being the exogenous price); ``"historical"`` (rates from a CSV with
    ``calc_time`` in ms and ``last_funding_rate``, or a bundled series; the run's first
    settlement takes the first rate at or after ``start``, an ISO date, and so on in order).
    """

    kind: Literal["none", "constant", "premium", "historical"] = "none"
    interval_s: PositiveFloat = 28_800.0
    rate: Annotated[float, Field(gt=-1, lt=1, allow_inf_nan=False)] = 0.0001
    bundled: str | None = None
    file: str | None = None
    start: str | None = None
    cap: PositiveFloat | None = 0.03

    @model_validator(mode="after")
    def _source(self) -> Self:
        if self.kind == "historical" and (self.bundled is None) == (self.file is None):
            raise ValueError("historical funding needs exactly one of `bundled` or `file`")
        return self


class MarketScenario(_Frozen):
    """One market of a scenario.

    ``preset`` names a venue (its documented tiers, fees and rules, ``symbol`` choosing the
    asset; ``preset_symbol`` borrows another listed market's table under this symbol) or
    ``spec`` gives a full :class:`MarketSpec` table; ``spec_overrides`` replaces fields of
    either (nested tables merge), e.g. ``{ liquidation = { kind = "partial" } }``.
    ``population`` draws a seeded book; ``population_file`` loads one from Parquet instead (a
    venue's own positions: columns of :data:`deleverage.sim.population.REQUIRED_COLUMNS`).
    ``pricing`` is how the venue prices the market: its mark rule and the arbitrageurs who tie
    its book to the index (:class:`deleverage.sim.pricing.PricingSpec`). ``dynamic`` turns on
    the venue's dynamic levers (margin, leverage, position limits and liquidation fee scaled by
    volatility, open interest and book depth: :class:`deleverage.rules.dynamic.DynamicLevers`),
    each change journaled as a ``RiskParamsChanged`` event.
    """

    symbol: str = "BTCUSDT"
    preset: str | None = "binance"
    preset_symbol: str | None = None
    spec: dict[str, Any] | None = None
    spec_overrides: dict[str, Any] = Field(default_factory=dict)
    price: PriceSpec
    liquidity: LiquiditySpec = LiquiditySpec()
    funding: FundingSpec = FundingSpec()
    population: PopulationSpec | None = None
    population_file: str | None = None
    pricing: PricingSpec = PricingSpec()
    dynamic: DynamicLevers | None = None

    @model_validator(mode="after")
    def _one_population(self) -> Self:
        if self.population is not None and self.population_file is not None:
            raise ValueError("give `population` (to draw one) or `population_file`, not both")
        return self

    @model_validator(mode="after")
    def _market(self) -> Self:
        if self.spec is not None and self.preset is not None and "preset" in self.model_fields_set:
            raise ValueError("give `preset` or `spec`, not both")
        try:
            spec = self.market_spec()  # raises with the spec's own field named
        except UnknownEntityError as exc:
            raise ValueError(str(exc)) from None
        if spec.contract_type == "inverse":
            raise ValueError(
                f"contract_type must be 'linear' in a scenario, was 'inverse' ({spec.symbol}): "
                "the simulator's populations, depth and agents are in base units and quote; "
                "run an inverse market on an Exchange directly"
            )
        return self

    def market_spec(self) -> MarketSpec:
        """The validated market (preset or spec, overrides applied)."""
        if self.spec is not None:
            base = dict(self.spec)
            base.setdefault("symbol", self.symbol)
        elif self.preset is not None:
            source = self.preset_symbol or self.symbol
            base = preset(self.preset, source).model_dump(mode="json")
            base["symbol"] = self.symbol
        else:
            raise ValueError("give `preset` (a venue name) or `spec` (a market table)")
        merged = _merge(base, self.spec_overrides)
        return MarketSpec.from_mapping(merged)


# ---------------------------------------------------------------------------- agents
class LiquidatorAgents(_Frozen):
    """Who executes liquidations, and how fast.

    ``latency_s``: seconds between a position falling under maintenance and a liquidator
    acting (0.001 for an off-chain matcher, 2-12 for on-chain keepers); until then it stays
    open, even beyond bankruptcy. ``capital``: quote notional liquidators can take per second
    (``inf``: unlimited).
    """

    latency_s: NonNegFloat = 0.0
    capital: Annotated[float, Field(gt=0)] = math.inf


class RebalancerAgents(_Frozen):
    """Accounts that top up collateral from an outside reserve.

    A share ``fraction`` of isolated positions hold a reserve of ``reserve_fraction`` x their
    initial collateral; when a position's margin ratio (maintenance / equity) reaches
    ``trigger_ratio`` it adds ``top_up_fraction`` of the position's current maintenance margin
    from the reserve, once per ``cooldown_s``, while the reserve lasts.
    """

    fraction: Fraction = 0.0
    reserve_fraction: NonNegFloat = 1.0
    trigger_ratio: Annotated[float, Field(gt=0, lt=1, allow_inf_nan=False)] = 0.8
    top_up_fraction: PositiveFloat = 1.0
    cooldown_s: NonNegFloat = 60.0


class SpotMarketSpec(_Frozen):
    """The spot market the hedgers trade their spot leg in: a constant-depth book
    (``depth_per_pct`` base units move the price 1%, refilling with half-life ``half_life_s``,
    absorbing at most ``max_move``). With ``moves_index`` its impact moves the index (and the
    oracle) that the perp venue watches, ``X' = X (1 + impact)``."""

    depth_per_pct: PositiveFloat = 100.0
    half_life_s: PositiveFloat = 60.0
    max_move: Annotated[float, Field(gt=0, le=1, allow_inf_nan=False)] = 0.5
    moves_index: bool = True


class HedgerAgents(_Frozen):
    """Delta-neutral hedgers with a real spot leg (:mod:`deleverage.sim.hedgers`).

    A share ``fraction`` of short perp positions are hedgers: they hold ``hedge_ratio`` x
    ``|short|`` base units of spot, bought at the index at the start. After each risk step a
    hedger whose spot leg is off its target ``hedge_ratio x |short now|`` by more than ``band``
    (a fraction of the target; any excess when the short is gone) trades back to the target in
    the spot market (``spot``; None: fills at the index without impact), paying ``cost`` of the
    notional. A liquidated or deleveraged short leaves spot unhedged: a share ``sell_naked`` of
    hedgers sell it (the second-order flow), the others hold it naked. The perp leg pays or
    earns funding and the basis (mark against index) in the engine. With ``margin_from_spot``
    a hedger whose perp margin ratio ``MM / E`` reaches ``trigger_ratio`` posts the spot leg's
    gain (quote, ``spot x (index - entry)`` not yet posted) as margin, up to ``top_up_fraction``
    of its maintenance margin per step (a deposit and, for isolated positions, a margin move).
    """

    fraction: Fraction = 0.0
    hedge_ratio: Annotated[float, Field(gt=0, le=2, allow_inf_nan=False)] = 1.0
    band: Fraction = 0.05
    cost: Annotated[float, Field(ge=0, le=0.05, allow_inf_nan=False)] = 0.0005
    sell_naked: Fraction = 1.0
    margin_from_spot: bool = False
    trigger_ratio: Annotated[float, Field(gt=0, lt=1, allow_inf_nan=False)] = 0.8
    top_up_fraction: PositiveFloat = 1.0
    spot: SpotMarketSpec | None = None


class CollateralScenario(_Frozen):
    """A coin that cross accounts post as margin (:mod:`deleverage.sim.collateral`).

    Priced at ``ratio`` x the index of the scenario market ``market`` (a staked token: a ratio
    below 1), valued with the venue's haircut ``tiers`` (``basis``: tiers in quote value or in
    coins; :class:`deleverage.rules.collateral.CollateralAsset`). A share ``share`` of that
    market's cross accounts hold ``margin_fraction`` of their starting quote margin in this coin
    instead (the same collateral value, so the same margin at the start). ``book``: the coin's
    own spot book that the venue's sales walk (None: sales fill at the index); with its
    ``moves_index`` the sales' impact moves the market's index too.
    """

    symbol: Annotated[str, Field(min_length=1, max_length=32)]
    market: str
    ratio: PositiveFloat = 1.0
    tiers: Annotated[tuple[CollateralTier, ...], Field(min_length=1)] = (
        CollateralTier(floor=0.0, rate=0.95),
    )
    basis: Literal["value", "quantity"] = "value"
    share: Fraction = 0.5
    margin_fraction: Annotated[float, Field(gt=0, le=1, allow_inf_nan=False)] = 1.0
    book: SpotMarketSpec | None = None

    def asset(self) -> CollateralAsset:
        """The engine's :class:`CollateralAsset` of this coin."""
        return CollateralAsset(symbol=self.symbol, tiers=self.tiers, basis=self.basis)


class ArbitrageAgents(_Frozen):
    """A plain pull of every market's book back toward its index: the dislocation decays as
    ``exp(-speed_per_s dt)`` on top of the book's own resilience (0: none). Arbitrageurs with
    finite capital, latency and cost are per market: ``[markets.pricing.arbitrage]``."""

    speed_per_s: NonNegFloat = 0.0


class AgentsSpec(_Frozen):
    liquidators: LiquidatorAgents = LiquidatorAgents()
    rebalancers: RebalancerAgents = RebalancerAgents()
    hedgers: HedgerAgents = HedgerAgents()
    arbitrageurs: ArbitrageAgents = ArbitrageAgents()


class InsuranceSpec(_Frozen):
    """Initial insurance fund, quote (shared by the markets unless the market spec says
    per-market); the backstop vault's capital (quote, for markets whose liquidation policy
    has a backstop) and its loss limit (quote; None: its whole capital), past which ADL
    takes over (:meth:`deleverage.engine.risk.RiskEngine.set_backstop`)."""

    fund: NonNegFloat = 1_000_000.0
    backstop: NonNegFloat = 0.0
    backstop_max_loss: PositiveFloat | None = None


class CommonJumps(_Frozen):
    """Jumps that hit every GBM and Merton market together (intensity per year, log size
    ``N(mean, std^2)``), scaled per market by ``beta``: market ``i``'s log jump is ``beta[i]``
    times the common one (one entry per market, in order; entries of markets not drawn jointly
    are ignored; ``None``: 1 for every market), so correlated crashes need not be equal."""

    intensity: Annotated[float, Field(ge=0, le=1e6, allow_inf_nan=False)] = 0.0
    mean: JumpSize = -0.08
    std: Annotated[JumpSize, Field(ge=0)] = 0.03
    beta: tuple[NonNegFloat, ...] | None = None


class AlertReactions(_Frozen):
    """Traders who chose an alert level react when their predicted probability of liquidation
    within ``H`` rises through it (issue #19): ``add_margin`` deposits ``fraction`` times the
    position's maintenance margin and adds it to the position (isolated) or the account
    (cross); ``reduce`` closes ``fraction`` of the position on the book. ``share``: the part of
    the accounts that set an alert (a seeded draw); ``cooldown_s`` between two reactions of
    one account.
    """

    level: Annotated[float, Field(gt=0, lt=1, allow_inf_nan=False)] = 0.5
    share: Annotated[float, Field(gt=0, le=1, allow_inf_nan=False)] = 1.0
    action: Literal["add_margin", "reduce"] = "add_margin"
    fraction: Annotated[float, Field(gt=0, le=10, allow_inf_nan=False)] = 1.0
    cooldown_s: PositiveFloat = 60.0

    @model_validator(mode="after")
    def _reduce_fraction(self) -> Self:
        if self.action == "reduce" and self.fraction > 1:
            raise ValueError(f"fraction must be <= 1 to reduce a position, was {self.fraction}")
        return self


class ProactiveSpec(_Frozen):
    """Proactive margin and predictive deleveraging in every market (issue #19).

    The engine acts on a prediction that the run's *predictor* reports every ``every_s``
    seconds (``deleverage.predict.proactive`` computes it from what the venue sees at that
    step, over horizon ``horizon_s`` with a volatility window of ``window_s``): ``model`` is a
    model file written by ``deleverage predict train`` for the accounts' probabilities, or
    ``None`` for the analytic first-passage baseline. ``cascade_level``: the share of open
    interest whose liquidation makes a cascade. ``alerts``: traders react to alerts on their
    own predicted probability (:class:`AlertReactions`). At least one of ``margin``,
    ``deleveraging`` and ``alerts`` must be set. ``enabled = false`` validates the block and
    then runs the scenario as if it were absent, so a sweep can compare with and without the
    policies on the same seeds (``proactive.enabled = [true, false]``). docs/predict.md.
    """

    enabled: bool = True
    margin: ProactiveMargin | None = None
    deleveraging: PredictiveDeleveraging | None = None
    alerts: AlertReactions | None = None
    model: str | None = None
    horizon_s: PositiveFloat = 300.0
    window_s: PositiveFloat = 300.0
    every_s: PositiveFloat = 10.0
    cascade_level: Annotated[float, Field(gt=0, lt=1, allow_inf_nan=False)] = 0.01

    @model_validator(mode="after")
    def _something(self) -> Self:
        if self.margin is None and self.deleveraging is None and self.alerts is None:
            raise ValueError("proactive needs margin, deleveraging or alerts")
        return self


# ---------------------------------------------------------------------------- scenario
class Scenario(_Frozen):
    """A validated scenario (see the module docstring).

    ``duration_s`` bounds the run (a historical path sets its own length; ``None`` uses all of
    it, a stochastic one needs it). ``dt_s`` is the mark interval. ``feedback=False`` runs the
    same population on the exogenous path alone. ``max_cascade_rounds`` bounds the re-marks in
    one step. ``multi_market_accounts``: cross rows of every market's population share accounts
    (row ``i`` of each market's cross rows is one account), so accounts hold several markets.
    ``collateral``: coins cross accounts post as margin (``[[collateral]]``), sold by the venue in
    ``collateral_policy``'s order when an account is short.
    """

    name: Slug = "scenario"
    description: str = ""
    seed: Annotated[int, Field(ge=0)] = 0
    dt_s: PositiveFloat = 1.0
    duration_s: PositiveFloat | None = None
    feedback: bool = True
    max_cascade_rounds: Annotated[int, Field(ge=1, le=1000)] = 50
    multi_market_accounts: bool = False
    correlation: tuple[tuple[float, ...], ...] | None = None
    common_jumps: CommonJumps = CommonJumps()
    markets: Annotated[tuple[MarketScenario, ...], Field(min_length=1, max_length=64)]
    insurance: InsuranceSpec = InsuranceSpec()
    agents: AgentsSpec = AgentsSpec()
    collateral: tuple[CollateralScenario, ...] = ()
    collateral_policy: CollateralPolicy = CollateralPolicy()
    proactive: ProactiveSpec | None = None

    @field_validator("proactive", mode="after")
    @classmethod
    def _switched_off(cls, value: ProactiveSpec | None) -> ProactiveSpec | None:
        """A validated block with ``enabled = false`` is dropped: no policy, no predictor."""
        return None if value is not None and not value.enabled else value

    @model_validator(mode="after")
    def _check(self) -> Self:
        symbols = [m.symbol for m in self.markets]
        if len(set(symbols)) != len(symbols):
            raise ValueError(f"market symbols must be distinct, were {symbols}")
        coins = [c.symbol for c in self.collateral]
        if len(set(coins)) != len(coins):
            raise ValueError(f"collateral symbols must be distinct, were {coins}")
        for k, coin in enumerate(self.collateral):
            if coin.market not in symbols:
                raise ValueError(
                    f"collateral[{k}].market must name a market of the scenario ({symbols}), "
                    f"was {coin.market!r}"
                )
            coin.asset()  # raises with the tiers' own rule
        historical = all(isinstance(m.price, HistoricalPrice) for m in self.markets)
        if self.duration_s is None and not historical:
            raise ValueError("duration_s is required unless every market replays history")
        if self.duration_s is not None and self.duration_s / self.dt_s > MAX_STEPS:
            raise ValueError(f"duration_s / dt_s must be at most {MAX_STEPS} steps")
        beta = self.common_jumps.beta
        if beta is not None and len(beta) != len(self.markets):
            raise ValueError(
                f"common_jumps.beta must have one entry per market ({len(self.markets)}), "
                f"had {len(beta)}"
            )
        if self.correlation is not None:
            from deleverage.prices import validate_correlation

            corr = validate_correlation(np.asarray(self.correlation), n_assets=len(self.markets))
            joint = [isinstance(m.price, GbmPrice | MertonPrice) for m in self.markets]
            for i in range(len(self.markets)):
                for j in range(len(self.markets)):
                    if i != j and corr[i, j] != 0.0 and not (joint[i] and joint[j]):
                        raise ValueError(
                            f"correlation[{i}][{j}] = {corr[i, j]} must be 0: only gbm and merton "
                            "markets are drawn together (the others have their own paths)"
                        )
        return self

    # ---------------------------------------------------------------- conveniences
    def with_overrides(self, overrides: dict[str, Any]) -> Scenario:
        """A copy with values replaced by dotted path (``"markets.0.price.sigma"``).

        Raises
        ------
        ConfigError
            If a path names no field of the scenario, or the result is invalid.
        """
        data = self.model_dump(mode="python", exclude_unset=False)
        for path, value in overrides.items():
            _set_path(data, path, value)
        return Scenario.from_mapping(data)

    def check_override_path(self, path: str) -> None:
        """Raise :class:`ConfigError` unless ``path`` names a field :meth:`with_overrides` can set
        (the value itself is not checked)."""
        _set_path(self.model_dump(mode="python"), path, None)
        parts = path.split(".")
        if len(parts) > 3 and parts[0] == "markets" and parts[2] == "spec_overrides":
            # Free-form table: the rest must name a field of the market's spec.
            node: Any = self.markets[int(parts[1])].market_spec().model_dump(mode="python")
            for i, part in enumerate(parts[3:], start=3):
                if isinstance(node, list | tuple) and part.isdigit() and int(part) < len(node):
                    node = node[int(part)]
                elif isinstance(node, dict) and part in node:
                    node = node[part]
                else:
                    where = ".".join(parts[: i + 1])
                    raise ConfigError(
                        "path", path, f"must name a field of the market spec (`{where}` is not one)"
                    )

    def market_specs(self) -> list[MarketSpec]:
        return [m.market_spec() for m in self.markets]

    def to_toml_dict(self) -> dict[str, Any]:
        """The scenario as plain data (JSON-compatible; ``None`` kept), for saving next to
        results: ``Scenario.from_mapping`` of it gives the same scenario."""
        data: dict[str, Any] = self.model_dump(mode="json")
        return data


def _merge(base: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(base)
    for key, value in overrides.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        else:
            out[key] = value
    return out


def _set_path(data: dict[str, Any], path: str, value: Any) -> None:
    parts = path.split(".")
    node: Any = data
    for i, part in enumerate(parts):
        last = i == len(parts) - 1
        where = ".".join(parts[: i + 1])
        if isinstance(node, list | tuple):
            if not part.isdigit() or int(part) >= len(node):
                raise ConfigError(path, value, f"`{where}` must index an existing list entry")
            if last:
                raise ConfigError(path, value, "must name a field, not a whole list entry")
            node = node[int(part)]
            continue
        if not isinstance(node, dict):
            raise ConfigError(path, value, f"`{where}` goes below a plain value")
        free_form = _free_form(parts[:i])
        if part not in node and not free_form:
            raise ConfigError(path, value, "must name a field of the scenario")
        if last:
            node[part] = value
        else:
            if part not in node or node[part] is None:
                node[part] = {}
            node = node[part]


def _free_form(parents: list[str]) -> bool:
    """Tables whose keys are not fixed fields (market spec overrides)."""
    return any(p in ("spec_overrides", "spec") for p in parents)


def estimated_memory_bytes(scenario: Scenario) -> int:
    """Memory a run of ``scenario`` needs, in bytes (an upper estimate: see
    :data:`BYTES_PER_POSITION` and :data:`BYTES_PER_MARKET_STEP`; a historical market without
    ``duration_s`` counts as :data:`MAX_STEPS`)."""
    steps = MAX_STEPS if scenario.duration_s is None else scenario.duration_s / scenario.dt_s
    market_steps = (steps + 1) * len(scenario.markets)
    return int(
        BASE_MEMORY_BYTES
        + _positions(scenario) * BYTES_PER_POSITION
        + market_steps * BYTES_PER_MARKET_STEP
    )


def machine_memory_bytes() -> int:
    """Physical memory of this machine, in bytes (``sysconf``; 8 GiB where it is unknown)."""
    try:
        return int(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"))
    except (AttributeError, ValueError, OSError):
        return 8 * 2**30


def _memory_rule(scenario: Scenario, memory_bytes: int | None) -> str | None:
    limit = machine_memory_bytes() if memory_bytes is None else memory_bytes
    need = estimated_memory_bytes(scenario)
    if need <= limit:
        return None
    steps = MAX_STEPS if scenario.duration_s is None else scenario.duration_s / scenario.dt_s
    return (
        f"must fit in this machine's {limit / 2**30:,.1f} GiB of memory (the run needs about "
        f"{need / 2**30:,.1f} GiB for these positions and {steps:,.0f} steps x "
        f"{len(scenario.markets)} markets): lower n_positions or duration_s"
    )


def _positions(scenario: Scenario) -> int:
    return sum(m.population.n_positions for m in scenario.markets if m.population)


def resource_problems(scenario: Scenario, *, memory_bytes: int | None = None) -> list[str]:
    """The scenario's estimated memory against ``memory_bytes`` (default: this machine's),
    as problem lines like :func:`scenario_problems` (empty when it fits)."""
    rule = _memory_rule(scenario, memory_bytes)
    if rule is None:
        return []
    return [f"markets.*.population.n_positions: {rule} (was {_positions(scenario):,})"]


def check_resources(scenario: Scenario, *, memory_bytes: int | None = None) -> None:
    """Raise :class:`ConfigError` if a run of ``scenario`` would not fit in memory."""
    rule = _memory_rule(scenario, memory_bytes)
    if rule is not None:
        raise ConfigError("markets.*.population.n_positions", _positions(scenario), rule)


def load_scenario(source: str | Path) -> Scenario:
    """Load a scenario from a TOML path, TOML text, or a built-in name (see
    :func:`deleverage.sim.builtin.builtin_names`).

    A CDP scenario (``kind = "cdp"``) is refused with a pointer to
    :func:`deleverage.sim.cdp_runner.load_cdp_scenario` (``deleverage run`` runs both kinds)."""
    from deleverage.sim.cdp_runner import is_cdp_scenario

    if isinstance(source, str | Path) and "\n" not in str(source) and is_cdp_scenario(source):
        raise ConfigError(
            "scenario",
            str(source),
            'is a CDP scenario (kind = "cdp"): load it with '
            "deleverage.sim.cdp_runner.load_cdp_scenario (deleverage run runs either kind)",
        )
    if isinstance(source, str) and source in builtin_names():
        return Scenario.from_toml(builtin_path(source))
    if (
        isinstance(source, str)
        and not source.endswith(".toml")
        and "\n" not in source
        and not Path(source).exists()
    ):
        raise ConfigError(
            "scenario",
            source,
            f"must be a TOML file or a built-in scenario ({', '.join(builtin_names())})",
        )
    if isinstance(source, str | Path) and "\n" not in str(source) and Path(source).is_dir():
        raise ConfigError("scenario", str(source), "must be a TOML file, not a folder")
    if isinstance(source, str) and "\n" not in source:
        return Scenario.from_toml(Path(source))
    return Scenario.from_toml(source)
