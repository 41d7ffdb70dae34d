"""The model card: one self-contained HTML page for the models of an evaluation.

Sections (after Mitchell et al., "Model Cards for Model Reporting", 2019): what the models
predict and for which use, the data they were trained and scored on (scenario, seeds, horizon,
schema version, dataset hash), the features, the scores on held-out seeds (Brier, log loss,
average precision, lead time), the verdict against the analytic baseline, the reliability
diagram and the precision-recall curves (plotly, plotly.js inlined once), and the limitations.
"""

from __future__ import annotations

import html
import json
from collections.abc import Sequence
from typing import Any

from deleverage.predict.evaluate import Comparison, Scores

_CSS = """body{font-family:system-ui,sans-serif;margin:0;background:#fafafa;color:#222}
main{max-width:1100px;margin:auto;padding:1.5rem}table{border-collapse:collapse;margin:.5rem 0}
td,th{border:1px solid #ddd;padding:.3rem .6rem;text-align:right}th{background:#eee}
td:first-child,th:first-child{text-align:left}.verdict{padding:.8rem;border-radius:6px}
.ok{background:#e3f4e3}.bad{background:#fbe4e4}code{background:#eee;padding:0 .2rem}"""

LIMITATIONS = (
    "Trained on simulated runs of one scenario family: the price process, population and book "
    "of that scenario shape what the models learn; scores on other worlds (a replayed crash, "
    "another venue) are only as good as the evaluation run on them says.",
    "Held-out seeds are new price paths of the same world, not a different regime.",
    "Labels are liquidation notices within the horizon; a position closed by its owner or by "
    "ADL before the horizon counts as not liquidated.",
    "A model file is a pickle (joblib): load only files you made.",
)


def _figures(scores: Sequence[Scores]) -> dict[str, Any]:
    import plotly.graph_objects as go

    reliability = go.Figure()
    reliability.add_trace(
        go.Scatter(x=[0, 1], y=[0, 1], mode="lines", name="perfect", line={"dash": "dot"})
    )
    pr = go.Figure()
    for s in scores:
        reliability.add_trace(
            go.Scatter(
                x=s.reliability["mean_predicted"], y=s.reliability["observed"],
                mode="lines+markers", name=s.model,
            )
        )  # fmt: skip
        pr.add_trace(
            go.Scatter(
                x=s.pr_curve["recall"], y=s.pr_curve["precision"], mode="lines", name=s.model
            )
        )
    reliability.update_layout(
        title="Reliability diagram (quantile bins)", xaxis_title="mean predicted probability",
        yaxis_title="observed frequency", template="plotly_white", height=420,
    )  # fmt: skip
    pr.update_layout(
        title="Precision-recall", xaxis_title="recall", yaxis_title="precision",
        template="plotly_white", height=420,
    )  # fmt: skip
    return {"reliability": reliability, "precision_recall": pr}


def _scores_table(scores: Sequence[Scores]) -> str:
    head = (
        "<tr><th>model</th><th>rows</th><th>positives</th><th>Brier</th><th>log loss</th>"
        "<th>average precision</th><th>warned share</th><th>median lead (s)</th></tr>"
    )
    body = "".join(
        f"<tr><td>{html.escape(s.model)}</td><td>{s.rows:,}</td><td>{s.positives:,}</td>"
        f"<td>{s.brier:.5f}</td><td>{s.log_loss:.5f}</td><td>{s.average_precision:.4f}</td>"
        f"<td>{s.warned_share:.3f}</td><td>{s.median_lead_s:.0f}</td></tr>"
        for s in scores
    )
    return f"<table>{head}{body}</table>"


def build_model_card(
    *,
    title: str,
    scores: Sequence[Scores],
    comparisons: Sequence[Comparison],
    data: dict[str, Any],
    features: dict[str, tuple[str, str]],
    level: float,
) -> str:
    """The model card as one HTML document (see the module docstring)."""
    divs = {
        name: fig.to_html(full_html=False, include_plotlyjs=i == 0, config={"displaylogo": False})
        for i, (name, fig) in enumerate(_figures(scores).items())
    }
    verdicts = "".join(
        f"<div class='verdict {'ok' if c.beats_baseline else 'bad'}'>{html.escape(c.verdict)}</div>"
        for c in comparisons
    )
    feature_rows = "".join(
        f"<tr><td>{html.escape(name)}</td><td>{html.escape(unit)}</td>"
        f"<td style='text-align:left'>{html.escape(text)}</td></tr>"
        for name, (unit, text) in features.items()
    )
    data_rows = "".join(
        f"<tr><td>{html.escape(str(k))}</td><td>{html.escape(json.dumps(v))}</td></tr>"
        for k, v in data.items()
    )
    limits = "".join(f"<li>{html.escape(text)}</li>" for text in LIMITATIONS)
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>
<style>{_CSS}</style></head><body><main>
<h1>{html.escape(title)}</h1>
<h2>Intended use</h2>
<p>Probability that a position is liquidated within the horizon, from what a venue sees at
the time (docs/predict.md): for margin alerts, proactive margin and predictive deleveraging
studies in the simulator. Not a trading signal; not validated on live venues.</p>
<h2>Verdict against the analytic baseline</h2>{verdicts}
<h2>Scores on held-out seeds</h2>{_scores_table(scores)}
<p>Lead time: probability level {level:g}; a liquidation is warned when a sample within the
horizon before it was at or above the level.</p>
{divs["reliability"]}{divs["precision_recall"]}
<h2>Data</h2><table>{data_rows}</table>
<h2>Features</h2><table><tr><th>name</th><th>unit</th><th>meaning</th></tr>{feature_rows}</table>
<h2>Limitations</h2><ul>{limits}</ul>
</main></body></html>"""
