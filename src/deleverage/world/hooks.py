"""The hook surface of a world: risk layers that watch, route flow and absorb deficits.

A :class:`RiskLayer` is plugged into a :class:`~deleverage.world.core.World` (``layers=`` or
:meth:`~deleverage.world.core.World.add_layer`) and is called, in the order the layers were
added, at fixed points of every step (the module docstring of :mod:`deleverage.world.core`
draws the loop). Override only what you need; the base class does nothing:

- :meth:`RiskLayer.on_start` once before the first step: read ``world.venues``,
  ``world.traders`` (the :class:`~deleverage.world.traders.TraderMap`) and
  ``world.collateral`` (each venue's :class:`~deleverage.world.collateral.CollateralAccess`);
- :meth:`RiskLayer.on_round` after every venue stepped in a round, with a :class:`RoundView`
  (each venue's :class:`~deleverage.venues.protocol.VenueStep`, the shared prices the venues
  saw): a cross-venue risk oracle reads every venue's state here and may act on accounts
  through the collateral access or the venue's own operations; what it changes is seen by the
  next round;
- :meth:`RiskLayer.route_flow` for each asset whose shared book is about to take forced flow:
  it receives the signed base flow per venue (buys > 0) and returns what is left to land in the
  shared book (a cross-chain backstop pool absorbs part of it, with its own latency, fees and
  capacity); each layer receives what the previous one left;
- :meth:`RiskLayer.route_deficit` when a venue's losses beyond collateral grew in a round
  (:class:`Deficit`: the growth of each solvency line): it returns the quote amount it
  absorbs (a clearinghouse's default waterfall); the world records it on the venue's
  ``absorbed`` line, next to the venue's own lines, which stay as the venue reported them;
- :meth:`RiskLayer.on_step_end` after the step's rounds and the traders' rebalancing.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, NamedTuple

from deleverage.venues.protocol import SolvencyLines, VenueStep

if TYPE_CHECKING:
    from deleverage.world.core import World

__all__ = ["Deficit", "RiskLayer", "RoundView"]


class RoundView(NamedTuple):
    """One round of one step: what every venue did on the prices it saw."""

    step: int
    round: int  # global round counter since the start
    round_in_step: int
    ts_ns: int
    steps: Mapping[str, VenueStep]  # venue -> its step
    prices: Mapping[str, float]  # asset -> shared price the round stepped on (quote/base)


class Deficit(NamedTuple):
    """Growth of a venue's loss lines in one round (quote, >= 0) and its solvency now."""

    venue: str
    ts_ns: int
    insurance_paid: float
    backstop_loss: float
    adl_loss: float
    socialized_loss: float
    bad_debt: float
    solvency: SolvencyLines

    @property
    def total(self) -> float:
        """Every line's growth added up (quote)."""
        return (
            self.insurance_paid + self.backstop_loss + self.adl_loss + self.socialized_loss
            + self.bad_debt
        )  # fmt: skip


class RiskLayer:
    """Base of the world's pluggable layers (see the module docstring); every hook is a no-op."""

    name: str = "layer"

    def on_start(self, world: World) -> None:
        """Called once before the first step."""

    def on_round(self, world: World, view: RoundView) -> None:
        """Called after every venue stepped in a round."""

    def route_flow(
        self, world: World, asset: str, flows: Mapping[str, float], *, ts_ns: int
    ) -> dict[str, float]:
        """Return the part of each venue's forced flow (base, signed) left for the shared book."""
        return dict(flows)

    def route_deficit(self, world: World, deficit: Deficit) -> float:
        """Return the quote amount of ``deficit`` this layer absorbs (0: none)."""
        return 0.0

    def on_step_end(self, world: World, step: int, ts_ns: int) -> None:
        """Called at the end of every step."""
