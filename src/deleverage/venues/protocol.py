"""The :class:`Venue` protocol: what every leveraged venue or protocol offers the world.

A venue is anything that holds leveraged positions and liquidates them: an order-book
perpetual exchange (:class:`deleverage.engine.venue.PerpVenue`, the first implementation), an
oracle-pool perpetual, a lending market or a CDP system. A multi-venue world steps each venue
on the prices of the assets it watches and routes what the venue forces into the market to the
shared liquidity of each asset; it never reaches inside a venue. So a venue promises five
things (the contract tests in ``tests/contract/`` hold every implementation to them):

1. **It steps on prices.** :meth:`Venue.step` takes, per asset it watches, a
   :class:`PriceInputs` (the index price of the rest of the market, and optionally the oracle
   price the venue reads and its own book price) at a time ``ts_ns`` that never goes backwards,
   runs its risk step (liquidations, auctions, deleveraging) and returns a :class:`VenueStep`.
   Bad input (an unknown asset, a price that is not finite and positive, time going backwards)
   raises a :class:`~deleverage.errors.ValidationError` before anything changes.
2. **It reports its forced flow.** ``VenueStep.forced_flow`` is, per asset, the signed base
   quantity the venue's liquidations pushed into that asset's market in the step (buys > 0,
   sells < 0): the input of the shared liquidity layer.
3. **It exposes its liquidation prices.** :meth:`Venue.liquidation_levels` lists, per open
   position, the asset price at which it becomes liquidatable under the current state (NaN
   where no such price exists), so heatmaps and criticality work on any venue.
4. **It keeps its solvency lines.** :meth:`Venue.solvency` returns :class:`SolvencyLines`:
   cumulative quote amounts, each loss beyond a position's collateral on exactly one named
   line (insurance paid, backstop loss, ADL, socialized loss, bad debt), and the fund's balance.
5. **It journals its events.** :meth:`Venue.journal` is the venue's append-only event log;
   its length never shrinks, and a step that changes state appends to it.

Optionally a venue can say which of the coming steps are **quiet** (:class:`QuietVenue`): given
the prices ahead (:class:`QuietPath`), ``quiet_steps`` counts the leading steps at which its
step would liquidate nothing, force nothing and change nothing but bookkeeping that
``advance_quiet`` replays in bulk (marks, journal rows of marks, clocks, accruals), exactly as
the step-by-step run would. A world skips a stretch only when every venue counts it quiet;
a venue without the methods (:func:`quiet_steps_of` gives 0) keeps the world stepping.

All amounts are in the venue's quote currency; sizes in base units of the asset.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import TYPE_CHECKING, NamedTuple, Protocol, runtime_checkable

import numpy as np
import numpy.typing as npt
import pandas as pd

from deleverage.errors import ValidationError

if TYPE_CHECKING:
    from deleverage.engine.events import Journal

__all__ = [
    "LIQUIDATION_LEVEL_COLUMNS",
    "PriceInputs",
    "QuietPath",
    "QuietVenue",
    "SolvencyLines",
    "Venue",
    "VenueStep",
    "check_price_inputs",
    "quiet_steps_of",
]

#: Columns of :meth:`Venue.liquidation_levels`: the asset, the account, the signed size (base,
#: long > 0), the notional at the current price (quote) and the liquidation price (quote per
#: base; NaN where the position cannot be liquidated by a price move of this asset alone).
LIQUIDATION_LEVEL_COLUMNS = ("asset", "account", "size", "notional", "liquidation_price")


class PriceInputs(NamedTuple):
    """The prices a venue may read for one asset at one time (quote per base).

    ``index_price`` is the exogenous price of the rest of the market; ``oracle_price`` the
    price the venue's oracle publishes (None: the index); ``book_price`` the venue's own book
    price (None: the index). Each venue's rule decides which it marks to.
    """

    index_price: float
    oracle_price: float | None = None
    book_price: float | None = None

    @property
    def oracle(self) -> float:
        """The oracle's price, or the index when no oracle price is given."""
        return self.index_price if self.oracle_price is None else self.oracle_price


class SolvencyLines(NamedTuple):
    """Where losses went, cumulative since the venue started (quote).

    ``insurance_paid`` (the fund covered a shortfall), ``backstop_loss`` (the largest loss of
    equity a backstop vault has shown on positions it took over), ``adl_loss`` (profit taken
    from opposing traders by deleveraging, beyond what their positions were worth at the
    bankruptcy price),
    ``socialized_loss`` (spread over traders pro rata) and ``bad_debt`` (declared, uncovered).
    ``fund_balance`` is the insurance fund's balance now.
    """

    fund_balance: float
    insurance_paid: float
    backstop_loss: float
    adl_loss: float
    socialized_loss: float
    bad_debt: float

    @property
    def uncovered(self) -> float:
        """Losses no fund paid: ADL, socialized and bad debt."""
        return self.adl_loss + self.socialized_loss + self.bad_debt


class VenueStep(NamedTuple):
    """What one :meth:`Venue.step` did."""

    ts_ns: int
    liquidations: int
    liquidated_notional: float
    forced_flow: Mapping[str, float]
    solvency: SolvencyLines


@runtime_checkable
class Venue(Protocol):
    """A leveraged venue or protocol stepping on prices (see the module docstring)."""

    @property
    def name(self) -> str:
        """A short name, unique within a world."""
        ...

    @property
    def assets(self) -> tuple[str, ...]:
        """The assets whose prices the venue reads, in a fixed order."""
        ...

    def step(self, prices: Mapping[str, PriceInputs], *, ts_ns: int) -> VenueStep:
        """Read the prices of every watched asset at ``ts_ns`` and run the risk step."""
        ...

    def liquidation_levels(self) -> pd.DataFrame:
        """Open positions and their liquidation prices (:data:`LIQUIDATION_LEVEL_COLUMNS`)."""
        ...

    def solvency(self) -> SolvencyLines:
        """The venue's solvency lines now."""
        ...

    def journal(self) -> Journal:
        """The venue's event journal."""
        ...


class QuietPath(NamedTuple):
    """The prices a venue would step on over the next ``L`` steps, as a world hands them.

    Step ``j`` is at ``ts_ns[j]`` (ascending) on ``PriceInputs(index_prices[j, i],
    index_prices[j, i], book_prices[j, i])`` for the venue's ``i``-th asset
    (:attr:`Venue.assets` order): the oracle is the index, the book the venue's own book
    price (the index where it has none).
    """

    ts_ns: npt.NDArray[np.int64]
    index_prices: npt.NDArray[np.float64]
    book_prices: npt.NDArray[np.float64]

    def head(self, n: int) -> QuietPath:
        """The first ``n`` steps."""
        return QuietPath(self.ts_ns[:n], self.index_prices[:n], self.book_prices[:n])

    def inputs(self, j: int, assets: tuple[str, ...]) -> dict[str, PriceInputs]:
        """What the venue steps on at step ``j``."""
        out = {}
        for i, asset in enumerate(assets):
            p = float(self.index_prices[j, i])
            out[asset] = PriceInputs(p, p, float(self.book_prices[j, i]))
        return out


@runtime_checkable
class QuietVenue(Protocol):
    """The optional quiet-stretch methods of a venue (see the module docstring)."""

    def quiet_steps(self, path: QuietPath) -> int:
        """How many leading steps of ``path`` are certainly quiet (0: none, or cannot tell).
        Changes nothing."""
        ...

    def advance_quiet(self, path: QuietPath) -> None:
        """Apply the steps of ``path`` (all counted quiet by :meth:`quiet_steps` on the state
        now) with the effects of stepping them one by one."""
        ...


def quiet_steps_of(venue: object, path: QuietPath) -> int:
    """:meth:`QuietVenue.quiet_steps` of ``venue``, or 0 for a venue without it ("cannot
    skip": the world steps it one step at a time)."""
    method = getattr(venue, "quiet_steps", None)
    if method is None or not hasattr(venue, "advance_quiet"):
        return 0
    n = int(method(path))
    return min(max(n, 0), len(path.ts_ns))


def check_price_inputs(
    prices: Mapping[str, PriceInputs], assets: tuple[str, ...], *, ts_ns: int, last_ts_ns: int
) -> None:
    """Raise :class:`ValidationError` unless ``prices`` covers exactly ``assets`` with finite,
    positive prices and ``ts_ns`` does not go backwards; a helper for implementations."""
    if _fast_ok(prices, assets, ts_ns, last_ts_ns):
        return
    if isinstance(ts_ns, bool) or not isinstance(ts_ns, int):
        raise ValidationError("ts_ns", ts_ns, "must be an integer (nanoseconds)")
    if ts_ns < last_ts_ns:
        raise ValidationError("ts_ns", ts_ns, f"must not go backwards (last step {last_ts_ns})")
    unknown = sorted(set(prices) - set(assets))
    if unknown:
        raise ValidationError("prices", unknown[0], f"must name a watched asset {list(assets)}")
    missing = [a for a in assets if a not in prices]
    if missing:
        raise ValidationError("prices", missing[0], "is missing: every watched asset needs one")
    for asset, inputs in prices.items():
        if not isinstance(inputs, PriceInputs):
            raise ValidationError(f"prices[{asset}]", inputs, "must be a PriceInputs")
        for field in ("index_price", "oracle_price", "book_price"):
            value = getattr(inputs, field)
            if value is None and field != "index_price":
                continue
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise ValidationError(f"prices[{asset}].{field}", value, "must be a number")
            if not math.isfinite(value) or value <= 0:
                raise ValidationError(
                    f"prices[{asset}].{field}", value, "must be a finite number > 0"
                )


def _fast_ok(
    prices: Mapping[str, PriceInputs], assets: tuple[str, ...], ts_ns: int, last_ts_ns: int
) -> bool:
    """Whether the common case is plainly valid (float prices, the exact assets); anything
    else goes through the full checks, which name what is wrong."""
    if type(ts_ns) is not int or ts_ns < last_ts_ns or len(prices) != len(assets):
        return False
    inf = math.inf
    for asset in assets:
        inputs = prices.get(asset)
        if type(inputs) is not PriceInputs:
            return False
        index, oracle, book = inputs
        if type(index) is not float or not 0.0 < index < inf:
            return False
        # The same float object as the index (a world's inputs) is already checked.
        if (oracle is not index and oracle is not None) and (
            type(oracle) is not float or not 0.0 < oracle < inf
        ):
            return False
        if (book is not index and book is not None) and (
            type(book) is not float or not 0.0 < book < inf
        ):
            return False
    return True
