"""deleverage: a risk engine and laboratory for liquidation cascades and automated deleveraging.

The public API is re-exported here; see the README for a tour.
"""

from deleverage.errors import DeleverageError
from deleverage.events import Journal
from deleverage.exchange import AccountKind, Exchange
from deleverage.spec import MarginMode, MarginTier, MarketSpec

__all__ = [
    "AccountKind",
    "DeleverageError",
    "Exchange",
    "Journal",
    "MarginMode",
    "MarginTier",
    "MarketSpec",
]
