"""The HTML report of a sweep: one self-contained page (plotly, its JavaScript inlined once).

Figures, each a mean across seeds with a 95% confidence interval (Student t,
``mean +/- t_(0.975, n-1) s / sqrt(n)``, ``s`` the sample standard deviation; no interval for
``n < 2``),
pooled over the parameters a figure does not show:

1. bad debt against volatility, one line per policy (the non-linearity of tail losses);
2. ADL frequency (the share of runs with at least one ADL round) against the insurance fund;
3. a heatmap of mean bad debt over two parameters (hover: the interval's half-width and n);
4. a table of every cell: mean and half-width of each metric, runs and failed runs.

Which parameters play volatility, policy, fund and the heatmap's axes comes from the
experiment's ``[report]`` table, or is guessed: volatility is the first parameter whose path
ends in ``sigma``, policy the first string or boolean parameter, fund the one at
``insurance.fund``, the heatmap's axes the first two numeric parameters. A figure whose
parameter or metric is missing says so instead.
"""

from __future__ import annotations

import html
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from deleverage._files import atomic_write, check_output_file
from deleverage.sweep.experiment import Experiment
from deleverage.sweep.results import read_experiment, read_results

__all__ = ["aggregate", "confidence_interval", "sweep_report"]

#: Two-sided 95% quantile of the standard normal distribution (the large-n limit).
Z_95 = 1.959963984540054


def confidence_interval(values: Sequence[float] | np.ndarray) -> tuple[float, float, int]:
    """Mean, 95% half-width ``t_(0.975, n-1) s / sqrt(n)`` and count of the finite ``values``.

    Student's t quantile (``scipy.stats.t``) keeps the interval honest for the few seeds a
    sweep cell usually has (``t = 4.303`` for ``n = 3`` against the normal's 1.96). The
    half-width is NaN for fewer than two values; the mean is NaN for none.

    >>> mean, half, n = confidence_interval([1.0, 2.0, 3.0])
    >>> mean, round(half, 4), n
    (2.0, 2.4841, 3)
    """
    x = np.asarray(values, dtype=float)
    x = x[np.isfinite(x)]
    n = int(x.size)
    if n == 0:
        return math.nan, math.nan, 0
    mean = float(x.mean())
    if n < 2:
        return mean, math.nan, n
    quantile = float(stats.t.ppf(0.975, n - 1))
    half = quantile * float(x.std(ddof=1)) / math.sqrt(n)
    return mean, half, n


def aggregate(frame: pd.DataFrame, by: Sequence[str], metric: str) -> pd.DataFrame:
    """Per group of ``by``: ``mean``, ``half_width`` (95%) and ``n`` of ``metric`` over the rows
    without error."""
    ok = frame[frame["error"].isna()] if "error" in frame else frame
    rows = []
    for key, group in ok.groupby(list(by), sort=True, dropna=False):
        mean, half, n = confidence_interval(group[metric].to_numpy(dtype=float))
        keys = key if isinstance(key, tuple) else (key,)
        rows.append({**dict(zip(by, keys, strict=True)), "mean": mean, "half_width": half, "n": n})
    return pd.DataFrame(rows, columns=[*by, "mean", "half_width", "n"])


def sweep_report(results: str | Path, out: str | Path | None = None) -> Path:
    """Write the HTML report of the results folder ``results``; return its path.

    ``out`` defaults to ``<results>/report.html``.

    Raises
    ------
    ConfigError
        If ``results`` is not a sweep's results folder.
    """
    import plotly.offline

    folder = Path(results)
    experiment = read_experiment(folder)
    target = Path(out) if out is not None else folder / "report.html"
    check_output_file(target, field="--out")
    frame = read_results(folder)
    roles = _roles(experiment)
    sections = [
        _volatility_figure(frame, roles),
        _adl_figure(frame, experiment, roles),
        _heatmap_figure(frame, roles),
        _cell_table(frame, experiment),
    ]
    failed = int(frame["error"].notna().sum()) if len(frame) else 0
    title = f"Sweep report: {html.escape(experiment.name)}"
    page = f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{title}</title>
<script type="text/javascript">{plotly.offline.get_plotlyjs()}</script>
<style>body{{font-family:sans-serif;margin:2em;max-width:1100px}}
table{{border-collapse:collapse;font-size:12px}}td,th{{border:1px solid #ccc;padding:2px 6px}}
.note{{color:#a33}}</style></head><body>
<h1>{title}</h1>
<p>{html.escape(experiment.description)}</p>
<p>{len(frame)} runs in {frame["cell_id"].nunique() if len(frame) else 0} cells,
{experiment.seeds_per_cell} seeds per cell, {failed} failed. Experiment
<code>{experiment.experiment_id}</code>. Intervals: mean &plusmn;
t<sub>0.975, n&minus;1</sub> s/&radic;n across seeds (Student t; pooled over the parameters
a figure does not show).</p>
{"".join(sections)}
</body></html>
"""
    return atomic_write(target, lambda tmp: tmp.write_text(page, encoding="utf-8"), field="--out")


# ---------------------------------------------------------------------------- roles
def _roles(experiment: Experiment) -> dict[str, str | None]:
    params = experiment.parameters
    numeric = [n for n, p in params.items() if p.kind in ("float", "int")]
    categorical = [n for n, p in params.items() if p.kind in ("str", "bool")]
    chosen = experiment.report
    volatility = chosen.volatility or next(
        (n for n in numeric if params[n].path.endswith("sigma")), numeric[0] if numeric else None
    )
    policy = chosen.policy or (categorical[0] if categorical else None)
    fund = chosen.fund or next((n for n in numeric if params[n].path == "insurance.fund"), None)
    heat = chosen.heatmap or (tuple(numeric[:2]) if len(numeric) >= 2 else None)
    return {
        "volatility": volatility,
        "policy": policy,
        "fund": fund,
        "heat_x": heat[0] if heat else None,
        "heat_y": heat[1] if heat else None,
    }


def _note(title: str, text: str) -> str:
    return f"<h2>{html.escape(title)}</h2><p class='note'>{html.escape(text)}</p>"


def _figure_html(fig: object) -> str:
    to_html = getattr(fig, "to_html")  # noqa: B009 (plotly is untyped)
    return str(to_html(full_html=False, include_plotlyjs=False))


def _ci_lines(agg: pd.DataFrame, x: str, policy: str | None) -> Any:
    """One line per policy (or one for all runs): means with their 95% intervals."""
    import plotly.graph_objects as go

    fig = go.Figure()
    groups = agg.groupby(policy, sort=True) if policy else [("all runs", agg)]
    for name, group in groups:
        label = name[0] if isinstance(name, tuple) else name
        fig.add_trace(
            go.Scatter(
                x=group[x],
                y=group["mean"],
                error_y={"type": "data", "array": group["half_width"].fillna(0.0)},
                mode="lines+markers",
                name=f"{policy} = {label}" if policy else str(label),
            )
        )
    return fig


def _volatility_figure(frame: pd.DataFrame, roles: dict[str, str | None]) -> str:

    title = "Bad debt vs volatility, per policy"
    x = roles["volatility"]
    if x is None or "bad_debt" not in frame:
        return _note(title, "needs a numeric parameter and the bad_debt metric")
    policy = roles["policy"]
    by = [policy, x] if policy else [x]
    agg = aggregate(frame, by, "bad_debt")
    fig = _ci_lines(agg, x, policy)
    fig.update_layout(title=title, xaxis_title=x, yaxis_title="bad debt (quote), mean ± 95% CI")
    return f"<h2>{title}</h2>" + _figure_html(fig)


def _adl_figure(frame: pd.DataFrame, experiment: Experiment, roles: dict[str, str | None]) -> str:

    title = "ADL frequency vs insurance fund"
    x = roles["fund"]
    source = next((m for m in ("adl_occurred", "adl_rounds") if m in frame), None)
    if x is None or source is None:
        return _note(title, "needs a parameter at insurance.fund and the adl_rounds metric")
    data = frame.copy()
    data["adl_frequency"] = (data[source] > 0).astype(float).where(data[source].notna())
    policy = roles["policy"]
    by = [policy, x] if policy else [x]
    agg = aggregate(data, by, "adl_frequency")
    fig = _ci_lines(agg, x, policy)
    log = experiment.parameters[x].scale == "log"
    fig.update_layout(
        title=title,
        xaxis_title=f"{x} (quote)",
        xaxis_type="log" if log else "linear",
        yaxis_title="share of runs with ADL, mean ± 95% CI",
    )
    return f"<h2>{title}</h2>" + _figure_html(fig)


def _heatmap_figure(frame: pd.DataFrame, roles: dict[str, str | None]) -> str:
    import plotly.graph_objects as go

    x, y = roles["heat_x"], roles["heat_y"]
    title = f"Mean bad debt over {x} and {y}"
    if x is None or y is None or "bad_debt" not in frame:
        return _note("Bad debt heatmap", "needs two numeric parameters and the bad_debt metric")
    agg = aggregate(frame, [y, x], "bad_debt")
    z = agg.pivot(index=y, columns=x, values="mean")
    half = agg.pivot(index=y, columns=x, values="half_width").reindex_like(z)
    count = agg.pivot(index=y, columns=x, values="n").reindex_like(z)
    text = [
        [f"± {h:,.4g} (n={int(c) if c == c else 0})" for h, c in zip(hr, cr, strict=True)]
        for hr, cr in zip(half.to_numpy(), count.to_numpy(), strict=True)
    ]
    fig = go.Figure(
        go.Heatmap(
            z=z.to_numpy(),
            x=[str(v) for v in z.columns],
            y=[str(v) for v in z.index],
            text=text,
            hovertemplate=f"{x}=%{{x}}<br>{y}=%{{y}}<br>bad debt %{{z:,.4g}} %{{text}}"
            "<extra></extra>",
            colorbar={"title": "bad debt"},
        )
    )
    fig.update_layout(title=title, xaxis_title=x, yaxis_title=y)
    return f"<h2>{html.escape(title)}</h2>" + _figure_html(fig)


def _cell_table(frame: pd.DataFrame, experiment: Experiment) -> str:
    if not len(frame):
        return _note("Cells", "no results yet")
    names = list(experiment.parameters)
    rows = []
    for _, group in frame.groupby("cell", sort=True):
        first = group.iloc[0]
        row: dict[str, object] = {n: first[n] for n in names}
        ok = group[group["error"].isna()]
        for metric in experiment.metrics:
            mean, half, _n = confidence_interval(ok[metric].to_numpy(dtype=float))
            row[metric] = f"{mean:,.4g} ± {half:,.2g}" if half == half else f"{mean:,.4g}"
        row["runs"] = len(group)
        row["failed"] = int(group["error"].notna().sum())
        errors = group["error"].dropna()
        row["first error"] = str(errors.iloc[0])[:120] if len(errors) else ""
        rows.append(row)
    table = pd.DataFrame(rows).to_html(index=False, escape=True, border=0)
    return f"<h2>Cells (mean ± 95% CI half-width)</h2>{table}"
