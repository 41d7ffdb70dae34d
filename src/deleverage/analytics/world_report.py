"""The HTML report of a world run: world panels and per-venue panels on one page.

Sections: the shared price of each asset against its exogenous path (what forced flow did to the
price every venue watches); liquidations per venue over time; each venue's loss lines
(insurance paid, ADL, socialized, bad debt, absorbed by risk layers); the contagion matrix
(which venue's liquidations caused which other venue's, per channel: docs/formulas.md §19.4);
the liquidation heatmaps of each venue side by side and summed
(:func:`~deleverage.analytics.world_views.world_heatmaps`); criticality per venue and for the
world (:func:`~deleverage.analytics.world_views.world_criticality`). plotly.js is inlined once,
so the page is self-contained, like the single-venue report (:mod:`deleverage.analytics.report`).
"""

from __future__ import annotations

import html
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from deleverage.analytics.report import _CSS, _flatten, _layout, _nice_width, _table, _thin, _times
from deleverage.analytics.world_views import (
    linear_depth_per_price,
    world_criticality,
    world_heatmaps,
)

if TYPE_CHECKING:
    import plotly.graph_objects as go

    from deleverage.world.result import WorldResult

__all__ = ["build_world_report", "world_panels", "write_world_report"]


def world_panels(result: WorldResult, *, shock: float = 0.02) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Heatmaps and criticality of the world at the end of the run, per asset (uses
    ``result.extra["levels"]`` and the scenario's shared books)."""
    levels: dict[str, pd.DataFrame] = result.extra.get("levels", {})
    scenario = result.extra.get("scenario")
    last = result.assets.groupby("asset", observed=True).tail(1).set_index("asset")
    heat, crit = [], []
    for asset, row in last.iterrows():
        price = float(row["shared"])
        heat.append(
            world_heatmaps(levels, asset=str(asset), price=price, bucket_width=_nice_width(price))
        )
        depth = _shared_depth(scenario, str(asset))
        if depth is not None:
            crit.append(
                world_criticality(
                    levels,
                    asset=str(asset),
                    price=price,
                    depth_per_price=linear_depth_per_price(depth, price),
                    shock=shock,
                )
            )
    return (
        pd.concat(heat, ignore_index=True) if heat else pd.DataFrame(),
        pd.concat(crit, ignore_index=True) if crit else pd.DataFrame(),
    )


def _shared_depth(scenario: Any, asset: str) -> float | None:
    if scenario is None:
        return None
    for a in scenario.assets:
        if a.name == asset and a.liquidity.model == "constant_depth":
            return float(a.liquidity.depth_per_pct)
    return None


def _price_figure(result: WorldResult) -> go.Figure:
    import plotly.graph_objects as go

    figure = go.Figure()
    for asset, frame in result.assets.groupby("asset", observed=True):
        thin = _thin(frame.reset_index(drop=True), "shared")
        t = _times(thin)
        figure.add_trace(go.Scatter(x=t, y=thin["exogenous"], name=f"{asset} exogenous",
                                    line={"dash": "dot"}))  # fmt: skip
        figure.add_trace(go.Scatter(x=t, y=thin["shared"], name=f"{asset} shared market"))
    return _layout(figure, "Exogenous and shared prices", y="quote per base")


def _per_venue(
    result: WorldResult, column: str, title: str, y: str, *, cumulative: bool
) -> go.Figure:
    import plotly.graph_objects as go

    figure = go.Figure()
    for venue, frame in result.venues.groupby("venue", observed=True):
        frame = frame.reset_index(drop=True)
        values = frame[column].cumsum() if cumulative else frame[column]
        thin = _thin(frame.assign(value=values), "value")
        figure.add_trace(go.Scatter(x=_times(thin), y=thin["value"], name=str(venue)))
    return _layout(figure, title, y=y)


def _venue_panels(result: WorldResult) -> go.Figure:
    """One panel per venue: its liquidated notional per minute and its losses beyond
    collateral (insurance paid plus uncovered lines, cumulative), on its own axes."""
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    groups = list(result.venues.groupby("venue", observed=True))
    figure = make_subplots(
        rows=max(len(groups), 1), cols=1, shared_xaxes=True,
        subplot_titles=[f"{v} ({result.kinds.get(str(v), '')})" for v, _ in groups] or [""],
        specs=[[{"secondary_y": True}] for _ in groups] or [[{"secondary_y": True}]],
    )  # fmt: skip
    for i, (_venue, frame) in enumerate(groups, start=1):
        frame = frame.reset_index(drop=True)
        minute = frame["ts_ns"] // 60_000_000_000
        per_minute = frame.groupby(minute).agg(ts_ns=("ts_ns", "first"),
                                               notional=("liquidated_notional", "sum"))  # fmt: skip
        figure.add_trace(
            go.Bar(x=_times(per_minute), y=per_minute["notional"], name="liquidated per minute",
                   marker={"color": "#c0392b"}, showlegend=i == 1),
            row=i, col=1,
        )  # fmt: skip
        losses = frame["insurance_paid"] + frame["adl_loss"] + frame["socialized_loss"]
        losses = losses + frame["bad_debt"] + frame["backstop_loss"]
        thin = _thin(frame.assign(losses=losses), "losses")
        figure.add_trace(
            go.Scatter(x=_times(thin), y=thin["losses"], name="losses beyond collateral",
                       line={"color": "#2c3e50"}, showlegend=i == 1),
            row=i, col=1, secondary_y=True,
        )  # fmt: skip
    figure = _layout(figure, "Each venue", y=None)
    figure.update_layout(height=max(300, 220 * len(groups)))
    return figure


def _losses_figure(result: WorldResult) -> go.Figure:
    import plotly.graph_objects as go

    last = result.venue_summary()
    figure = go.Figure()
    for line in ("insurance_paid", "backstop_loss", "adl_loss", "socialized_loss", "bad_debt",
                 "absorbed"):  # fmt: skip
        figure.add_trace(go.Bar(x=list(last.index.astype(str)), y=last[line], name=line))
    figure.update_layout(barmode="group")
    return _layout(figure, "Losses beyond collateral, by line", y="quote", x="venue")


def _contagion_figure(result: WorldResult) -> go.Figure:
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    channels = ("prices", "traders")
    figure = make_subplots(rows=1, cols=2, subplot_titles=[f"through {c}" for c in channels])
    for i, channel in enumerate(channels, start=1):
        m = result.contagion_matrix(channel).fillna(0.0)
        figure.add_trace(
            go.Heatmap(
                z=m.to_numpy(), x=[str(c) for c in m.columns], y=[str(r) for r in m.index],
                colorscale="Reds", showscale=i == 2, texttemplate="%{z:.0f}",
            ),
            row=1, col=i,
        )  # fmt: skip
    return _layout(figure, "Liquidations caused (rows: source, columns: venue)", y=None, x=None)


def _heatmap_figure(heat: pd.DataFrame) -> go.Figure:
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    venues = list(dict.fromkeys(heat["venue"])) if len(heat) else []
    figure = make_subplots(rows=1, cols=max(len(venues), 1), shared_yaxes=True,
                           subplot_titles=venues or ["no levels"])  # fmt: skip
    for i, venue in enumerate(venues, start=1):
        rows = heat[heat["venue"] == venue]
        for side, sign in (("long", -1.0), ("short", 1.0)):
            part = rows[rows["side"] == side].groupby("bucket_low")["notional"].sum()
            figure.add_trace(
                go.Bar(y=part.index, x=sign * part.to_numpy(), orientation="h", name=side,
                       marker={"color": "#c0392b" if side == "long" else "#2471a3"},
                       showlegend=i == 1),
                row=1, col=i,
            )  # fmt: skip
    figure.update_layout(barmode="relative")
    return _layout(figure, "Liquidation notional by price (longs left, shorts right)",
                   y="liquidation price", x=None)  # fmt: skip


def _layers_html(result: WorldResult) -> str:
    layers = result.extra.get("layers") or {}
    parts = []
    for name, panels in layers.items():
        parts.append(f"<h2>Risk layer: {html.escape(str(name))}</h2>")
        for title, frame in panels.items():
            parts.append(f"<h3>{html.escape(str(title))}</h3>{_frame_table(frame)}")
    return "\n".join(parts)


def _frame_table(frame: pd.DataFrame) -> str:
    if frame.empty:
        return "<p>none</p>"
    text: str = frame.to_html(float_format=lambda v: f"{v:,.4g}", border=0, classes="frame")
    return text


def build_world_report(
    result: WorldResult,
    *,
    baseline: WorldResult | None = None,
    without_layers: WorldResult | None = None,
) -> str:
    """The report of ``result`` as one self-contained HTML page; ``baseline`` is the same
    world with both channels cut (no contagion), ``without_layers`` the same shocks without the
    risk layers; both are compared in the summary."""
    heat, crit = world_panels(result)
    figures = {
        "prices": _price_figure(result),
        "liquidations": _per_venue(result, "liquidations", "Liquidations per venue (cumulative)",
                                   "liquidations", cumulative=True),
        "losses": _losses_figure(result),
        "panels": _venue_panels(result),
        "contagion": _contagion_figure(result),
        "heatmap": _heatmap_figure(heat),
    }  # fmt: skip
    divs = {}
    for i, (name, figure) in enumerate(figures.items()):
        divs[name] = figure.to_html(full_html=False, include_plotlyjs=i == 0,
                                    config={"displaylogo": False, "responsive": True})  # fmt: skip
    scenario = result.extra.get("scenario")
    name = scenario.name if scenario is not None else "world"
    summary = result.summary()
    rows = [(k, f"{v:,.6g}") for k, v in summary.items()]
    if baseline is not None:
        base = baseline.summary()
        rows += [(f"without contagion: {k}", f"{base[k]:,.6g}")
                 for k in ("liquidations", "insurance_paid", "uncovered", "bad_debt")]  # fmt: skip
    if without_layers is not None:
        bare = without_layers.summary()
        rows += [(f"without risk layers: {k}", f"{bare[k]:,.6g}")
                 for k in ("liquidations", "insurance_paid", "uncovered", "bad_debt")]  # fmt: skip
    params = _flatten(scenario.model_dump(mode="json")) if scenario is not None else []
    title = f"deleverage world report: {name}"
    description = scenario.description if scenario is not None else ""
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{html.escape(title)}</title>
<style>{_CSS}</style>
</head>
<body>
<main>
<h1>{html.escape(title)}</h1>
<p class="sub">{html.escape(description)}<br>result hash <code>{result.result_hash[:16]}</code></p>
<h2>The world</h2>
<div class="card">{divs["prices"]}</div>
<div class="grid"><div>{_table(rows)}</div></div>
<h2>Venues</h2>
{_frame_table(result.venue_summary())}
<div class="card">{divs["liquidations"]}</div>
<div class="card">{divs["losses"]}</div>
<div class="card">{divs["panels"]}</div>
<h2>Contagion: who caused whose liquidations</h2>
<div class="card">{divs["contagion"]}</div>
<h2>Where the liquidations are waiting (end of run)</h2>
<div class="card">{divs["heatmap"]}</div>
<h2>Criticality (shared book)</h2>
{_frame_table(crit)}
{_layers_html(result)}
<h2>Scenario parameters</h2>
{_table(params)}
<footer>Generated by deleverage. Attribution rule: deleverage.world.core.</footer>
</main>
</body>
</html>
"""


def write_world_report(
    path: str | Path,
    result: WorldResult,
    *,
    baseline: WorldResult | None = None,
    without_layers: WorldResult | None = None,
) -> Path:
    """Write :func:`build_world_report` to ``path`` (UTF-8) and return the path."""
    out = Path(path)
    page = build_world_report(result, baseline=baseline, without_layers=without_layers)
    out.write_text(page, encoding="utf-8")
    return out
