"""The risk step: what happens on each mark update.

DESIGN.md's flow, per market and mark price::

    mark -> circuit breaker -> dynamic margin -> margin calls
         -> accounts below maintenance (isolated positions in the market; cross accounts
            exposed to it), most distressed first, within per-step caps
         -> how much to close (full, partial to a target, fixed fraction, tier down)
         -> backstop takeover (equity below a fraction of maintenance and the book cannot
            absorb the position above its bankruptcy price), or
            execution on the liquidity model / to the liquidator at the fillable price
         -> penalty to the insurance fund, capped so it never makes the account bankrupt
         -> fill beyond the bankruptcy price: the fund covers the shortfall; if it cannot,
            the position goes to ADL at the bankruptcy price instead (ranked queue,
            pro-rata), or the loss is socialized; what is left is recorded as bad debt.

Every effect is an event emitted through the engine, so replay reproduces it. The pool of a
position is the equity that backs it: the isolated margin plus unrealized PnL for an isolated
position, the account's cross equity for a cross position.
"""

from deleverage.engine.risk.step import RiskEngine
from deleverage.engine.risk.support import Book, MarketRisk, StepReport

__all__ = ["Book", "MarketRisk", "RiskEngine", "StepReport"]
