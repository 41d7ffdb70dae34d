"""Inverse (coin-margined) contract math: BitMEX XBTUSD, Bybit inverse, Binance COIN-M, OKX.

An inverse contract is worth a fixed amount of quote currency (``contract_size`` USD) and is
margined and settled in the base coin. A position of ``contracts`` (signed: long > 0) is worth
``|contracts| x contract_size / price`` coin, and its PnL in coin from ``entry`` to ``exit`` is

    pnl = contracts x contract_size x (1 / entry - 1 / exit)

so a long gains less coin per dollar of price rise than it loses per dollar of fall. Margins
are fractions of the coin value. These are pure functions over NumPy arrays; the engine itself
is linear only (``MarketSpec.contract_type = "inverse"`` is reserved), so they serve analysis
and the venues' conformance tests. Formulas and sources: docs/formulas.md section 1.13.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
import numpy.typing as npt

from deleverage.errors import ValidationError

FloatArray = npt.NDArray[np.float64]
ArrayLike = npt.ArrayLike


def _arrays(*values: ArrayLike) -> list[FloatArray]:
    return list(np.broadcast_arrays(*(np.asarray(v, dtype=np.float64) for v in values)))


def position_value(
    contracts: ArrayLike, price: ArrayLike, *, contract_size: float = 1.0
) -> FloatArray:
    """Coin value ``|contracts| x contract_size / price`` of an inverse position."""
    q, p = _arrays(contracts, price)
    return np.abs(q) * contract_size / p


def unrealized_pnl(
    contracts: ArrayLike, entry_price: ArrayLike, mark_price: ArrayLike, *,
    contract_size: float = 1.0,
) -> FloatArray:  # fmt: skip
    """PnL in coin: ``contracts x contract_size x (1 / entry - 1 / mark)`` (signed contracts).

    Examples
    --------
    BitMEX Inverse Futures Guide: long 100,000 USD of XBT from 10,000 to 10,500.

    >>> round(float(unrealized_pnl(100_000, 10_000.0, 10_500.0)), 6)
    0.47619
    """
    q, e, m = _arrays(contracts, entry_price, mark_price)
    return q * contract_size * (1.0 / e - 1.0 / m)


def average_entry_price(contracts: ArrayLike, prices: ArrayLike) -> float:
    """Entry price of fills on one side: the contract-weighted **harmonic** mean of prices.

    ``sum(n_i) / sum(n_i / p_i)``: the average that keeps the coin value, as OKX and Bybit
    average inverse entries.
    """
    n, p = _arrays(contracts, prices)
    if np.any(p <= 0):
        raise ValidationError("prices", p.tolist(), "must all be > 0")
    return float(np.abs(n).sum() / (np.abs(n) / p).sum())


def bankruptcy_price(
    contracts: ArrayLike, entry_price: ArrayLike, margin: ArrayLike, *,
    contract_size: float = 1.0, close_fee_rate: float = 0.0,
) -> FloatArray:  # fmt: skip
    """Price at which a position's coin margin (and the fee to close there) is exhausted.

    ``margin + side x N (1/EP - 1/BP) - fee x N / BP = 0`` with ``N = |contracts| x
    contract_size`` gives ``BP = (side + fee) x N / (margin + side x N / EP)``. Without a fee
    and with the initial margin ``N / (EP x leverage)`` this is ``EP x lev / (lev + side)``
    (Bybit inverse isolated; BitMEX ``entry / (1 + side x IM)``). Bybit cross reserves the taker
    fee: ``1.00075 Q / (Q / EP + available)``. NaN for a flat position; ``inf`` where no price
    exhausts the margin (a short with more margin than its value).
    """
    q, e, m = _arrays(contracts, entry_price, margin)
    side = np.sign(q)
    n = np.abs(q) * contract_size
    denominator = m + side * n / e
    return np.where(q == 0, np.nan, _positive_or_inf((side + close_fee_rate) * n, denominator))


def _positive_or_inf(numerator: FloatArray, denominator: FloatArray) -> FloatArray:
    """``numerator / denominator`` where it is a positive price, ``inf`` where there is none."""
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = numerator / denominator
    return np.where(np.isfinite(ratio) & (ratio > 0), ratio, np.inf)


def liquidation_price(
    contracts: ArrayLike,
    entry_price: ArrayLike,
    margin: ArrayLike,
    *,
    maintenance_rate: ArrayLike,
    maintenance_deduction: ArrayLike = 0.0,
    contract_size: float = 1.0,
    mm_basis: Literal["mark", "entry"] = "mark",
) -> FloatArray:
    """Price at which the coin equity of an inverse position equals its maintenance margin.

    ``margin`` is the coin collateral without unrealized PnL (isolated margin, or the cross
    wallet balance net of the other positions' needs). With ``N = |contracts| x contract_size``:

    - ``mm_basis="mark"`` (Binance COIN-M: maintenance on the value at the mark,
      ``N x mmr / P - cum``): ``LP = N (mmr + side) / (margin + cum + side x N / EP)``;
    - ``mm_basis="entry"`` (Bybit: a constant ``MM = N x mmr / EP - cum``):
      ``LP = N / (N / EP + side x (margin - MM))``, i.e. Bybit's
      ``Q / [PV + (IM - MM)]`` (long) and ``Q / [PV - (IM - MM)]`` (short).

    NaN for a flat position; ``inf`` where the equity never falls to the maintenance margin.
    """
    q, e, m, rate, cum = _arrays(contracts, entry_price, margin, maintenance_rate,
                                 maintenance_deduction)  # fmt: skip
    if mm_basis not in ("mark", "entry"):
        raise ValidationError("mm_basis", mm_basis, "must be 'mark' or 'entry'")
    side = np.sign(q)
    n = np.abs(q) * contract_size
    if mm_basis == "mark":
        numerator = n * (rate + side)
        denominator = m + cum + side * n / e
    else:
        maintenance = n * rate / e - cum
        numerator = n
        denominator = n / e + side * (m - maintenance)
    return np.where(q == 0, np.nan, _positive_or_inf(numerator, denominator))


def cross_liquidation_price_with_close_fee(
    contracts: float, entry_price: float, *, available: float, maintenance_rate: float,
    bankruptcy: float, fee_rate: float, contract_size: float = 1.0,
) -> float:  # fmt: skip
    """Bybit inverse cross liquidation price, the fee to close at bankruptcy reserved.

    ``N (1/EP - 1/LP) = -side x (available - N x mmr / EP - N x fee / BP)``, solved for ``LP``
    (``available`` = account balance less order margin, coin).
    """
    if contracts == 0:
        raise ValidationError("contracts", contracts, "must be non-zero")
    side = 1.0 if contracts > 0 else -1.0
    n = abs(contracts) * contract_size
    cushion = available - n * maintenance_rate / entry_price - n * fee_rate / bankruptcy
    return n / (n / entry_price + side * cushion)


def adl_score(
    contracts: ArrayLike, entry_price: ArrayLike, mark_price: ArrayLike,
    bankruptcy: ArrayLike,
) -> FloatArray:  # fmt: skip
    """BitMEX ADL ranking of an inverse position: ``PNL% x EffLev`` (``PNL% / EffLev`` if < 0).

    With BitMEX's signed values ``value = -contracts / price`` (XBT): ``PNL% = (mark_value -
    entry_value) / |entry_value|`` and ``EffLev = |mark_value| / (mark_value - bankrupt_value)``.
    """
    q, e, m, b = _arrays(contracts, entry_price, mark_price, bankruptcy)
    mark_value, entry_value, bankrupt_value = -q / m, -q / e, -q / b
    pnl = (mark_value - entry_value) / np.abs(entry_value)
    leverage = np.abs(mark_value) / (mark_value - bankrupt_value)
    return np.where(pnl >= 0, pnl * leverage, pnl / leverage)


def round_price_conservatively(price: ArrayLike, side: ArrayLike, tick: float) -> FloatArray:
    """Round a long's liquidation or bankruptcy price up to the tick and a short's down.

    Bybit: "the bankruptcy price / liquidation price of a long position will be rounded up to
    the nearest 0.5 and a short down" (e.g. 7,735.37 -> 7,735.50).
    """
    p, s = _arrays(price, side)
    steps = p / tick
    return np.where(s > 0, np.ceil(steps - 1e-9), np.floor(steps + 1e-9)) * tick
