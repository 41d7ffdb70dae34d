"""The HTML report of a run: one self-contained page a risk desk can open offline.

:func:`build_report` lays out, for a run and (optionally) its ``feedback=False`` twin:

1. a verdict, "does this venue survive?", from the stress metrics (bad debt against the fund,
   ADL used or not: :func:`deleverage.analytics.stress.verdict`);
2. the price path: the index (exogenous price), the venue's book, mark with feedback, mark
   without feedback;
3. liquidated and ADL notional over time (bucketed, so a day fits on one chart);
4. the insurance fund and the cumulative bad debt and socialized loss; when the venue's
   dynamic levers moved, their path beside the price (:mod:`deleverage.analytics.levers`);
5. the liquidation heatmap of the population before the shock
   (:func:`deleverage.analytics.heatmap.liquidation_heatmap`, at the first mark);
6. the distribution of losses across accounts (net deposits minus final equity);
7. the metrics table and the scenario's parameters.

The page embeds plotly.js once (in the first figure) and the other figures reuse it, so the
file opens without a network. Long runs are thinned for drawing (every few steps, the extremes
kept); the metrics are computed on the full run.
"""

from __future__ import annotations

import html
import json
import math
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from deleverage.analytics.breakdown import crash_window, liquidation_breakdown
from deleverage.analytics.heatmap import liquidation_heatmap
from deleverage.analytics.levers import has_dynamic_parameters, risk_parameter_path
from deleverage.analytics.stress import (
    StressMetrics,
    metrics_table,
    run_account_losses,
    stress_metrics,
    verdict,
)

if TYPE_CHECKING:
    import plotly.graph_objects as go

    from deleverage.analytics.uncertainty import SeedSummary
    from deleverage.sim.runner import RunResult

__all__ = ["build_report", "report_figures", "write_report"]

#: Most points drawn per line (longer series are thinned, extremes kept).
MAX_LINE_POINTS = 3_000
#: Candidate bucket widths for the flow chart, seconds.
_BUCKETS_S = (1, 5, 10, 15, 30, 60, 300, 900, 3600, 14_400, 86_400)
_MAX_BUCKETS = 400
_COLORS = {
    "exogenous": "#7f7f7f",
    "book": "#e377c2",
    "mark": "#d62728",
    "baseline": "#1f77b4",
    "liquidations": "#ff7f0e",
    "adl": "#9467bd",
    "fund": "#2ca02c",
    "bad_debt": "#d62728",
    "socialized": "#8c564b",
    "long": "#d62728",
    "short": "#2ca02c",
    "loss": "#1f77b4",
}

_CSS = """
body { font-family: -apple-system, "Segoe UI", Helvetica, Arial, sans-serif; margin: 0;
       color: #222; background: #f6f7f9; }
main { max-width: 1200px; margin: 0 auto; padding: 24px 32px 48px; }
h1 { font-size: 1.7em; margin: 0 0 4px; }
h2 { font-size: 1.2em; margin: 32px 0 8px; border-bottom: 1px solid #ddd; padding-bottom: 4px; }
p.sub { color: #666; margin: 0 0 16px; }
.verdict { padding: 14px 18px; border-radius: 6px; border-left: 6px solid; background: #fff;
           line-height: 1.5; }
.verdict.ok { border-color: #2ca02c; } .verdict.adl { border-color: #ff9f1c; }
.verdict.bad { border-color: #d62728; }
.card { background: #fff; border-radius: 6px; padding: 8px; margin: 12px 0;
        box-shadow: 0 1px 2px rgba(0,0,0,.06); }
.grid { display: grid; grid-template-columns: 1fr 1fr; gap: 16px; }
table { border-collapse: collapse; width: 100%; background: #fff; font-size: .92em; }
td, th { padding: 5px 10px; border-bottom: 1px solid #eee; text-align: left; }
td.v { text-align: right; font-variant-numeric: tabular-nums; }
code { font-size: .9em; }
footer { color: #888; font-size: .85em; margin-top: 32px; }
"""


def _thin(frame: pd.DataFrame, column: str) -> pd.DataFrame:
    """At most about :data:`MAX_LINE_POINTS` rows: every k-th row plus each chunk's extremes."""
    n = len(frame)
    if n <= MAX_LINE_POINTS:
        return frame
    stride = math.ceil(n / (MAX_LINE_POINTS / 3))
    values = frame[column].to_numpy(dtype=np.float64)
    chunk = np.arange(n) // stride
    lows = pd.Series(values).groupby(chunk).idxmin().to_numpy()
    highs = pd.Series(values).groupby(chunk).idxmax().to_numpy()
    keep = np.unique(np.concatenate([np.arange(0, n, stride), lows, highs, [n - 1]]))
    return frame.iloc[keep]


def _times(frame: pd.DataFrame) -> list[str]:
    stamps = pd.to_datetime(frame["ts_ns"].to_numpy(dtype=np.int64), unit="ns", utc=True)
    return [t.strftime("%Y-%m-%d %H:%M:%S") for t in stamps]


def _bucket_s(duration_s: float, dt_s: float) -> float:
    for width in _BUCKETS_S:
        if width >= dt_s and duration_s / width <= _MAX_BUCKETS:
            return float(width)
    return float(_BUCKETS_S[-1])


def _nice_width(price: float) -> float:
    """A round bucket width near 0.25% of the price (1, 2 or 5 times a power of ten)."""
    raw = max(price * 0.0025, 1e-12)
    power = 10.0 ** math.floor(math.log10(raw))
    return min((m * power for m in (1.0, 2.0, 5.0, 10.0)), key=lambda w: abs(w - raw))


def _layout(
    figure: go.Figure, title: str, *, y: str | None, x: str | None = "time (UTC)"
) -> go.Figure:
    if x is not None:
        figure.update_layout(xaxis_title=x)
    if y is not None:
        figure.update_layout(yaxis_title=y)
    figure.update_layout(
        title=title,
        template="plotly_white",
        height=420,
        margin={"l": 60, "r": 20, "t": 50, "b": 50},
        legend={"orientation": "h", "y": -0.18},
    )
    return figure


def report_figures(
    result: RunResult,
    baseline: RunResult | None = None,
    *,
    losses: pd.DataFrame | None = None,
) -> dict[str, go.Figure]:
    """The report's plotly figures, by section name (``prices``, ``crash`` (the crash window),
    ``breakdown`` (liquidations by leverage, side and margin mode), ``flows``, ``fund``,
    ``heatmap``, ``losses``, and ``levers`` when risk parameters changed during the run)."""
    steps = result.steps
    if losses is None:
        losses = run_account_losses(result)
    figures = {
        "prices": _price_figure(steps, baseline),
        "crash": _crash_figure(steps),
        "breakdown": _breakdown_figure(result),
        "flows": _flow_figure(result, baseline),
        "fund": _fund_figure(steps),
        "heatmap": _heatmap_figure(result),
        "losses": _loss_figure(losses),
    }
    if has_dynamic_parameters(result.journal):
        figures["levers"] = _levers_figure(result)
    return figures


def _levers_figure(result: RunResult) -> go.Figure:
    """The mark and the dynamic risk parameters' path (margin multiplier, liquidation fee) of
    each market, one row per market, the parameters on the right axis."""
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    steps = result.steps
    path = risk_parameter_path(result.journal)
    markets = list(dict.fromkeys(steps["market"].astype(str)))
    figure = make_subplots(
        rows=len(markets), cols=1, shared_xaxes=True, vertical_spacing=0.08,
        subplot_titles=markets if len(markets) > 1 else None,
        specs=[[{"secondary_y": True}] for _ in markets],
    )  # fmt: skip
    end_ns = int(steps["ts_ns"].iloc[-1])
    for row, symbol in enumerate(markets, start=1):
        first = row == 1
        part = _thin(steps[steps["market"].astype(str) == symbol], "mark")
        figure.add_trace(go.Scatter(
            x=_times(part), y=part["mark"].tolist(), name="mark", legendgroup="mark",
            showlegend=first, line={"color": _COLORS["mark"]},
        ), row=row, col=1, secondary_y=False)  # fmt: skip
        own = path[path["market"] == row - 1]
        ts = [*own["ts_ns"].tolist(), end_ns]
        times = _times(pd.DataFrame({"ts_ns": np.asarray(ts, dtype=np.int64)}))
        for column, name, color in (
            ("margin_multiplier", "maintenance rate / listed", _COLORS["adl"]),
            ("liquidation_fee_rate", "liquidation fee (% of notional)", _COLORS["liquidations"]),
        ):
            values = own[column].to_numpy(dtype=np.float64)
            if column == "liquidation_fee_rate":
                values = values * 100.0
            y = [*values.tolist(), float(values[-1])] if len(values) else []
            figure.add_trace(go.Scatter(
                x=times, y=y, name=name, legendgroup=column, showlegend=first,
                line={"color": color, "shape": "hv"},
            ), row=row, col=1, secondary_y=True)  # fmt: skip
        figure.update_yaxes(title_text="mark", row=row, col=1, secondary_y=False)
        figure.update_yaxes(title_text="lever", row=row, col=1, secondary_y=True)
    figure = _layout(figure, "Dynamic risk parameters beside the price", y=None)
    figure.update_layout(height=max(420, 300 * len(markets)))
    return figure


def _price_figure(steps: pd.DataFrame, baseline: RunResult | None) -> go.Figure:
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    markets = list(dict.fromkeys(steps["market"].astype(str)))
    several = len(markets) > 1
    prices = make_subplots(
        rows=len(markets), cols=1, shared_xaxes=True, vertical_spacing=0.06,
        subplot_titles=markets if several else None,
    )  # fmt: skip
    for row, symbol in enumerate(markets, start=1):
        part = _thin(steps[steps["market"].astype(str) == symbol], "mark")
        first = row == 1
        t = _times(part)
        prices.add_trace(go.Scatter(
            x=t, y=part["exogenous"].tolist(), name="index", legendgroup="exogenous",
            showlegend=first, line={"color": _COLORS["exogenous"], "dash": "dot"},
        ), row=row, col=1)  # fmt: skip
        if "book" in part:
            prices.add_trace(go.Scatter(
                x=t, y=part["book"].tolist(), name="venue's book", legendgroup="book",
                showlegend=first, line={"color": _COLORS["book"], "width": 1},
            ), row=row, col=1)  # fmt: skip
        if baseline is not None:
            base = baseline.steps
            bpart = _thin(base[base["market"].astype(str) == symbol], "mark")
            prices.add_trace(go.Scatter(
                x=_times(bpart), y=bpart["mark"].tolist(), name="mark without feedback",
                legendgroup="baseline", showlegend=first, line={"color": _COLORS["baseline"]},
            ), row=row, col=1)  # fmt: skip
        prices.add_trace(go.Scatter(
            x=t, y=part["mark"].tolist(), name="mark with feedback", legendgroup="mark",
            showlegend=first, line={"color": _COLORS["mark"]},
        ), row=row, col=1)  # fmt: skip
        prices.update_yaxes(title_text="quote per base" if several else "price (quote per base)",
                            row=row, col=1)  # fmt: skip
    prices.update_xaxes(title_text="time (UTC)", row=len(markets), col=1)
    figure = _layout(prices, "Price path", y=None, x=None)
    figure.update_layout(height=max(420, 300 * len(markets)))
    return figure


def _crash_figure(steps: pd.DataFrame) -> go.Figure:
    """Mark, index and liquidated notional per step over the crash window of the first
    market (:func:`~deleverage.analytics.breakdown.crash_window`)."""
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    first = (
        steps[steps["market"].astype(str) == str(steps["market"].iloc[0])] if len(steps) else steps
    )
    t0, t1 = crash_window(first["t_s"], first["mark"]) if len(first) else (0.0, 0.0)
    part = first[(first["t_s"] >= t0) & (first["t_s"] <= t1)]
    figure = make_subplots(rows=2, cols=1, shared_xaxes=True, vertical_spacing=0.08)
    t = _times(part)
    index = part["index"] if "index" in part else part["exogenous"]
    figure.add_trace(go.Scatter(
        x=t, y=index.tolist(), name="index", line={"color": _COLORS["exogenous"], "dash": "dot"},
    ), row=1, col=1)  # fmt: skip
    figure.add_trace(go.Scatter(
        x=t, y=part["mark"].tolist(), name="mark", line={"color": _COLORS["mark"]},
    ), row=1, col=1)  # fmt: skip
    figure.add_trace(go.Bar(
        x=t, y=part["liquidated_notional"].tolist(), name="liquidated notional",
        marker_color=_COLORS["liquidations"],
    ), row=2, col=1)  # fmt: skip
    figure.update_yaxes(title_text="price", row=1, col=1)
    figure.update_yaxes(title_text="quote per step", row=2, col=1)
    return _layout(figure, f"The crash window ({t0:,.0f}-{t1:,.0f} s of the run)", y=None, x=None)


def _breakdown_figure(result: RunResult) -> go.Figure:
    """Liquidated notional by entry-leverage bucket, stacked by side and margin mode."""
    import plotly.graph_objects as go

    table = liquidation_breakdown(
        result.journal.to_frame(),
        {
            m: (ids, result.populations[symbol].frame)
            for symbol, (m, ids) in result.population_accounts.items()
        },
    )
    figure = go.Figure()
    for (side, mode), part in table.groupby(["side", "margin_mode"], sort=True):
        figure.add_trace(go.Bar(
            x=part["leverage"].tolist(), y=part["notional"].tolist(), name=f"{side}, {mode}",
            customdata=part["liquidations"].tolist(),
            hovertemplate="%{x}<br>%{y:,.0f} quote<br>%{customdata} liquidations<extra></extra>",
        ))  # fmt: skip
    figure.update_layout(barmode="stack")
    return _layout(
        figure, "Liquidations by entry leverage, side and margin mode",
        y="liquidated notional (quote)", x="entry leverage",
    )  # fmt: skip


def _flow_figure(result: RunResult, baseline: RunResult | None) -> go.Figure:
    import plotly.graph_objects as go

    steps = result.steps
    dt = float(result.scenario.dt_s)
    duration = float(steps["t_s"].max()) if len(steps) else 0.0
    width = _bucket_s(duration, dt)
    bucket = np.floor(steps["t_s"].to_numpy(dtype=np.float64) / width)
    flows = steps.groupby(bucket).agg(
        ts_ns=("ts_ns", "first"),
        liquidated=("liquidated_notional", "sum"),
        adl=("adl_notional", "sum"),
        count=("liquidations", "sum"),
    )
    flow = go.Figure()
    t = _times(flows)
    flow.add_trace(go.Bar(
        x=t, y=flows["liquidated"].tolist(), name="liquidated notional",
        marker_color=_COLORS["liquidations"], customdata=flows["count"].tolist(),
        hovertemplate="%{x}<br>%{y:,.0f} quote<br>%{customdata} liquidations<extra></extra>",
    ))  # fmt: skip
    flow.add_trace(go.Bar(
        x=t, y=flows["adl"].tolist(), name="ADL notional", marker_color=_COLORS["adl"],
    ))  # fmt: skip
    if baseline is not None:
        b = baseline.steps
        bflows = b.groupby(np.floor(b["t_s"].to_numpy(dtype=np.float64) / width)).agg(
            ts_ns=("ts_ns", "first"), liquidated=("liquidated_notional", "sum")
        )
        flow.add_trace(go.Scatter(
            x=_times(bflows), y=bflows["liquidated"].tolist(),
            name="liquidated without feedback", mode="lines",
            line={"color": _COLORS["baseline"], "width": 1.5, "dash": "dot"},
        ))  # fmt: skip
    flow.update_layout(barmode="stack")
    label = f"{width:g} s" if width < 60 else f"{width / 60:g} min"
    return _layout(flow, f"Liquidations and ADL per {label}", y="notional per bucket (quote)")


def _fund_figure(steps: pd.DataFrame) -> go.Figure:
    import plotly.graph_objects as go

    per_step = steps.groupby("step").agg(
        ts_ns=("ts_ns", "first"),
        fund=("insurance_fund", "first"),
        bad_debt=("bad_debt", "sum"),
        socialized=("socialized_loss", "sum"),
    )
    per_step = _thin(per_step.reset_index(drop=True), "fund")
    fund = go.Figure()
    t = _times(per_step)
    for key, name in (("fund", "insurance fund"), ("bad_debt", "bad debt (cumulative)"),
                      ("socialized", "socialized loss (cumulative)")):  # fmt: skip
        fund.add_trace(go.Scatter(
            x=t, y=per_step[key].tolist(), name=name, line={"color": _COLORS[key]},
        ))  # fmt: skip
    return _layout(fund, "Insurance fund and bad debt", y="quote")


def _heatmap_figure(result: RunResult) -> go.Figure:
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    steps = result.steps
    marks = steps.groupby("market", observed=True)["mark"].first()
    symbols = list(result.populations)
    heat = make_subplots(
        rows=max(len(symbols), 1), cols=1, vertical_spacing=0.1,
        subplot_titles=symbols if len(symbols) > 1 else None,
    )  # fmt: skip
    for row, symbol in enumerate(symbols, start=1):
        frame = result.populations[symbol].frame
        mark = float(marks.get(symbol, np.median(frame["entry_price"])))
        buckets = liquidation_heatmap(
            frame["liquidation_price"].to_numpy(dtype=np.float64),
            frame["size"].to_numpy(dtype=np.float64),
            frame["side"].to_numpy(dtype=np.float64),
            mark,
            bucket_width=_nice_width(mark),
        )
        for side in ("long", "short"):
            part = buckets[buckets["side"] == side]
            mid = (part["bucket_low"] + part["bucket_high"]) / 2.0
            heat.add_trace(go.Bar(
                x=mid.tolist(), y=part["notional"].tolist(), name=f"{side} liquidations",
                legendgroup=side, showlegend=row == 1, marker_color=_COLORS[side],
                customdata=part["count"].tolist(),
                hovertemplate="%{x:,.2f}<br>%{y:,.0f} quote<br>%{customdata} positions"
                "<extra></extra>",
            ), row=row, col=1)  # fmt: skip
        heat.add_vline(
            x=mark, line_dash="dash", annotation_text=f"mark {mark:,.2f}", row=row, col=1
        )
        # the levels within 40% of the first mark; farther ones are off-screen (zoom out)
        heat.update_xaxes(range=[0.6 * mark, 1.4 * mark], row=row, col=1)
        heat.update_yaxes(title_text="notional (quote)", row=row, col=1)
    heat.update_layout(barmode="stack", height=max(420, 320 * len(symbols)))
    heat.update_xaxes(title_text="liquidation price (quote per base)", row=max(len(symbols), 1))
    figure = _layout(
        heat, "Liquidation heatmap before the shock (isolated positions)", y=None, x=None
    )
    figure.update_layout(height=max(420, 320 * len(symbols)))
    return figure


def _loss_figure(losses: pd.DataFrame) -> go.Figure:
    import plotly.graph_objects as go

    loss = go.Figure()
    values = losses["loss"].to_numpy(dtype=np.float64)
    loss.add_trace(go.Histogram(
        x=values.tolist(), nbinsx=80, name="accounts", marker_color=_COLORS["loss"],
    ))  # fmt: skip
    loss.update_yaxes(type="log")
    return _layout(
        loss,
        f"Losses across {len(values):,} accounts (net deposits - final equity; < 0 a gain)",
        y="accounts (log scale)",
        x="loss per account (quote)",
    )


def _flatten(data: Any, prefix: str = "") -> list[tuple[str, str]]:
    if isinstance(data, dict):
        rows: list[tuple[str, str]] = []
        for key, value in data.items():
            rows += _flatten(value, f"{prefix}.{key}" if prefix else str(key))
        return rows
    if isinstance(data, list) and any(isinstance(v, dict) for v in data):
        rows = []
        for i, value in enumerate(data):
            rows += _flatten(value, f"{prefix}.{i}")
        return rows
    return [] if data is None else [(prefix, json.dumps(data))]


def _table(rows: list[tuple[str, str]]) -> str:
    body = "".join(
        f"<tr><td>{html.escape(k)}</td><td class='v'>{html.escape(v)}</td></tr>" for k, v in rows
    )
    return f"<table>{body}</table>"


def build_report(
    result: RunResult,
    baseline: RunResult | None = None,
    *,
    metrics: StressMetrics | None = None,
    losses: pd.DataFrame | None = None,
    seeds: SeedSummary | None = None,
) -> str:
    """The report of ``result`` as one self-contained HTML page (see the module docstring).

    Parameters
    ----------
    result
        The run (normally with feedback).
    baseline
        Its ``feedback=False`` twin, drawn next to it and used for the amplification.
    metrics, losses
        Precomputed :func:`~deleverage.analytics.stress.stress_metrics` and per-account losses
        (computed here when omitted).
    seeds
        The scenario over several seeds (:func:`deleverage.sweep.seeds.run_seeds`): a section
        with 5-95% bands and the fund-loss VaR and expected shortfall.

    Returns
    -------
    str
        The HTML document, plotly.js embedded once.
    """
    if losses is None:
        losses = run_account_losses(result)
    if metrics is None:
        metrics = stress_metrics(result, baseline, losses=losses)
    figures = report_figures(result, baseline, losses=losses)
    if seeds is not None:
        figures["seeds"] = _seeds_figure(result, seeds)
    divs = {}
    for i, (name, figure) in enumerate(figures.items()):
        divs[name] = figure.to_html(
            full_html=False,
            include_plotlyjs=i == 0,  # plotly.js inlined once, in the first figure
            config={"displaylogo": False, "responsive": True},
        )
    survives, text = verdict(metrics)
    css_class = "ok" if survives else ("adl" if metrics.bad_debt + metrics.socialized_loss <= 0
                                       else "bad")  # fmt: skip
    scenario = result.scenario
    title = f"deleverage report: {scenario.name}"
    params = _flatten(scenario.to_toml_dict())
    twin = "with its feedback=False twin" if baseline is not None else "without a baseline run"
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
<p class="sub">{html.escape(scenario.description or "")}<br>
seed {scenario.seed}, {metrics.steps:,} steps of {scenario.dt_s:g} s,
{metrics.positions:,} positions, {twin}; result hash
<code>{result.result_hash[:16]}</code></p>
<h2>Does this venue survive?</h2>
<div class="verdict {css_class}">{html.escape(text)}</div>
<h2>Price path</h2>
<div class="card">{divs["prices"]}</div>
<h2>The crash window</h2>
<div class="card">{divs["crash"]}</div>
<h2>Who was liquidated</h2>
<div class="card">{divs["breakdown"]}</div>
<h2>Liquidations and ADL</h2>
<div class="card">{divs["flows"]}</div>
{_levers_section(divs.get("levers", ""))}
<h2>Insurance fund and bad debt</h2>
<div class="card">{divs["fund"]}</div>
<h2>Where the liquidations were waiting</h2>
<div class="card">{divs["heatmap"]}</div>
<h2>Who lost</h2>
<div class="card">{divs["losses"]}</div>
{_seeds_section(seeds, divs.get("seeds", ""))}
<div class="grid">
<div><h2>Metrics</h2>{_table(metrics_table(metrics))}</div>
<div><h2>Scenario parameters</h2>{_table(params)}</div>
</div>
<footer>Generated by deleverage. Metric definitions: deleverage.analytics.stress.</footer>
</main>
</body>
</html>
"""


def write_report(
    path: str | Path,
    result: RunResult,
    baseline: RunResult | None = None,
    *,
    metrics: StressMetrics | None = None,
    losses: pd.DataFrame | None = None,
    seeds: SeedSummary | None = None,
) -> Path:
    """Write :func:`build_report` to ``path`` (UTF-8) and return the path."""
    out = Path(path)
    page = build_report(result, baseline, metrics=metrics, losses=losses, seeds=seeds)
    out.write_text(page, encoding="utf-8")
    return out


def _seeds_figure(result: RunResult, seeds: SeedSummary) -> go.Figure:
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    first = result.steps.groupby("step", sort=True).first()
    t = pd.to_datetime(first["ts_ns"].to_numpy()).astype(str).tolist()
    figure = make_subplots(rows=2, cols=1, shared_xaxes=True, vertical_spacing=0.08,
                           subplot_titles=("mark", "insurance fund"))  # fmt: skip
    for row, name in enumerate(("mark", "insurance_fund"), start=1):
        band = seeds.bands[name]
        n = min(len(t), len(band))
        idx = np.unique(np.linspace(0, n - 1, min(n, MAX_LINE_POINTS)).astype(int))
        x = [t[i] for i in idx]
        for column, fill in (("p95", None), ("p5", "tonexty")):
            figure.add_trace(go.Scatter(
                x=x, y=band[column].to_numpy()[idx].tolist(), name=f"{column} across seeds",
                line={"color": _COLORS["baseline"], "width": 0.5}, fill=fill,
                showlegend=row == 1, legendgroup=column,
            ), row=row, col=1)  # fmt: skip
        figure.add_trace(go.Scatter(
            x=x, y=band["p50"].to_numpy()[idx].tolist(), name="median across seeds",
            line={"color": _COLORS["mark"]}, showlegend=row == 1, legendgroup="p50",
        ), row=row, col=1)  # fmt: skip
    figure = _layout(figure, f"Across {len(seeds.seeds)} seeds: 5-95% bands", y=None)
    figure.update_layout(height=600)
    return figure


def _levers_section(div: str) -> str:
    if not div:
        return ""
    return f"""<h2>The venue's dynamic levers</h2>
<div class="card">{div}</div>"""


def _seeds_section(seeds: SeedSummary | None, div: str) -> str:
    if seeds is None:
        return ""
    spread = seeds.spread()
    rows = [
        (f"fund loss VaR {seeds.level:.0%}", f"{seeds.fund_loss_var:,.0f}"),
        (f"fund loss expected shortfall {seeds.level:.0%}", f"{seeds.fund_loss_es:,.0f}"),
    ]
    for name, row in spread.iterrows():
        rows.append((f"{name} (p5 / median / p95)",
                     f"{row[0.05]:,.4g} / {row[0.5]:,.4g} / {row[0.95]:,.4g}"))  # fmt: skip
    failed = f"<p>{len(seeds.errors)} seeds failed.</p>" if seeds.errors else ""
    return (
        f'<h2>Across {len(seeds.seeds)} seeds</h2><div class="card">{div}</div>'
        f"{_table(rows)}{failed}"
    )
