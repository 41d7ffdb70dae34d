"""The HTML report of a CDP scenario: the liquidation designs side by side, on one page.

:func:`build_cdp_report` lays out, for a :class:`deleverage.sim.cdp_runner.CdpResult`:

1. a table of the designs' outcomes (auctions, near-zero sales, deficits, what the surplus
   buffer absorbed, debt auctions and MKR minted, bad debt, under-collateralized time) and a
   sentence per design saying where the loss went;
2. the market price against the oracle (OSM) price the system used;
3. every sale's price as a share of the market price then, per design (near zero: a keeper
   alone at the auction);
4. the Vow per design: pending system debt, surplus, what debt auctions raised;
5. keepers' free capital and the gas price;
6. collateral sold into the market per hour (the forced flow).

plotly.js is inlined once (in the first figure), so the file opens without a network.
"""

from __future__ import annotations

import html
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from deleverage._files import atomic_write
from deleverage.protocols.maker.actions import NEAR_ZERO_RATIO

if TYPE_CHECKING:
    import plotly.graph_objects as go

    from deleverage.sim.cdp_runner import CdpResult

__all__ = ["build_cdp_report", "cdp_figures", "cdp_outcome_rows", "write_cdp_report"]

COLORS = {"english": "#d62728", "dutch": "#1f77b4"}
NEAR_ZERO = NEAR_ZERO_RATIO


def _times(ts_ns: pd.Series) -> pd.Series:
    return pd.to_datetime(ts_ns, unit="ns", utc=True)


def _thin(frame: pd.DataFrame, limit: int = 4000) -> pd.DataFrame:
    every = max(1, len(frame) // limit)
    return frame.iloc[::every]


def cdp_outcome_rows(result: CdpResult) -> list[tuple[str, dict[str, str]]]:
    """The outcome table: (label, {design: formatted value})."""
    fields = [
        ("auctions started", "auctions", "{:,.0f}"),
        ("sales", "sales", "{:,.0f}"),
        (f"near-zero sales (< {NEAR_ZERO:.0%} of market)", "near_zero_sales", "{:,.0f}"),
        ("DAI raised", "dai_raised", "{:,.0f}"),
        ("auction deficits (DAI)", "auction_deficits", "{:,.0f}"),
        ("keeper incentives paid (DAI)", "keeper_incentives", "{:,.0f}"),
        ("absorbed by the surplus buffer (insurance_paid)", "insurance_paid", "{:,.0f}"),
        ("debt auctions settled", "debt_auctions_settled", "{:,.0f}"),
        ("raised by debt auctions (socialized_loss)", "socialized_loss", "{:,.0f}"),
        ("MKR minted", "mkr_minted", "{:,.1f}"),
        ("bad debt (uncovered at the end)", "bad_debt", "{:,.0f}"),
        ("under-collateralized vault-hours", "undercollateralized_vault_s", "{:,.0f}"),
        ("keeper gas paid (DAI)", "keeper_gas_paid", "{:,.0f}"),
    ]
    rows = []
    for label, key, fmt in fields:
        values = {}
        for design, summary in result.summaries.items():
            value = summary.get(key, 0.0)
            if key == "undercollateralized_vault_s":
                value = value / 3600.0
            values[design] = fmt.format(value)
        rows.append((label, values))
    return rows


def _sentence(design: str, s: dict[str, Any]) -> str:
    name = {"english": "English auctions (Liquidations 1.2)", "dutch": "Dutch auctions (2.0)"}
    loss = s["auction_deficits"] + s["keeper_incentives"]
    return (
        f"{name.get(design, design)}: {s['auctions']:,} auctions, {s['near_zero_sales']:,} "
        f"sales below {NEAR_ZERO:.0%} of the market price; deficits and incentives of "
        f"{loss:,.0f} DAI, of which the surplus buffer absorbed {s['insurance_paid']:,.0f}, "
        f"debt auctions raised {s['socialized_loss']:,.0f} (minting {s['mkr_minted']:,.1f} MKR) "
        f"and {s['bad_debt']:,.0f} was left as bad debt."
    )


def cdp_figures(result: CdpResult) -> dict[str, go.Figure]:
    """The report's figures by section name."""
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    steps, sales = result.steps, result.sales
    designs = list(result.summaries)
    first = _thin(steps[steps["design"] == designs[0]])
    t = _times(first["ts_ns"])
    prices = go.Figure()
    prices.add_trace(go.Scatter(x=t, y=first["market_price"], name="market (index)"))
    prices.add_trace(go.Scatter(x=t, y=first["osm_price"], name="oracle used (OSM, 1 h late)"))
    prices.update_layout(title="Collateral price", yaxis_title="DAI per unit")

    auction = go.Figure()
    for design in designs:
        part = sales[sales["design"] == design]
        auction.add_trace(
            go.Scatter(
                x=_times(part["ts_ns"]), y=part["price_ratio"], mode="markers", name=design,
                marker={"color": COLORS.get(design), "size": 5, "opacity": 0.6},
            )
        )  # fmt: skip
    auction.add_hline(y=NEAR_ZERO, line_dash="dot", annotation_text="near zero")
    auction.update_layout(title="Sale price / market price, every sale", yaxis_title="ratio")

    vow = make_subplots(rows=1, cols=len(designs), subplot_titles=designs, shared_yaxes=True)
    for c, design in enumerate(designs, start=1):
        part = _thin(steps[steps["design"] == design])
        tt = _times(part["ts_ns"])
        for column, label in (
            ("pending_debt", "pending system debt"),
            ("surplus", "surplus buffer"),
            ("insurance_paid", "absorbed by surplus (cum.)"),
            ("socialized_loss", "raised by debt auctions (cum.)"),
            ("bad_debt", "bad debt"),
        ):
            vow.add_trace(go.Scatter(x=tt, y=part[column], name=f"{design}: {label}"), row=1, col=c)
    vow.update_layout(title="The Vow: deficit, surplus buffer, debt auctions (DAI)")

    keepers = make_subplots(specs=[[{"secondary_y": True}]])
    for design in designs:
        part = _thin(steps[steps["design"] == design])
        keepers.add_trace(
            go.Scatter(
                x=_times(part["ts_ns"]), y=part["keeper_capital"],
                name=f"{design}: keepers' free capital", line={"color": COLORS.get(design)},
            )
        )  # fmt: skip
    keepers.add_trace(
        go.Scatter(
            x=t,
            y=first["gas_price_gwei"],
            name=f"gas price (gwei, {designs[0]} run)",
            line={"dash": "dot"},
        ),
        secondary_y=True,
    )
    keepers.update_layout(title="Keepers' capital (DAI) and gas price")

    flow = go.Figure()
    for design in designs:
        part = steps[steps["design"] == design]
        hourly = part.groupby(part["ts_ns"] // (3600 * 10**9))["collateral_sold"].sum()
        flow.add_trace(
            go.Bar(
                x=_times(pd.Series(hourly.index * 3600 * 10**9)), y=hourly.to_numpy(),
                name=design, marker_color=COLORS.get(design),
            )
        )  # fmt: skip
    flow.update_layout(title="Collateral sold into the market per hour (forced flow)")
    return {"prices": prices, "auctions": auction, "vow": vow, "keepers": keepers, "flow": flow}


def build_cdp_report(result: CdpResult) -> str:
    """The self-contained HTML page of a CDP run (module docstring)."""
    figures = cdp_figures(result)
    divs = [
        fig.to_html(full_html=False, include_plotlyjs=i == 0)
        for i, fig in enumerate(figures.values())
    ]
    designs = list(result.summaries)
    head = "".join(f"<th>{html.escape(d)}</th>" for d in designs)
    body = "".join(
        f"<tr><td>{html.escape(label)}</td>"
        + "".join(f"<td>{html.escape(values[d])}</td>" for d in designs)
        + "</tr>"
        for label, values in cdp_outcome_rows(result)
    )
    sentences = "".join(
        f"<p>{html.escape(_sentence(d, s))}</p>" for d, s in result.summaries.items()
    )
    scenario = result.scenario
    return f"""<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>{html.escape(scenario.name)}: CDP liquidations</title>
<style>body{{font-family:sans-serif;max-width:1200px;margin:auto}}
table{{border-collapse:collapse}}td,th{{border:1px solid #ccc;padding:4px 8px;text-align:right}}
td:first-child{{text-align:left}}</style></head><body>
<h1>{html.escape(scenario.name)}</h1><p>{html.escape(scenario.description)}</p>
<h2>Outcome, side by side</h2>{sentences}
<table><tr><th></th>{head}</tr>{body}</table>
<p>Every auction deficit lands on one line: the surplus buffer absorbs it first
(<i>insurance_paid</i>), debt auctions mint MKR for the rest (<i>socialized_loss</i>: MKR
holders are diluted), and what no debt auction covered by the end is <i>bad debt</i>. English
auctions sell when the last bid has stood <i>ttl</i>: a keeper alone at an auction wins it for
almost nothing, and keepers' DAI is locked in bids until then. Dutch auctions sell at once to
whoever pays the falling price and reset (<i>redo</i>) before the price falls below
<i>cusp</i>, so keepers' capital turns over faster and no sale is near zero.</p>
<h2>Prices</h2>{divs[0]}<h2>Auction prices</h2>{divs[1]}<h2>Deficit and debt auctions</h2>{divs[2]}
<h2>Keepers and gas</h2>{divs[3]}<h2>Forced flow</h2>{divs[4]}
<p>Result hash {result.result_hash[:16]}; run {result.wall_s:.1f} s.</p>
</body></html>"""


def write_cdp_report(path: str | Path, result: CdpResult) -> Path:
    """Write :func:`build_cdp_report` to ``path`` (atomically) and return the path."""
    page = build_cdp_report(result)
    return atomic_write(path, lambda tmp: tmp.write_text(page, encoding="utf-8"), field="report")
