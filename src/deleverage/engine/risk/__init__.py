"""The risk step, by stage: what happens on each mark update.

:mod:`.shortfall` (who pays a shortfall: fund, ADL, socialized loss, bad debt) <-
:mod:`.liquidate` (liquidating one account) <- :mod:`.batch` (the compiled path for isolated
positions) <- :mod:`.step` (:class:`RiskEngine`: circuit breaker, dynamic margin, margin calls,
the rounds); :mod:`.liquidator` (execution at a fillable price), :mod:`.policy_adl` (an ADL
laboratory policy) and :mod:`.support` (records and helpers) beside them. The flow per mark is
in :mod:`.step`'s docstring.
"""

from deleverage.engine.risk.step import RiskEngine
from deleverage.engine.risk.support import Book, MarketRisk, StepReport

__all__ = ["Book", "MarketRisk", "RiskEngine", "StepReport"]
