"""Configuration of a Maker venue (one collateral type), its vault population and its builder.

:class:`MakerConfig` (pydantic v2, frozen, unknown keys refused, a bound on every number) holds
one ilk's risk parameters (``mat``, ``rate``, ``dust``, ``chop``), the oracle delay, the
liquidation design (``"dutch"``: Dog and Clipper, Liquidations 2.0; ``"english"``: Cat and
Flipper, Liquidations 1.2) with both designs' parameters, the Vow (surplus buffer, debt
auctions), the keepers and the chain (:mod:`deleverage.protocols.keepers`,
:mod:`deleverage.protocols.chain`). :func:`maker_population` draws a vault book as arrays and
:func:`~deleverage.protocols.maker.venue.build_maker` assembles a
:class:`~deleverage.protocols.maker.venue.MakerVenue`, so a
scenario's ``[[venues]] kind = "maker"`` block maps onto ``build_maker(MakerConfig(...),
maker_population(...))``. Bad values raise :class:`~deleverage.errors.ConfigError` naming the
field, the value and the rule.
"""

from __future__ import annotations

from typing import Annotated, Literal, NamedTuple, Self

import numpy as np
import numpy.typing as npt
from pydantic import Field, model_validator

from deleverage import portable_math as pm
from deleverage.errors import ValidationError
from deleverage.protocols.chain import ChainConfig
from deleverage.protocols.keepers import KeepersConfig, KeeperSpec
from deleverage.spec import _Frozen

__all__ = [
    "ClipperConfig",
    "DogConfig",
    "FlipperConfig",
    "MakerConfig",
    "MakerPopulation",
    "MakerPopulationSpec",
    "VowConfig",
    "maker_population",
]

FloatArray = npt.NDArray[np.float64]

_Dai = Annotated[float, Field(ge=0.0, le=1e13)]
_Seconds = Annotated[float, Field(gt=0.0, le=30 * 86_400.0)]


class DogConfig(_Frozen):
    """Liquidations 2.0 limits (``dog.sol``): DAI that auctions may be raising at once."""

    #: Global ``Hole``: the most tab (DAI) all auctions may hold at once.
    hole_global: _Dai = 100e6
    #: Per-ilk ``hole`` (DAI).
    hole: _Dai = 50e6


class ClipperConfig(_Frozen):
    """A Clipper (Dutch auction, ``clip.sol``) and its price curve (``abaci.sol``).

    Defaults are of the order Maker governance chose for ETH-A after the 2021 launch (``buf``
    1.3, ``tail`` 140 min, ``cusp`` 0.4, ``tip`` 300, ``chip`` 0.1%, a stairstep curve cutting
    1% every 90 s); they are starting points, not a record of one date.
    """

    #: Starting price over the oracle price (``top = feed x buf``).
    buf: Annotated[float, Field(gt=0.0, le=10.0)] = 1.3
    #: Seconds after which an auction needs a reset.
    tail_s: _Seconds = 8400.0
    #: ``price / top`` below which an auction needs a reset.
    cusp: Annotated[float, Field(ge=0.0, lt=1.0)] = 0.4
    #: Flat keeper incentive (DAI) paid by the Vow on kick and redo.
    tip: Annotated[float, Field(ge=0.0, le=1e7)] = 300.0
    #: Keeper incentive as a fraction of tab.
    chip: Annotated[float, Field(ge=0.0, le=0.1)] = 0.001
    #: Price curve: ``linear`` (LinearDecrease), ``stairstep`` (StairstepExponentialDecrease),
    #: ``exponential`` (ExponentialDecrease).
    curve: Literal["linear", "stairstep", "exponential"] = "stairstep"
    #: LinearDecrease: seconds from top to zero.
    tau_s: _Seconds = 3600.0
    #: Stairstep / exponential multiplicative factor per step (per second for exponential).
    cut: Annotated[float, Field(gt=0.0, le=1.0)] = 0.99
    #: Stairstep: seconds between cuts.
    step_s: _Seconds = 90.0


class FlipperConfig(_Frozen):
    """Liquidations 1.2: the Cat's limits (``cat.sol``) and a Flipper (``flip.sol``).

    Defaults follow the values reported for ETH auctions in March 2020 (bid duration 10
    minutes, auction 6 hours, minimum increase 3%; the Black Thursday response discussed
    raising ``ttl`` to 3 hours); ``flip.sol``'s own defaults are 5%, 3 hours and 2 days.
    """

    #: Which Cat bites: ``"box"`` (Liquidations 1.2, August 2020: ``dunk`` and ``box`` in DAI,
    #: the dust rule) or ``"lump"`` (the launch Cat live on 12 March 2020: at most ``lump``
    #: units of collateral per auction, no global limit).
    cat: Literal["box", "lump"] = "box"
    #: Most collateral (units) one auction may take under ``cat = "lump"``.
    lump: Annotated[float, Field(gt=0.0, le=1e12)] = 50.0
    #: Most tab (DAI) one auction may take (``dunk``).
    dunk: _Dai = 50_000.0
    #: Most tab (DAI) all auctions may hold at once (``box``).
    box: _Dai = 10e6
    #: Minimum bid increase (tend) and lot decrease (dent) factor.
    beg: Annotated[float, Field(gt=1.0, le=2.0)] = 1.03
    #: Seconds a bid stands before the auction can be settled (``ttl``).
    ttl_s: _Seconds = 600.0
    #: Auction length in seconds (``tau``); restarted (``tick``) when it ends without bids.
    tau_s: _Seconds = 21_600.0
    #: The smallest first bid a keeper places when no one competes (DAI; Flipper requires > 0).
    min_bid: Annotated[float, Field(gt=0.0, le=1e6)] = 1e-6


class VowConfig(_Frozen):
    """The Vow (``vow.sol``): the surplus buffer and the debt auctions (``flop.sol``)."""

    #: DAI surplus the Vow holds at the start (absorbs deficits first).
    surplus_buffer: _Dai = 0.0
    #: DAI one debt auction raises (``sump``).
    sump: Annotated[float, Field(gt=0.0, le=1e10)] = 50_000.0
    #: Starting MKR lot of a debt auction (``dump``).
    dump: Annotated[float, Field(gt=0.0, le=1e10)] = 250.0
    #: Lot increase when a debt auction restarts without bids (``pad``).
    pad: Annotated[float, Field(gt=1.0, le=10.0)] = 1.5
    #: Price of MKR in DAI bidders value it at.
    mkr_price: Annotated[float, Field(gt=0.0, le=1e7)] = 300.0
    #: Discount to ``mkr_price`` at which bidders' competition settles a debt auction.
    flop_discount: Annotated[float, Field(ge=0.0, lt=1.0)] = 0.05
    #: Seconds from kick to settlement of a debt auction (bids standing ``ttl``).
    flop_duration_s: _Seconds = 10_800.0


def _default_keepers() -> KeepersConfig:
    return KeepersConfig(
        keepers=(KeeperSpec(capital=5e6, latency_blocks=1, gas_units=300_000.0, count=3),),
        sale_delay_blocks=5,
    )


class MakerConfig(_Frozen):
    """One Maker collateral type, its liquidation design, Vow, keepers and chain."""

    #: Venue name (unique within a world).
    name: Annotated[str, Field(min_length=1, max_length=64)] = "maker"
    #: The collateral asset (its price is what the venue reads).
    asset: Annotated[str, Field(min_length=1, max_length=32)] = "ETH"
    #: ``dutch`` (Dog + Clipper, Liquidations 2.0) or ``english`` (Cat + Flipper, 1.2).
    design: Literal["dutch", "english"] = "dutch"
    #: Liquidation ratio (``mat``): a vault is unsafe when ``ink x price / mat < art x rate``.
    mat: Annotated[float, Field(gt=1.0, le=10.0)] = 1.5
    #: Accumulated stability fee (``rate``), constant over a run.
    rate: Annotated[float, Field(ge=1.0, le=100.0)] = 1.0
    #: Minimum vault debt (DAI).
    dust: Annotated[float, Field(ge=0.0, le=1e9)] = 20.0
    #: Liquidation penalty factor (1.13: 13%).
    chop: Annotated[float, Field(ge=1.0, le=2.0)] = 1.13
    #: Oracle delay (the OSM's ``hop``, s); 0: an immediate oracle.
    osm_delay_s: Annotated[float, Field(ge=0.0, le=86_400.0)] = 3600.0
    dog: DogConfig = DogConfig()
    clipper: ClipperConfig = ClipperConfig()
    flipper: FlipperConfig = FlipperConfig()
    vow: VowConfig = VowConfig()
    keepers: KeepersConfig = Field(default_factory=_default_keepers)
    chain: ChainConfig = ChainConfig()
    #: Depth of the market keepers sell seized collateral into (base units per unit of
    #: relative price move, docs/formulas.md §3); sets their expected slippage.
    market_depth: Annotated[float, Field(gt=0.0, le=1e15)] = 1e6

    @model_validator(mode="after")
    def _dust_fits(self) -> Self:
        box = self.flipper.cat == "box"
        if self.design == "english" and box and self.flipper.dunk < self.dust * self.chop:
            raise ValueError(
                f"flipper.dunk must be >= dust x chop ({self.dust * self.chop}), "
                f"was {self.flipper.dunk}"
            )
        return self


class MakerPopulation(NamedTuple):
    """A vault book as arrays: collateral ``ink`` (units of the asset) and normalized debt
    ``art`` (DAI at ``rate`` 1), one entry per vault."""

    ink: FloatArray
    art: FloatArray


def maker_population(
    n: int,
    seed: int,
    *,
    price: float,
    mat: float = 1.5,
    rate: float = 1.0,
    ratio_median: float = 2.5,
    ratio_sigma: float = 0.35,
    collateral_median: float = 50.0,
    collateral_sigma: float = 1.2,
    dust: float = 20.0,
) -> MakerPopulation:
    """Draw ``n`` safe vaults at ``price`` (seeded; log-normal sizes and collateral ratios).

    Each vault's collateral is log-normal (median ``collateral_median`` units, log-sd
    ``collateral_sigma``); its collateralization ``ink x price / (art x rate)`` is log-normal
    (median ``ratio_median``, log-sd ``ratio_sigma``) and at least ``1.01 x mat`` (every vault
    is safe at the start), its debt at least ``dust``.
    """
    whole_n = isinstance(n, int) and not isinstance(n, bool)
    whole_seed = isinstance(seed, int) and not isinstance(seed, bool)
    rules = [
        ("n", n, whole_n and 1 <= n <= 10**8, "an int in [1, 1e8]"),
        ("seed", seed, whole_seed and seed >= 0, "an int >= 0"),
        ("price", price, price > 0.0 and np.isfinite(price), "a finite number > 0"),
        ("mat", mat, 1.0 < mat <= 10.0, "in (1, 10]"),
        ("ratio_median", ratio_median, mat < ratio_median <= 100.0, f"in (mat={mat}, 100]"),
        ("ratio_sigma", ratio_sigma, 0.0 <= ratio_sigma <= 3.0, "in [0, 3]"),
        ("collateral_median", collateral_median, 0.0 < collateral_median <= 1e9, "in (0, 1e9]"),
        ("collateral_sigma", collateral_sigma, 0.0 <= collateral_sigma <= 5.0, "in [0, 5]"),
        ("rate", rate, 1.0 <= rate <= 100.0, "in [1, 100]"),
        ("dust", dust, 0.0 <= dust <= 1e9, "in [0, 1e9]"),
    ]  # fmt: skip
    for field, value, ok, rule in rules:
        if not ok:
            raise ValidationError(field, value, f"must be {rule}")
    rng = np.random.default_rng(np.random.SeedSequence([seed, 0x3A4E]))
    ink = collateral_median * pm.exp(collateral_sigma * rng.standard_normal(n))
    ratio = np.maximum(ratio_median * pm.exp(ratio_sigma * rng.standard_normal(n)), 1.01 * mat)
    debt = ink * price / ratio
    small = debt < dust
    if dust > 0.0 and small.any():  # grow the collateral of vaults that would be dusty
        ink[small] *= dust / debt[small]
        debt[small] = dust
    return MakerPopulation(ink=ink, art=debt / rate)


class MakerPopulationSpec(_Frozen):
    """How to draw a vault book (:func:`maker_population`'s distributions), as a scenario
    states it (``[population]`` of a CDP scenario, a world's ``[[venues]] kind = "maker"``)."""

    n_vaults: Annotated[int, Field(ge=1, le=10_000_000)] = 2000
    collateral_median: Annotated[float, Field(gt=0.0, le=1e9)] = 50.0
    collateral_sigma: Annotated[float, Field(ge=0.0, le=5.0)] = 1.2
    ratio_median: Annotated[float, Field(gt=1.0, le=100.0)] = 2.5
    ratio_sigma: Annotated[float, Field(ge=0.0, le=3.0)] = 0.35

    def draw(self, config: MakerConfig, *, seed: int, price: float) -> MakerPopulation:
        """Draw the book for ``config`` (its ``mat``, ``rate`` and ``dust``) at ``price``."""
        return maker_population(
            self.n_vaults,
            seed,
            price=price,
            mat=config.mat,
            rate=config.rate,
            ratio_median=self.ratio_median,
            ratio_sigma=self.ratio_sigma,
            collateral_median=self.collateral_median,
            collateral_sigma=self.collateral_sigma,
            dust=config.dust,
        )
