"""Read models of the risk service: an account's positions, a market's heatmap and fund.

Pure functions of the engine's state (no I/O, no mutation); the HTTP layer calls them under
the service's lock.

- Liquidation price of an isolated position:
  :func:`deleverage.rules.margin.liquidation_price_isolated`
  (Binance USD-M: ``LP = (WB + cum - side |q| EP) / (|q| mmr - side |q|)``, maintenance on the
  notional at the liquidation price); of a cross position:
  :func:`deleverage.rules.margin.liquidation_price_cross` with the account's other cross positions
  held at their marks (``WB - TMM1 + UPNL1`` as the margin).
- Bankruptcy price: :func:`deleverage.rules.margin.bankruptcy_price` (``EP - side x margin / |q|``)
  and :func:`deleverage.rules.margin.bankruptcy_price_cross`.
- Probability of liquidation within a horizon: the mark as geometric Brownian motion hitting
  the liquidation price, :func:`deleverage.analytics.first_passage.gbm_hit_probability`.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np
import numpy.typing as npt

from deleverage.analytics.first_passage import gbm_hit_probability
from deleverage.analytics.heatmap import liquidation_heatmap
from deleverage.engine.exchange import Exchange
from deleverage.engine.state import AccountKind
from deleverage.rules import margin as mm
from deleverage.spec import MarginMode

__all__ = [
    "account_view",
    "heatmap_view",
    "insurance_view",
    "liquidation_prices",
    "liquidation_probability",
]

FloatArray = npt.NDArray[np.float64]


def _num(value: float) -> float | None:
    return float(value) if math.isfinite(value) else None


def liquidation_prices(
    ex: Exchange, market: int, accounts: npt.NDArray[np.int64]
) -> tuple[FloatArray, FloatArray]:
    """Liquidation and bankruptcy prices of ``accounts``' positions
    (:meth:`deleverage.engine.scans.MarginScans.liquidation_prices`)."""
    return ex.liquidation_prices(market, accounts)


def liquidation_probability(
    mark: float,
    liquidation_price: float,
    side: int,
    *,
    volatility: float,
    drift: float,
    horizon_s: float,
) -> float:
    """Probability that the mark reaches the liquidation price within ``horizon_s`` (GBM).

    0 when there is no liquidation price (flat, or a long that cannot be liquidated); 1 when
    the mark is already at or beyond it.
    """
    if not math.isfinite(liquidation_price) or liquidation_price <= 0.0:
        return 0.0
    direction = "down" if side > 0 else "up"
    p = gbm_hit_probability(
        mark, liquidation_price, drift, volatility, horizon_s, direction=direction
    )
    return float(p)


def account_view(
    ex: Exchange,
    account: int,
    adl_position: Callable[[int, int], dict[str, int | None]],
) -> dict[str, Any]:
    """An account's margins and open positions with their risk figures.

    ``adl_position(market, account)`` gives the position's place in the ADL queue (the
    service keeps the queues ranked after every write: :meth:`Alerts.adl_position`).
    """
    margins = ex.account_margins(account)
    ratio = float(mm.margin_ratio(margins.cross_equity, margins.cross_maintenance))
    positions = []
    for m, state in enumerate(ex.markets):
        cols = ex.columns(m)
        size = float(cols.size[account])
        if size == 0.0:
            continue
        liq, bankrupt = liquidation_prices(ex, m, np.asarray([account], dtype=np.int64))
        value = ex.valuation(m)
        iso = int(cols.mode[account]) == MarginMode.ISOLATED
        upnl = float(value["upnl"][account])
        maintenance = float(value["maintenance"][account])
        equity = float(cols.isolated_margin[account]) + upnl if iso else margins.cross_equity
        own_ratio = float(mm.margin_ratio(equity, maintenance)) if iso else ratio
        positions.append(
            {
                "market": state.spec.symbol,
                "mode": "isolated" if iso else "cross",
                "size": size,
                "entry_price": float(cols.entry[account]),
                "mark_price": state.mark,
                "notional": float(value["notional"][account]),
                "unrealized_pnl": upnl,
                "isolated_margin": float(cols.isolated_margin[account]),
                "maintenance_margin": maintenance,
                "initial_margin": float(value["initial"][account]),
                "margin_ratio": _num(own_ratio),
                "liquidation_price": _num(float(liq[0])),
                "bankruptcy_price": _num(float(bankrupt[0])),
                "adl": adl_position(m, account),
            }
        )
    return {
        "account": account,
        "cash": margins.cash,
        "cross_equity": margins.cross_equity,
        "cross_initial_margin": margins.cross_initial,
        "cross_maintenance_margin": margins.cross_maintenance,
        "cross_margin_ratio": _num(ratio),
        "isolated_margin": margins.isolated_margin,
        "total_equity": margins.total_equity,
        "withdrawable": margins.withdrawable,
        "positions": positions,
    }


def heatmap_view(ex: Exchange, market: int, bucket_width: float) -> list[dict[str, Any]]:
    """The market's liquidation heatmap over trader positions (see ``liquidation_heatmap``)."""
    n = ex.n_accounts
    cols = ex.columns(market)
    kind = ex.state_arrays()["kind"]
    idx = np.flatnonzero((cols.size[:n] != 0.0) & (kind == AccountKind.TRADER)).astype(np.int64)
    liq, _ = liquidation_prices(ex, market, idx)
    size = cols.size[idx]
    frame = liquidation_heatmap(
        liq, size, np.where(size > 0, 1, -1), ex.markets[market].mark, bucket_width=bucket_width
    )
    records: list[dict[str, Any]] = frame.to_dict(orient="records")
    return records


def insurance_view(ex: Exchange, market: int, ts_ns: int) -> dict[str, Any]:
    """Balance and Bybit drawdown figures of the fund backing a market.

    ``balance`` and ``equity`` are the engine's own figures for the fund's account (its cash,
    and its cash plus any position's value), the numbers liquidations draw on; ``ledger_balance``
    is the fund ledger the drawdown rule reads, and ``consistent`` says whether the two agree.
    """
    fund = ex.insurance_fund(market)
    account = ex.insurance_account_for(market)
    loss, fraction = fund.drawdown_over_window(ts_ns)
    cash = ex.cash(account)
    margins = ex.account_margins(account)
    return {
        "market": ex.markets[market].spec.symbol,
        "fund_account": account,
        "balance": cash,
        "equity": margins.total_equity,
        "ledger_balance": fund.balance,
        "consistent": bool(abs(cash - fund.balance) <= 1e-9 * max(1.0, abs(cash))),
        "cumulative_pnl": fund.cumulative_pnl,
        "drawdown_window_s": fund.drawdown_window_s,
        "drawdown_loss": loss,
        "drawdown_fraction": fraction,
        "alert_fraction": fund.drawdown_alert_fraction,
        "drawdown_alert": fund.drawdown_alert(ts_ns),
        "depleted": fund.depleted,
    }
