"""The ``aave`` venue kind: an Aave v3.3 lending market (:mod:`deleverage.protocols.aave`).

The kind's config holds the market (reserves, liquidation constants, chain, keepers: an
:class:`~deleverage.protocols.aave.AaveConfig`; its name is the world's venue name and its
chain's genesis the world's start) and how to draw its borrowers
(:func:`~deleverage.protocols.aave.aave_population`). The venue watches the assets of its
priced reserves, which must be the ``assets`` of its world entry. Its borrowers can be shared
traders (``[[shared_traders]]``: a long borrowed against ETH on Aave and a short perp on a CEX),
and the trader channel reaches them through :class:`AaveCollateral`.

**The trader channel's rule on Aave** (quote cash, at the last oracle prices):

- an account's equity is ``C - D`` and its maintenance ``C - W`` (``C`` collateral value, ``W``
  the threshold-weighted collateral ``sum c p LT``, ``D`` debt value), so ``maintenance /
  equity >= 1`` exactly when ``HF = W / D <= 1``: the wallets rescue a borrower as its health
  factor nears 1, as they rescue a perp account nearing maintenance;
- cash brought in (perp gains, spare margin) repays the account's debt in the quote reserve
  first and supplies the rest as quote-reserve collateral: equity rises by the amount;
- cash taken out is quote-reserve collateral only, and at most what keeps ``HF >= 1`` after
  the withdrawal (Aave's own withdraw check): ``min(c_q, (W - D) / LT_q)``. Collateral in
  other assets (WETH, WBTC) is never sold by the channel (that would be a trade in the shared
  market, not a transfer).
"""

from __future__ import annotations

from typing import Annotated

import numpy as np
import numpy.typing as npt
from pydantic import Field

from deleverage import portable_linalg as pla
from deleverage.errors import ConfigError
from deleverage.protocols.aave import AaveConfig, AaveVenue, aave_population, build_aave
from deleverage.spec import _Frozen
from deleverage.world.registry import BuildContext, BuiltVenue, VenueKind

__all__ = ["AAVE_KIND", "AaveCollateral", "AaveKindConfig", "build_aave_venue"]

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]

Positive = Annotated[float, Field(gt=0, allow_inf_nan=False)]


class AaveKindConfig(_Frozen):
    """Config of an ``aave`` venue (``[venues.config]``): ``market`` (reserves, chain,
    keepers) and the borrowers drawn: ``accounts``, log-normal collateral value
    (``collateral_median`` quote, ``collateral_sigma``), health factor ``min_health +
    Exp(health_scale)``, a second collateral with probability ``second_collateral_share``."""

    market: AaveConfig = Field(default_factory=AaveConfig)
    accounts: Annotated[int, Field(ge=0, le=10_000_000)] = 10_000
    collateral_median: Positive = 20_000.0
    collateral_sigma: Annotated[float, Field(ge=0, le=5, allow_inf_nan=False)] = 1.2
    min_health: Annotated[float, Field(gt=1, le=10, allow_inf_nan=False)] = 1.03
    health_scale: Annotated[float, Field(ge=0, le=10, allow_inf_nan=False)] = 0.6
    second_collateral_share: Annotated[float, Field(ge=0, le=1, allow_inf_nan=False)] = 0.3


def build_aave_venue(config: AaveKindConfig, context: BuildContext) -> BuiltVenue:
    """Draw the borrowers and build the market at the world's start prices."""
    market = config.market
    if set(market.assets) != set(context.assets):
        raise ConfigError(
            f"venues.{context.name}.assets", list(context.assets),
            f"must be the assets of the market's priced reserves {list(market.assets)}",
        )  # fmt: skip
    market = market.model_copy(
        update={
            "name": context.name,
            "seed": int(context.seed.generate_state(1)[0]) % (2**63 - 1),
            "chain": market.chain.model_copy(update={"genesis_ts_ns": context.start_ns}),
        }
    )
    population = aave_population(
        market, config.accounts, seed=int(context.seed.generate_state(2)[1]) % (2**63 - 1),
        prices=context.reference_prices, collateral_median=config.collateral_median,
        collateral_sigma=config.collateral_sigma, min_health=config.min_health,
        health_scale=config.health_scale,
        second_collateral_share=config.second_collateral_share,
    )  # fmt: skip
    venue = build_aave(market, population, prices=context.reference_prices)
    # Every borrower may be one of the world's shared traders; the channel moves quote cash.
    access = AaveCollateral(venue) if venue.quote_reserve is not None else None
    return BuiltVenue(venue, access, np.arange(config.accounts, dtype=np.int64))


class AaveCollateral:
    """:class:`~deleverage.world.collateral.CollateralAccess` over an Aave market (the rule
    in the module docstring).

    Examples
    --------
    >>> from deleverage.protocols.aave import AaveConfig, AavePopulation, build_aave
    >>> c = np.array([[10.0, 0.0]]); d = np.array([[0.0, 17_000.0]])  # 10 WETH, 17,000 USDC
    >>> venue = build_aave(AaveConfig(), AavePopulation(c, d), prices={"ETH": 2_000.0})
    >>> access = AaveCollateral(venue)
    >>> [round(float(x[0]), 2) for x in access.margins(np.array([0]))]  # C - D, C - W
    [3000.0, 3400.0]
    >>> access.deposit(0, 1_000.0, ts_ns=0)  # repays 1,000 USDC of debt
    >>> float(venue.debt[0, 1])
    16000.0
    """

    def __init__(self, venue: AaveVenue) -> None:
        if venue.quote_reserve is None:
            raise ConfigError("reserves", venue.name, "must include a quote reserve (no asset)")
        self._venue = venue
        self._priced = np.array([r.asset is not None for r in venue.config.reserves])

    @property
    def venue(self) -> AaveVenue:
        """The market the access reads and moves cash in."""
        return self._venue

    def margins(self, accounts: IntArray) -> tuple[FloatArray, FloatArray]:
        """Equity ``C - D`` and maintenance ``C - W`` (quote)."""
        c, w, d = self._venue.account_values(accounts)
        return c - d, c - w

    def exposure(self, accounts: IntArray) -> FloatArray:
        """Collateral plus debt value in priced (non-quote) reserves (quote)."""
        venue = self._venue
        price = np.where(self._priced, venue.price, 0.0)
        held = venue.collateral[accounts] + venue.debt[accounts]
        return np.asarray(pla.matmul(held, price), dtype=np.float64)

    def gross_size(self, accounts: IntArray) -> FloatArray:
        """Tokens of collateral plus debt in priced reserves: they fall only when keepers
        liquidate (the channel moves the quote reserve only)."""
        venue = self._venue
        held = venue.collateral[accounts] + venue.debt[accounts]
        return np.asarray(held[:, self._priced].sum(axis=1), dtype=np.float64)

    def withdrawable(self, account: int) -> float:
        """Quote collateral that keeps ``HF >= 1`` (:meth:`AaveVenue.withdrawable_quote`)."""
        return self._venue.withdrawable_quote(int(account))

    def deposit(self, account: int, amount: float, *, ts_ns: int) -> None:
        """Repay quote debt, then supply quote collateral."""
        self._venue.repay_and_supply(int(account), float(amount), ts_ns=ts_ns)

    def withdraw(self, account: int, amount: float, *, ts_ns: int) -> None:
        """Withdraw quote collateral (refused beyond :meth:`withdrawable`)."""
        self._venue.withdraw_quote(int(account), float(amount), ts_ns=ts_ns)


#: The ``aave`` kind (registered in :mod:`deleverage.world.kinds`).
AAVE_KIND = VenueKind(
    "aave", AaveKindConfig, build_aave_venue,
    "an Aave v3.3 lending market (deleverage.protocols.aave)",
)  # fmt: skip
