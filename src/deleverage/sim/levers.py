"""The venue's dynamic levers in a simulation: a market's ``[markets.dynamic]`` table
(:class:`deleverage.rules.dynamic.DynamicLevers`) bound to the run's clock and book.

:class:`MarketLevers` is the risk-parameter policy the runner hands to
:meth:`deleverage.engine.exchange.Exchange.set_dynamic_margin`: on every mark the engine asks it
for the stress multiplier ``k`` (realized volatility of the marks, or the implied volatility of
the schedule at the run's time; open interest; the book's depth over its base depth, read from
the market's :class:`~deleverage.sim.depth.MarketDepth`) and, when ``k`` changes, for the spec
with every lever moved (:func:`deleverage.rules.dynamic.levered_spec`), which it journals as a
``RiskParamsChanged`` event. Replay applies those events, so a replayed run has the same
parameters without this object.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from deleverage.rules.dynamic import (
    DynamicLevers,
    implied_volatility_at,
    lever_multiplier,
    levered_spec,
    realized_volatility,
)
from deleverage.spec import MarketSpec

_NS = 1_000_000_000


class MarketLevers:
    """A market's :class:`DynamicLevers` as an engine risk-parameter policy.

    Parameters
    ----------
    levers
        The scenario's table.
    start_ns
        The run's first time (``t_s = 0`` of the implied-volatility schedule).
    depth_ratio
        Returns the book's depth over its base depth now (1 without a book).
    """

    def __init__(
        self, levers: DynamicLevers, *, start_ns: int, depth_ratio: Callable[[], float]
    ) -> None:
        self.levers = levers
        self.start_ns = start_ns
        self._depth_ratio = depth_ratio

    @property
    def window_s(self) -> float:
        """Seconds of mark history the engine keeps for the realized volatility."""
        return self.levers.window_s

    def volatility(self, ts_ns: int, marks: Sequence[tuple[int, float]]) -> float | None:
        """The volatility the levers read at ``ts_ns`` (annualized; None when unknown)."""
        levers = self.levers
        if levers.volatility == "implied":
            t_s = (ts_ns - self.start_ns) / _NS
            return implied_volatility_at(levers.implied_volatility, t_s)
        if levers.volatility == "realized":
            return realized_volatility(marks, ts_ns=ts_ns, window_s=levers.window_s)
        return None

    def multiplier(
        self, ts_ns: int, marks: Sequence[tuple[int, float]], open_interest_notional: float
    ) -> float:
        """The stress multiplier ``k`` now (:func:`deleverage.rules.dynamic.lever_multiplier`)."""
        return lever_multiplier(
            self.levers,
            volatility=self.volatility(ts_ns, marks),
            open_interest_notional=open_interest_notional,
            depth_ratio=float(self._depth_ratio()),
        )

    def spec_for(self, base: MarketSpec, k: float) -> MarketSpec:
        """``base`` with every lever moved by ``k``."""
        return levered_spec(base, k, self.levers)
