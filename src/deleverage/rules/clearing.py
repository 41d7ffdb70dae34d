"""Clearing arithmetic: a default waterfall, cover-N default-fund sizing and pro-rata haircuts.

A central counterparty (here: a clearinghouse whose members are venues) meets a member's default
with prefunded layers used strictly in order: each layer pays only what the layers before it
left unpaid, and whatever is left after the last layer is uncovered. These are pure functions of
amounts (quote); the stateful ledger is :class:`deleverage.world.clearing.ClearingHouse`. Sources
and formulas: docs/formulas.md §20.1 (CPMI-IOSCO *Principles for financial market
infrastructures*, 2012, Principle 4 "Credit risk", key consideration 4 (cover-2) and Principle
7; *Recovery of financial market infrastructures*, 2014, revised 2017, the recovery tools that
allocate uncovered losses: variation-margin gains haircutting; ISDA, *CCP loss allocation at the
end of the waterfall*, 2013; EMIR Art. 43 and 45 and Commission Delegated Regulation (EU)
153/2013 Art. 35: the CCP's dedicated own resources).
"""

from __future__ import annotations

import math
import numbers
from typing import NamedTuple

import numpy as np
import numpy.typing as npt

from deleverage.errors import ValidationError

__all__ = [
    "HaircutSplit",
    "WaterfallSplit",
    "cover_n_default_fund",
    "haircut_gains",
    "pro_rata_contributions",
    "pro_rata_draw",
    "run_waterfall",
    "stressed_exposures",
]

FloatArray = npt.NDArray[np.float64]


class WaterfallSplit(NamedTuple):
    """How a loss was met: ``paid[j]`` by layer ``j`` (in order) and ``residual`` unpaid."""

    paid: FloatArray
    residual: float


class HaircutSplit(NamedTuple):
    """A pro-rata haircut: ``taken[i]`` from gain ``i``, the common ``rate`` and ``residual``."""

    taken: FloatArray
    rate: float
    residual: float


def run_waterfall(loss: float, capacities: npt.ArrayLike) -> WaterfallSplit:
    """Meet ``loss`` with layers used strictly in order.

    ``paid[j] = min(c[j], max(loss - (c[0] + ... + c[j-1]), 0))`` and
    ``residual = max(loss - sum(c), 0)``: a layer pays only once every layer before it is
    exhausted, and ``sum(paid) + residual == loss``.

    Parameters
    ----------
    loss
        The loss to meet (quote, finite, >= 0).
    capacities
        What each layer can pay, in waterfall order (quote, finite, >= 0).

    Raises
    ------
    ValidationError
        A negative or non-finite loss or capacity.

    Examples
    --------
    >>> split = run_waterfall(150.0, [100.0, 30.0, 50.0])
    >>> split.paid.tolist(), split.residual
    ([100.0, 30.0, 20.0], 0.0)
    >>> run_waterfall(200.0, [100.0, 30.0]).residual
    70.0
    """
    _check_amount("loss", loss)
    caps = _amounts("capacities", capacities)
    before = np.concatenate(([0.0], np.cumsum(caps)[:-1])) if caps.size else caps
    paid = np.minimum(caps, np.maximum(float(loss) - before, 0.0))
    residual = max(float(loss) - float(paid.sum()), 0.0)
    return WaterfallSplit(paid, residual)


def stressed_exposures(stressed_losses: npt.ArrayLike, prefunded: npt.ArrayLike) -> FloatArray:
    """Each member's stressed exposure to the mutualized fund: ``max(L_i - R_i, 0)``.

    ``L_i`` is member ``i``'s loss beyond its defaulters' margin under the stress scenario,
    ``R_i`` the resources it prefunds ahead of the mutualized fund (its own insurance fund).
    """
    losses = _amounts("stressed_losses", stressed_losses)
    resources = _amounts("prefunded", prefunded)
    if losses.shape != resources.shape:
        raise ValidationError(
            "prefunded", resources.shape, f"must have one entry per member {losses.shape}"
        )
    return np.maximum(losses - resources, 0.0)


def cover_n_default_fund(exposures: npt.ArrayLike, *, cover: int = 2) -> float:
    """The mutualized default fund a cover-``n`` rule requires: the sum of the ``n`` largest
    stressed exposures.

    CPMI-IOSCO PFMI Principle 4, key consideration 4: a CCP "should maintain additional
    financial resources sufficient to cover a wide range of potential stress scenarios that
    should include, but not be limited to, the default of the two participants and their
    affiliates that would potentially cause the largest aggregate credit exposure to the CCP
    in extreme but plausible market conditions" (cover-2; cover-1 for other CCPs).

    Examples
    --------
    >>> cover_n_default_fund([10.0, 50.0, 0.0, 30.0])
    80.0
    >>> cover_n_default_fund([10.0, 50.0, 0.0, 30.0], cover=1)
    50.0
    """
    values = _amounts("exposures", exposures)
    if isinstance(cover, bool) or not isinstance(cover, int) or cover < 1:
        raise ValidationError("cover", cover, "must be an integer >= 1")
    if values.size == 0:
        return 0.0
    return float(np.sort(values)[::-1][:cover].sum())


def pro_rata_contributions(exposures: npt.ArrayLike, fund: float) -> FloatArray:
    """Split a default fund of ``fund`` among members in proportion to their stressed
    exposures (equal shares when every exposure is zero).

    ``d_i = fund x E_i / sum(E)``; the shares add up to ``fund``.

    Examples
    --------
    >>> pro_rata_contributions([10.0, 30.0], 80.0).tolist()
    [20.0, 60.0]
    """
    values = _amounts("exposures", exposures)
    _check_amount("fund", fund)
    if values.size == 0:
        return values
    total = float(values.sum())
    if total <= 0.0:
        return np.full(values.size, float(fund) / values.size)
    return float(fund) * values / total


def pro_rata_draw(amount: float, balances: npt.ArrayLike) -> WaterfallSplit:
    """Draw ``amount`` from several balances in proportion to them (the mutualized layer).

    ``draw_i = B_i x min(amount / sum(B), 1)``; ``residual = max(amount - sum(B), 0)``. No
    balance pays more than it holds, and each pays the same fraction of what it holds.

    Examples
    --------
    >>> split = pro_rata_draw(30.0, [20.0, 40.0])
    >>> split.paid.tolist(), split.residual
    ([10.0, 20.0], 0.0)
    """
    _check_amount("amount", amount)
    held = _amounts("balances", balances)
    total = float(held.sum())
    if total <= 0.0:
        return WaterfallSplit(np.zeros_like(held), float(amount))
    rate = min(float(amount) / total, 1.0)
    paid = held * rate
    return WaterfallSplit(paid, max(float(amount) - float(paid.sum()), 0.0))


def haircut_gains(shortfall: float, gains: npt.ArrayLike) -> HaircutSplit:
    """Variation-margin gains haircutting: take ``shortfall`` from the members' gains pro rata.

    Only positive gains are cut; ``rate = min(shortfall / sum(max(g_i, 0)), 1)``,
    ``taken_i = rate x max(g_i, 0)``, ``residual = shortfall - sum(taken)`` (CPMI-IOSCO,
    *Recovery of financial market infrastructures*, recovery tools for uncovered losses: the CCP
    pays members with variation-margin gains only part of them, in proportion).

    Examples
    --------
    >>> split = haircut_gains(30.0, [40.0, -10.0, 20.0])
    >>> split.taken.tolist(), split.rate, split.residual
    ([20.0, 0.0, 10.0], 0.5, 0.0)
    """
    _check_amount("shortfall", shortfall)
    values = np.asarray(gains, dtype=np.float64)
    if values.ndim != 1 or not np.all(np.isfinite(values)):
        raise ValidationError("gains", gains, "must be a one-dimensional array of finite numbers")
    positive = np.maximum(values, 0.0)
    total = float(positive.sum())
    if total <= 0.0 or shortfall == 0.0:
        return HaircutSplit(np.zeros_like(values), 0.0, float(shortfall))
    rate = min(float(shortfall) / total, 1.0)
    taken = positive * rate
    return HaircutSplit(taken, rate, max(float(shortfall) - float(taken.sum()), 0.0))


def _check_amount(field: str, value: float) -> None:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ValidationError(field, value, "must be a real number")
    number = float(value)
    if not math.isfinite(number):
        raise ValidationError(field, value, "must be finite")
    if number < 0.0:
        raise ValidationError(field, value, "must be >= 0")


def _amounts(field: str, values: npt.ArrayLike) -> FloatArray:
    array = np.asarray(values, dtype=np.float64)
    if array.ndim != 1:
        raise ValidationError(field, values, "must be one-dimensional")
    if not np.all(np.isfinite(array)):
        raise ValidationError(field, values, "must hold finite numbers")
    if np.any(array < 0.0):
        raise ValidationError(field, values, "must hold amounts >= 0")
    return array
