"""Collateral other than the quote currency: haircuts by tier, and the order venues sell it in.

Unified and multi-asset accounts let traders post coins (BTC, ETH, a staked token) as margin.
The venue values each coin at its index price less a haircut: the **collateral value** is

    value(q, P) = Σ_i  rate_i × |band_i ∩ [0, x)| × (P if the tiers count coins else 1)

where ``x`` is the holding measured the way the venue's tiers are (``basis``): in quote value
``x = q P`` (OKX discount-rate tiers, Binance portfolio-margin collateral-rate tiers) or in coins
``x = q`` (Bybit's tiered collateral value ratio), and ``band_i = [floor_i, floor_{i+1})``. One
tier is a flat haircut (Binance Multi-Assets Mode: BTC at 95 %). docs/formulas.md §2.4.

When an account's quote balance is short, the venue converts collateral to cover it
(:func:`sale_quantities`): the coins whose collateral value equals the deficit (Binance: "20,000
/ 97.5 % = 20,513 of BTC" converted for a 20,000 deficit), taken from the assets in the venue's
order: in proportion to each asset's collateral value (``pro_rata``, Binance Multi-Assets Mode)
or the highest collateral rate first (``highest_rate_first``: OKX auto-exchange, Binance
portfolio-margin negative-balance repayment), assets valued at zero never sold first.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from typing import Annotated, Literal, Self

import numpy as np
import numpy.typing as npt
from pydantic import Field, model_validator

from deleverage import portable_linalg as pla
from deleverage.spec import NonNegativeFloat, _Frozen

FloatArray = npt.NDArray[np.float64]

SaleOrder = Literal["pro_rata", "highest_rate_first"]
TierBasis = Literal["value", "quantity"]


class CollateralTier(_Frozen):
    """From ``floor`` (quote value or coins, by the asset's ``basis``) up to the next tier's
    floor, ``rate`` of the value counts as collateral (1 - haircut)."""

    floor: NonNegativeFloat
    rate: Annotated[float, Field(ge=0, le=1, allow_inf_nan=False)]


class CollateralAsset(_Frozen):
    """A coin accounts may post as margin: its ``symbol``, its tiers (the first from 0) and how
    they are measured (``basis``: ``"value"`` in quote, ``"quantity"`` in coins)."""

    symbol: Annotated[str, Field(min_length=1, max_length=32)]
    tiers: Annotated[tuple[CollateralTier, ...], Field(min_length=1)]
    basis: TierBasis = "value"

    @model_validator(mode="after")
    def _floors(self) -> Self:
        floors = [t.floor for t in self.tiers]
        if floors[0] != 0.0:
            raise ValueError(f"tiers must start at floor 0, started at {floors[0]}")
        if any(b <= a for a, b in itertools.pairwise(floors)):
            raise ValueError(f"tier floors must increase, were {floors}")
        return self

    def to_json(self) -> str:
        """Canonical JSON (the journal's form)."""
        return self.model_dump_json()

    @classmethod
    def from_json(cls, text: str) -> CollateralAsset:
        return cls.model_validate_json(text)


class CollateralPolicy(_Frozen):
    """How a venue turns collateral into quote when an account is short: the ``order`` it sells
    assets in, and the quote balance below which it converts outside a liquidation
    (``auto_exchange_threshold``, quote, >= 0: Binance Multi-Assets Mode's 10,000 USD; 0 converts
    any negative balance after each risk step)."""

    order: SaleOrder = "pro_rata"
    auto_exchange_threshold: NonNegativeFloat = 0.0


def _floors_rates(asset: CollateralAsset) -> tuple[FloatArray, FloatArray]:
    floors = np.array([t.floor for t in asset.tiers], dtype=np.float64)
    rates = np.array([t.rate for t in asset.tiers], dtype=np.float64)
    return floors, rates


def collateral_value(asset: CollateralAsset, quantity: npt.ArrayLike, price: float) -> FloatArray:
    """Collateral value (quote) of ``quantity`` coins (>= 0, array) at index ``price``.

    Examples
    --------
    Binance Multi-Assets Mode: BNB worth 1,000 USD at a 5 % haircut counts 950.

    >>> bnb = CollateralAsset(symbol="BNB", tiers=[CollateralTier(floor=0, rate=0.95)])
    >>> float(collateral_value(bnb, [2.0], 500.0)[0])
    950.0
    """
    q = np.asarray(quantity, dtype=np.float64)
    floors, rates = _floors_rates(asset)
    x = q * price if asset.basis == "value" else q
    upper = np.append(floors[1:], np.inf)
    # Part of x in each band [floor_i, floor_{i+1}).
    parts = np.clip(x[..., None] - floors, 0.0, upper - floors)
    weighted = pla.matmul(parts, rates)
    return np.asarray(weighted if asset.basis == "value" else weighted * price, dtype=np.float64)


def marginal_rate(asset: CollateralAsset, quantity: float, price: float) -> float:
    """The collateral rate of the holding's last unit (the tier it ends in)."""
    floors, rates = _floors_rates(asset)
    x = quantity * price if asset.basis == "value" else quantity
    k = int(np.searchsorted(floors, x, side="right")) - 1 if x > 0 else 0
    return float(rates[max(k, 0)])


def quantity_for_value(
    asset: CollateralAsset, quantity: float, price: float, value: float
) -> float:
    """Coins to take off the top of a holding of ``quantity`` so that its collateral value falls
    by ``value`` (all of it when the holding is worth less): the inverse of
    :func:`collateral_value` on the top tiers, solved tier by tier from the top."""
    if value <= 0.0 or quantity <= 0.0:
        return 0.0
    total = float(collateral_value(asset, [quantity], price)[0])
    if value >= total:
        return quantity
    floors, rates = _floors_rates(asset)
    unit = price if asset.basis == "value" else 1.0  # coins -> tier measure
    per_measure = 1.0 if asset.basis == "value" else price  # tier measure -> quote
    x = quantity * unit
    left = value
    k = int(np.searchsorted(floors, x, side="right")) - 1
    while k >= 0 and left > 0.0:
        band = x - floors[k]
        worth = band * rates[k] * per_measure
        if worth >= left:
            x -= left / (rates[k] * per_measure)
            left = 0.0
            break
        left -= worth
        x = floors[k]
        k -= 1
    return float(quantity - x / unit)


def quantity_with_value(asset: CollateralAsset, price: float, value: float) -> float:
    """Coins whose collateral value, from an empty holding, is ``value`` (quote): the inverse
    of :func:`collateral_value`, tier by tier from the bottom.

    Raises
    ------
    ValueError
        If the tiers cap the collateral value below ``value``.
    """
    if value <= 0.0:
        return 0.0
    floors, rates = _floors_rates(asset)
    unit = price if asset.basis == "value" else 1.0
    per_measure = 1.0 if asset.basis == "value" else price
    upper = np.append(floors[1:], np.inf)
    left = value
    for floor, top, rate in zip(floors, upper, rates, strict=True):
        worth = (top - floor) * rate * per_measure
        if worth >= left and rate > 0.0:
            return float((floor + left / (rate * per_measure)) / unit)
        left -= worth
    raise ValueError(
        f"value must be at most the collateral value the tiers of {asset.symbol} allow "
        f"({value - left:.6g}), was {value}"
    )


def sale_quantities(
    assets: Sequence[CollateralAsset],
    quantities: npt.ArrayLike,
    prices: npt.ArrayLike,
    deficit: float,
    order: SaleOrder,
) -> FloatArray:
    """Coins of each asset to sell so that the holding's collateral value falls by ``deficit``
    (quote; all of it when worth less), in the venue's ``order``.

    ``pro_rata`` takes from every asset in proportion to its collateral value; assets valued at
    zero are sold only once every valued asset is gone. ``highest_rate_first`` sells the asset
    whose last unit has the highest collateral rate first (ties: the listing order), then the
    next, zero-rated assets last.
    """
    q = np.asarray(quantities, dtype=np.float64)
    p = np.asarray(prices, dtype=np.float64)
    out = np.zeros(len(assets))
    if deficit <= 0.0:
        return out
    values = np.array(
        [float(collateral_value(a, [qi], pi)[0]) for a, qi, pi in zip(assets, q, p, strict=True)]
    )
    total = float(values.sum())
    if deficit >= total:
        # Everything with a value goes; zero-valued coins too (the account is bankrupt).
        return q.copy()
    if order == "pro_rata":
        share = values / total
        for i, asset in enumerate(assets):
            out[i] = quantity_for_value(asset, float(q[i]), float(p[i]), deficit * share[i])
        return out
    rates = np.array(
        [marginal_rate(a, float(qi), float(pi)) for a, qi, pi in zip(assets, q, p, strict=True)]
    )
    left = deficit
    for i in np.argsort(-rates, kind="stable").tolist():
        if left <= 0.0 or values[i] <= 0.0:
            continue
        take = min(left, float(values[i]))
        out[i] = quantity_for_value(assets[i], float(q[i]), float(p[i]), take)
        left -= take
    return out
