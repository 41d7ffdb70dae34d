"""Proactive margin and predictive deleveraging: acting on a predicted cascade before it starts.

A venue that predicts a liquidation cascade can act before the mark gets there (issue #19):

- **proactive margin** (:class:`ProactiveMargin`): when the predicted cascade probability ``P``
  reaches ``level``, the venue announces a margin raise (a notice to the accounts it affects),
  waits ``grace_s`` seconds, then scales every tier by ``multiplier`` (maintenance rate times
  ``k``, maximum leverage over ``k``: :func:`deleverage.rules.dynamic.scale_spec`) as a
  ``RiskParamsChanged`` event. If ``P`` falls below ``release_level`` during the grace period,
  the raise is cancelled; once applied, it is lifted (the base spec restored) when ``P`` has
  stayed below ``release_level`` for ``hold_s`` seconds;
- **predictive deleveraging** (:class:`PredictiveDeleveraging`): while ``P >= level``, each
  open position whose own predicted probability of liquidation is at least
  ``account_level`` and which is still solvent and above maintenance (margin ratio below 1)
  is reduced by ``fraction`` of its size, a market order on the book at most once per
  ``cooldown_s``: part of the position goes before it can reach bankruptcy.

This module holds the policies' parameters and the pure selection rule; the engine applies
them (:mod:`deleverage.engine.risk.proactive`) from the prediction its caller reports
(:meth:`deleverage.engine.exchange.Exchange.report_risk`): the engine never computes a
prediction itself. Formulas and the definitions used in evaluation: docs/formulas.md,
"Proactive margin and predictive deleveraging"; docs/predict.md.
"""

from __future__ import annotations

from typing import Annotated, Self

import numpy as np
import numpy.typing as npt
from pydantic import Field, model_validator

from deleverage.spec import NonNegativeFloat, PositiveFloat, _Frozen

Probability = Annotated[float, Field(gt=0, lt=1, allow_inf_nan=False)]
FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]


class ProactiveMargin(_Frozen):
    """Raise margin after a notice when the predicted cascade probability reaches a level.

    Parameters
    ----------
    level
        Predicted cascade probability at which the raise is announced.
    release_level
        Probability below which a pending raise is cancelled and an applied one lifted
        (``<= level``: hysteresis, so parameters do not churn).
    grace_s
        Seconds between the notice and the raise.
    hold_s
        Seconds the probability must stay below ``release_level`` before the raise is lifted.
    multiplier
        ``k > 1``: maintenance rates times ``k``, maximum leverage over ``k``.
    """

    level: Probability = 0.5
    release_level: Probability = 0.25
    grace_s: NonNegativeFloat = 60.0
    hold_s: NonNegativeFloat = 120.0
    multiplier: Annotated[float, Field(gt=1, le=10, allow_inf_nan=False)] = 1.5

    @model_validator(mode="after")
    def _hysteresis(self) -> Self:
        if self.release_level > self.level:
            raise ValueError(
                f"release_level must be <= level ({self.level}), was {self.release_level}"
            )
        return self


class PredictiveDeleveraging(_Frozen):
    """Reduce the positions most likely to be liquidated while a cascade is predicted.

    Parameters
    ----------
    level
        Predicted cascade probability from which positions are reduced.
    account_level
        A position is reduced when its own predicted probability of liquidation is at least
        this.
    fraction
        Share of the position's size closed each time (rounded down to the lot).
    cooldown_s
        Seconds before the same account is reduced again.
    """

    level: Probability = 0.5
    account_level: Probability = 0.5
    fraction: Annotated[float, Field(gt=0, le=1, allow_inf_nan=False)] = 0.25
    cooldown_s: PositiveFloat = 60.0


def positions_to_reduce(
    probability: FloatArray,
    margin_ratio: FloatArray,
    *,
    account_level: float,
    cooling: npt.NDArray[np.bool_],
) -> npt.NDArray[np.bool_]:
    """Which positions predictive deleveraging reduces now.

    A position qualifies when its predicted probability is at least ``account_level``, it is
    solvent and not yet liquidatable (``0 <= margin_ratio < 1``, ratio = maintenance over
    equity) and it is not cooling down from an earlier reduction.

    Examples
    --------
    >>> positions_to_reduce(
    ...     np.array([0.9, 0.9, 0.2, 0.8]), np.array([0.5, 1.2, 0.5, 0.7]),
    ...     account_level=0.5, cooling=np.array([False, False, False, True]),
    ... ).tolist()
    [True, False, False, False]
    """
    return (probability >= account_level) & (margin_ratio >= 0.0) & (margin_ratio < 1.0) & ~cooling
