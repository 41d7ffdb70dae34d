"""Unified cross-protocol risk: one trader's exposure and health across every venue.

A venue sees only its own piece of a trader. This module puts the pieces side by side: one row
per position (:data:`POSITION_COLUMNS`: venue, account, asset, margin mode, size, notional,
equity, maintenance, local health) and one row per trader (:data:`AGGREGATE_COLUMNS`): the
trader's total equity over all its venue accounts, the sum of the venues' own maintenance, and
the **holistic maintenance**: each asset's tier table applied to the trader's gross notional in
that asset summed over venues, ``M_h = sum_a mm_a(sum_v |N_{v,a}|)``. Tiered maintenance is
convex in the notional and zero at zero, so ``M_h >= sum_v mm(N_v)`` on one tier table
(without a minimum maintenance margin): the aggregate position is
the one a liquidator would have to unwind, and the venues' tiers charge a larger position a
higher rate because unwinding it moves the price more (docs/formulas.md §20.3).

Health is equity over maintenance (1 is the liquidation line). Equity of a cross position is the
account's cross equity shared among its positions in proportion to their maintenance (so the
rows add up to the account's cross equity and each row shows the account's cross health); an
isolated position's equity is its margin plus its unrealized PnL. A trader's aggregate equity is
its accounts' total equity (cash, isolated margin and unrealized PnL), free cash included.

:func:`stressed_deficits` is the loss beyond margin each venue would take if a named stress
moved prices at once (a gap: nothing is liquidated on the way), the input of cover-2 sizing.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd

from deleverage.engine.venue import PerpVenue
from deleverage.errors import ValidationError
from deleverage.rules import margin as mm
from deleverage.spec import MarginMode, TierArrays

__all__ = [
    "AGGREGATE_COLUMNS",
    "POSITION_COLUMNS",
    "TraderAccounts",
    "accounts_from_map",
    "aggregate_health",
    "holistic_health",
    "holistic_maintenance",
    "perp_positions",
    "stressed_deficits",
    "trader_equity",
    "trader_table",
    "venue_tiers",
]

#: A trader's account on each venue it trades on: trader -> venue name -> account id.
TraderAccounts = Mapping[str, Mapping[str, int]]

#: One row per open position (quote amounts; size in base, long > 0; health = equity /
#: maintenance).
POSITION_COLUMNS = (
    "venue",
    "account",
    "asset",
    "mode",
    "size",
    "notional",
    "equity",
    "maintenance",
    "health",
)
#: One row per trader: its total equity and notional, the venues' own maintenance summed and
#: their health (``local_health``), the holistic maintenance and health, and its weakest venue.
AGGREGATE_COLUMNS = (
    "trader",
    "venues",
    "notional",
    "equity",
    "local_maintenance",
    "local_health",
    "holistic_maintenance",
    "holistic_health",
    "weakest_venue",
    "weakest_health",
)


def accounts_from_map(frame: pd.DataFrame) -> dict[str, dict[str, int]]:
    """:data:`TraderAccounts` from a trader map's frame (columns trader, venue, account)."""
    out: dict[str, dict[str, int]] = {}
    for trader, venue, account in frame[["trader", "venue", "account"]].itertuples(index=False):
        out.setdefault(str(trader), {})[str(venue)] = int(account)
    return out


def perp_positions(venue: PerpVenue, accounts: list[int] | None = None) -> pd.DataFrame:
    """The open positions of an order-book venue (:data:`POSITION_COLUMNS`).

    ``accounts``: only these accounts (default: every trader account). Reads the engine's
    columns for those accounts only and its cached cross margin state, so the cost follows the
    accounts asked for, not the venue's size.
    """
    ex = venue.exchange
    if accounts is None:
        ids = np.flatnonzero(ex.state_arrays()["kind"] == 0).astype(np.int64)
    else:
        ids = np.asarray(accounts, dtype=np.int64)
    state = ex.cached_margin_state()
    cross_equity = np.asarray(state["cross_equity"][ids], dtype=np.float64)
    cross_maint = np.asarray(state["cross_maintenance"][ids], dtype=np.float64)
    frames = []
    for asset, m in _markets(venue).items():
        cols = ex.columns(m)
        size = cols.size[ids]
        open_ = size != 0.0
        if not open_.any():
            continue
        market = ex.markets[m]
        size = size[open_]
        notional = np.abs(size) * market.mark
        maint = np.asarray(mm.maintenance_margin(notional, market.tiers), dtype=np.float64)
        isolated = cols.mode[ids][open_] == int(MarginMode.ISOLATED)
        upnl = size * (market.mark - cols.entry[ids][open_])
        # A cross position's share of its account's cross equity, by maintenance.
        share = np.divide(
            maint, cross_maint[open_], out=np.zeros_like(maint), where=cross_maint[open_] > 0
        )
        equity = np.where(
            isolated, cols.isolated_margin[ids][open_] + upnl, cross_equity[open_] * share
        )
        frames.append(
            pd.DataFrame(
                {
                    "venue": venue.name,
                    "account": ids[open_],
                    "asset": asset,
                    "mode": np.where(isolated, "isolated", "cross"),
                    "size": size,
                    "notional": notional,
                    "equity": equity,
                    "maintenance": maint,
                    "health": _health(equity, maint),
                }
            )
        )
    if not frames:
        return pd.DataFrame(columns=list(POSITION_COLUMNS))
    return pd.concat(frames, ignore_index=True).sort_values(["account", "asset"], kind="stable")


def venue_tiers(venues: Mapping[str, PerpVenue]) -> dict[str, TierArrays]:
    """Each asset's tier table for the holistic maintenance: that of the first venue (in the
    order given) that lists the asset."""
    tiers: dict[str, TierArrays] = {}
    for venue in venues.values():
        for asset, m in _markets(venue).items():
            tiers.setdefault(asset, venue.exchange.markets[m].tiers)
    return tiers


def trader_table(venues: Mapping[str, PerpVenue], accounts: TraderAccounts) -> pd.DataFrame:
    """Every trader's positions on every venue, with a ``trader`` column first (one margin
    table per venue)."""
    by_venue: dict[str, dict[int, str]] = {}
    for trader, held in accounts.items():
        for venue_name, account in held.items():
            if venue_name not in venues:
                raise ValidationError(
                    f"accounts.{trader}", venue_name, f"must name a venue {sorted(venues)}"
                )
            by_venue.setdefault(venue_name, {})[int(account)] = trader
    frames = []
    for venue_name, owner in by_venue.items():
        rows = perp_positions(venues[venue_name], list(owner))
        if not rows.empty:
            rows.insert(0, "trader", [owner[int(a)] for a in rows["account"]])
            frames.append(rows)
    if not frames:
        return pd.DataFrame(columns=["trader", *POSITION_COLUMNS])
    return pd.concat(frames, ignore_index=True).sort_values(["trader", "venue"], kind="stable")


def holistic_maintenance(
    gross_notional: Mapping[str, float], tiers: Mapping[str, TierArrays]
) -> float:
    """``sum over assets of mm_a(gross notional in a)``: each asset's tiers on the whole size.

    Examples
    --------
    >>> from deleverage import MarketSpec
    >>> from deleverage.spec import MarginTier
    >>> spec = MarketSpec.from_mapping({"symbol": "ETH", "tiers": (
    ...     MarginTier(notional_floor=0.0, max_leverage=20.0, maintenance_rate=0.025),
    ...     MarginTier(notional_floor=50_000.0, max_leverage=10.0, maintenance_rate=0.05))})
    >>> holistic_maintenance({"ETH": 80_000.0}, {"ETH": spec.tier_arrays})  # 4,000 - 1,250
    2750.0
    """
    total = 0.0
    for asset, notional in gross_notional.items():
        if asset not in tiers:
            raise ValidationError("tiers", asset, "must hold a tier table for every asset held")
        total += float(mm.maintenance_margin(abs(float(notional)), tiers[asset]))
    return total


def holistic_health(
    positions: pd.DataFrame, equity: Mapping[str, float], tiers: Mapping[str, TierArrays]
) -> pd.Series:
    """Each trader's holistic health ``E / M_h`` (index: trader), vectorized per asset."""
    if positions.empty:
        return pd.Series(dtype=np.float64)
    gross = positions.groupby(["trader", "asset"], sort=True)["notional"].sum()
    maint = pd.Series(0.0, index=gross.index)
    for asset in gross.index.get_level_values("asset").unique():
        if asset not in tiers:
            raise ValidationError("tiers", asset, "must hold a tier table for every asset held")
        rows = gross.index.get_level_values("asset") == asset
        maint[rows] = mm.maintenance_margin(np.abs(gross[rows].to_numpy()), tiers[asset])
    by_trader = maint.groupby(level="trader").sum()
    total = np.array([equity[str(t)] for t in by_trader.index], dtype=np.float64)
    return pd.Series(_health(total, by_trader.to_numpy(dtype=np.float64)), index=by_trader.index)


def aggregate_health(
    positions: pd.DataFrame,
    equity: Mapping[str, float],
    tiers: Mapping[str, TierArrays],
) -> pd.DataFrame:
    """One row per trader (:data:`AGGREGATE_COLUMNS`) from :func:`trader_table`'s rows.

    ``equity``: each trader's total equity over its venue accounts (:func:`trader_equity`).
    """
    rows = []
    for trader, group in positions.groupby("trader", sort=True):
        gross = group.groupby("asset")["notional"].sum().to_dict()
        local = float(group["maintenance"].sum())
        holistic = holistic_maintenance(gross, tiers)
        total = float(equity[str(trader)])
        weakest = group.sort_values(["health", "maintenance"], ascending=[True, False]).iloc[0]
        rows.append(
            (
                str(trader),
                int(group["venue"].nunique()),
                float(group["notional"].sum()),
                total,
                local,
                float(_health(np.array([total]), np.array([local]))[0]),
                holistic,
                float(_health(np.array([total]), np.array([holistic]))[0]),
                str(weakest["venue"]),
                float(weakest["health"]),
            )
        )
    return pd.DataFrame(rows, columns=list(AGGREGATE_COLUMNS))


def trader_equity(venues: Mapping[str, PerpVenue], accounts: TraderAccounts) -> dict[str, float]:
    """Each trader's total equity: cash, isolated margin and unrealized PnL over its accounts
    (the engine's cached margin state, one read per venue)."""
    totals = {
        name: venue.exchange.cached_margin_state()["total_equity"] for name, venue in venues.items()
    }
    return {
        trader: float(sum(float(totals[v][int(a)]) for v, a in held.items()))
        for trader, held in accounts.items()
    }


def stressed_deficits(positions: pd.DataFrame, shocks: Mapping[str, float]) -> dict[str, float]:
    """Each venue's loss beyond margin if every asset moved by ``shocks`` at once (quote).

    A position's PnL under the shock is ``size x price x shock`` (``price = notional /
    |size|``); an isolated position loses at most its equity, a cross account at most its
    cross equity over all its positions: ``deficit = max(-(equity + PnL), 0)`` per margin pool,
    summed per venue. Assets without a shock do not move. Liquidation fees are not counted.
    """
    if positions.empty:
        return {}
    shock = positions["asset"].map(lambda a: float(shocks.get(str(a), 0.0))).to_numpy()
    size = positions["size"].to_numpy(dtype=np.float64)
    notional = positions["notional"].to_numpy(dtype=np.float64)
    pnl = np.sign(size) * notional * shock
    pool = np.where(
        positions["mode"].to_numpy() == MarginMode.CROSS.name.lower(),
        positions["venue"].astype(str) + "|" + positions["account"].astype(str),
        positions["venue"].astype(str)
        + "|"
        + positions["account"].astype(str)
        + "|"
        + positions["asset"].astype(str),
    )
    frame = pd.DataFrame(
        {"venue": positions["venue"].to_numpy(), "pool": pool, "value": positions["equity"] + pnl}
    )
    per_pool = frame.groupby(["venue", "pool"], sort=True)["value"].sum()
    deficit = np.maximum(-per_pool, 0.0).groupby(level=0).sum()
    return {str(k): float(v) for k, v in deficit.items()}


def _health(equity: np.ndarray, maintenance: np.ndarray) -> np.ndarray:
    out = np.full(equity.shape, np.inf)
    np.divide(equity, maintenance, out=out, where=maintenance > 0)
    return out


def _markets(venue: PerpVenue) -> dict[str, int]:
    if not isinstance(venue, PerpVenue):
        raise ValidationError("venue", venue, "must be a PerpVenue")
    return venue.asset_markets
