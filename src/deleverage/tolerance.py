"""Float tolerances, in one place.

Money is float64 in quote units. These constants say when two floats are "the same" for the
engine's decisions and invariant checks.
"""

from __future__ import annotations

#: Relative tolerance of the money-conservation check (DESIGN.md: 1e-9 or better).
CONSERVATION_RTOL = 1e-9

#: A position whose size is below this fraction of the sizes that produced it is flat.
SIZE_RTOL = 1e-9

#: Relative tolerance when checking that a price or size sits on the tick or lot grid.
GRID_RTOL = 1e-6

#: Absolute slack (quote) granted to margin checks so float noise never rejects an exact fit.
MARGIN_ATOL = 1e-9
