"""The ADL laboratory: every deleveraging policy on the same rounds, side by side.

A *rounds* table (CSV or Parquet, long format) holds, per ADL round, one ``bankrupt`` row and
the ``counterparty`` rows that could pay it. Columns (:data:`ROUND_COLUMNS`):

======================  ==========  =========================================================
column                  rows        meaning
======================  ==========  =========================================================
``round``               all         round id (integer), shared by its rows
``ts_ms``               all         time of the round, ms since the epoch (same in a round)
``role``                all         ``bankrupt`` (exactly one per round) or ``counterparty``
``account``             all         integer account id (unique within a round)
``size``                all         signed size before the round, base (long > 0); non-zero
                                    for the bankrupt row
``mark_price``          all         mark at the round, quote per base, > 0
``entry_price``         cpty        average entry, quote per base, > 0 for open positions
``equity``              cpty        collateral + unrealized PnL backing the position, quote
``bankruptcy_price``    bankrupt    the bankrupt position's bankruptcy price, > 0
``deficit``             bankrupt    loss beyond its collateral to cover, quote >= 0
``horizon_mark``        bankrupt    optional: mark at the evaluation horizon (default: mark)
``margin_ratio``        cpty        optional: maintenance / equity (default 0)
``lot_size``            cpty        optional: size increment, base (default 1e-9)
``cross``               cpty        optional: cross-margined (default false)
``coin``                all         optional: market label
======================  ==========  =========================================================

:func:`run_study` runs each chosen :class:`~deleverage.rules.deleveraging.DeleveragingPolicy`
on every round and returns per-round metrics
(:func:`~deleverage.rules.deleveraging_metrics.round_metrics`), per-wave and total summaries
and who was hit; :func:`adl_study` returns the per-round frame; :func:`build_study_report`
writes a self-contained HTML page (plotly.js inlined once); :func:`write_example_rounds`
generates the README's example.
"""

from __future__ import annotations

import html
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from deleverage.errors import DataError
from deleverage.rules.deleveraging import (
    BankruptSide,
    Counterparties,
    DeleveragingPolicy,
    bankrupt_side,
    counterparties,
    policy_named,
)
from deleverage.rules.deleveraging_metrics import (
    haircuts,
    leverage_bucket,
    round_metrics,
    summarize,
    waves,
)

if TYPE_CHECKING:
    import plotly.graph_objects as go

__all__ = [
    "DEFAULT_POLICIES",
    "ROUND_COLUMNS",
    "StudyResult",
    "adl_study",
    "build_study_report",
    "example_rounds",
    "load_rounds",
    "run_study",
    "validate_rounds",
    "write_example_rounds",
]

#: Required columns and their kinds (``int``, ``float``, ``str``).
ROUND_COLUMNS: dict[str, str] = {
    "round": "int", "ts_ms": "int", "role": "str", "account": "int", "size": "float",
    "mark_price": "float", "entry_price": "float", "equity": "float",
    "bankruptcy_price": "float", "deficit": "float",
}  # fmt: skip
OPTIONAL_COLUMNS: dict[str, object] = {
    "horizon_mark": np.nan, "margin_ratio": 0.0, "lot_size": 1e-9, "cross": False, "coin": "",
}  # fmt: skip
#: The policies a study runs unless told otherwise.
DEFAULT_POLICIES: tuple[str, ...] = (
    "bitmex", "binance", "okx", "hyperliquid", "dydx", "size_pro_rata", "whole_lots",
    "profit_pro_rata", "equity_pro_rata", "notional_pro_rata", "socialized_profit", "min_max",
)  # fmt: skip


def _bad(frame: pd.DataFrame, mask: pd.Series, column: str, rule: str) -> None:
    if bool(mask.any()):
        i = int(np.flatnonzero(mask.to_numpy())[0])
        raise DataError(f"rows[{frame.index[i]}].{column}", frame[column].iloc[i], rule)


def validate_rounds(frame: pd.DataFrame) -> pd.DataFrame:
    """Check a rounds table (:data:`ROUND_COLUMNS`) and fill the optional columns.

    Raises :class:`~deleverage.errors.DataError` naming the row and column, the value and the
    rule it breaks.
    """
    missing = [c for c in ROUND_COLUMNS if c not in frame.columns]
    if missing:
        raise DataError("columns", missing, f"are required ({', '.join(ROUND_COLUMNS)})")
    df = frame.reset_index(drop=True).copy()
    for col, default in OPTIONAL_COLUMNS.items():
        if col not in df.columns:
            df[col] = default
    for col, kind in ROUND_COLUMNS.items():
        if kind == "int":
            num = pd.to_numeric(df[col], errors="coerce")
            _bad(df, num.isna() | (num != np.floor(num)), col, "must be an integer")
            df[col] = num.astype(np.int64)
        elif kind == "float":
            df[col] = pd.to_numeric(df[col], errors="coerce").astype(np.float64)
    df["role"] = df["role"].astype(str)
    _bad(
        df,
        ~df["role"].isin(["bankrupt", "counterparty"]),
        "role",
        "must be 'bankrupt' or 'counterparty'",
    )
    bk = df["role"] == "bankrupt"
    for col in ("size", "mark_price"):
        _bad(df, ~np.isfinite(df[col]), col, "must be a finite number")
    _bad(df, df["mark_price"] <= 0, "mark_price", "must be > 0")
    _bad(df, bk & (df["size"] == 0), "size", "must be non-zero for the bankrupt row")
    _bad(
        df,
        bk & ~(df["bankruptcy_price"] > 0),
        "bankruptcy_price",
        "must be a finite price > 0 for the bankrupt row",
    )
    _bad(
        df,
        bk & ~(df["deficit"] >= 0) | bk & ~np.isfinite(df["deficit"]),
        "deficit",
        "must be a finite amount >= 0 for the bankrupt row",
    )
    cp = ~bk
    _bad(
        df, cp & ~np.isfinite(df["equity"]), "equity", "must be a finite number for a counterparty"
    )
    _bad(
        df,
        cp & (df["size"] != 0) & ~(df["entry_price"] > 0),
        "entry_price",
        "must be > 0 for an open counterparty",
    )
    horizon = pd.to_numeric(df["horizon_mark"], errors="coerce")
    _bad(df, horizon.notna() & ~(horizon > 0), "horizon_mark", "must be a price > 0 when given")
    df["horizon_mark"] = horizon
    counts = bk.groupby(df["round"]).sum()
    if (counts != 1).any():
        r = counts.index[np.flatnonzero((counts != 1).to_numpy())[0]]
        raise DataError(f"round {r}", int(counts[r]), "must have exactly one bankrupt row")
    if df.duplicated(["round", "account"]).any():
        i = int(np.flatnonzero(df.duplicated(["round", "account"]).to_numpy())[0])
        raise DataError(
            f"rows[{i}].account", int(df["account"].iloc[i]), "must be unique within its round"
        )
    if (df.groupby("round")["ts_ms"].nunique() != 1).any():
        raise DataError("ts_ms", "several", "must be the same on every row of a round")
    return df


def load_rounds(path: str | Path) -> pd.DataFrame:
    """Read and validate a rounds table from CSV or Parquet (:func:`validate_rounds`)."""
    p = Path(path)
    if not p.exists():
        raise DataError("rounds", str(p), "must be an existing CSV or Parquet file")
    if p.suffix.lower() in (".parquet", ".pq"):
        frame = pd.read_parquet(p)
    elif p.suffix.lower() in (".csv", ".gz"):
        frame = pd.read_csv(p)
    else:
        raise DataError("rounds", str(p), "must end in .csv or .parquet")
    return validate_rounds(frame)


def _round_inputs(rows: pd.DataFrame) -> tuple[BankruptSide, Counterparties, float, str]:
    b = rows[rows["role"] == "bankrupt"].iloc[0]
    c = rows[rows["role"] == "counterparty"]
    bankrupt = bankrupt_side(b["size"], b["bankruptcy_price"], b["deficit"], b["mark_price"])
    cps = counterparties(
        c["account"].to_numpy(np.int64), c["size"].to_numpy(),
        c["entry_price"].fillna(0.0).to_numpy(), c["mark_price"].to_numpy(), c["equity"].to_numpy(),
        margin_ratio=c["margin_ratio"].fillna(0.0).to_numpy(np.float64),
        lot_size=c["lot_size"].fillna(1e-9).to_numpy(np.float64),
        cross=c["cross"].fillna(False).to_numpy(np.bool_),
    )  # fmt: skip
    horizon = float(b["horizon_mark"]) if pd.notna(b["horizon_mark"]) else bankrupt.mark
    return bankrupt, cps, horizon, str(b["coin"])


@dataclass(frozen=True)
class StudyResult:
    """A study's tables: ``rounds`` (one row per round and policy), ``waves`` and ``totals``
    (:func:`~deleverage.rules.deleveraging_metrics.summarize`), ``hits`` (one row per
    counterparty touched: policy, round, wave, leverage, bucket, haircut)."""

    rounds: pd.DataFrame
    waves: pd.DataFrame
    totals: pd.DataFrame
    hits: pd.DataFrame
    gap_s: float


def run_study(
    rounds: pd.DataFrame,
    policies: list[str] | tuple[str, ...] = DEFAULT_POLICIES,
    *,
    gap_s: float = 30.0,
    cap_fraction: float = 1.0,
    fund: float = 0.0,
    drawdown_limit: float = 1.0,
    seed: int = 0,
) -> StudyResult:
    """Run every policy on every round of a validated (or raw) rounds table.

    ``gap_s``: a pause longer than this starts a new wave. ``cap_fraction``: share of a
    winner's profit a haircut policy may take. ``fund``/``drawdown_limit``: the
    ``fund_first+NAME`` hybrids' fund (quote, per round) and the share of it they may use.
    """
    df = validate_rounds(rounds)
    objects: list[DeleveragingPolicy] = [
        policy_named(
            n, cap_fraction=cap_fraction, fund=fund, drawdown_limit=drawdown_limit, seed=seed
        )
        for n in policies
    ]
    firsts = df.groupby("round", sort=True)["ts_ms"].first()
    wave_of = dict(
        zip(firsts.index.tolist(), waves(firsts.to_numpy(), gap_s).tolist(), strict=True)
    )
    rows: list[dict[str, object]] = []
    hits: list[pd.DataFrame] = []
    for rid, group in df.groupby("round", sort=True):
        bankrupt, cps, horizon, coin = _round_inputs(group)
        for policy in objects:
            rng = np.random.default_rng([seed, int(rid)])
            result = policy.allocate(bankrupt, cps, rng)
            m = round_metrics(bankrupt, cps, result, eligible=None, horizon_mark=horizon)
            base = {"policy": policy.name, "round": int(rid), "wave": wave_of[rid], "coin": coin,
                    "ts_ms": int(firsts[rid])}  # fmt: skip
            rows.append(base | m._asdict())
            hit = (result.closed > 0) | (result.haircut > 0)
            if hit.any():
                hits.append(pd.DataFrame({
                    "policy": policy.name, "round": int(rid), "wave": wave_of[rid],
                    "account": cps.account[hit], "leverage": cps.leverage[hit],
                    "bucket": leverage_bucket(cps.leverage[hit]), "closed": result.closed[hit],
                    "haircut": haircuts(bankrupt, cps, result, horizon)[hit],
                }))  # fmt: skip
    per_round = pd.DataFrame(rows)
    hit_frame = pd.concat(hits, ignore_index=True) if hits else pd.DataFrame(
        columns=["policy", "round", "wave", "account", "leverage", "bucket", "closed", "haircut"]
    )  # fmt: skip
    return StudyResult(
        rounds=per_round,
        waves=summarize(per_round, ["policy", "wave"]),
        totals=summarize(per_round, ["policy"]),
        hits=hit_frame,
        gap_s=gap_s,
    )


def adl_study(rounds: pd.DataFrame, policies: list[str] | tuple[str, ...] = DEFAULT_POLICIES,
              **options: float) -> pd.DataFrame:  # fmt: skip
    """The study from Python: one row per round and policy (:func:`run_study`'s ``rounds``)."""
    return run_study(rounds, policies, **options).rounds  # type: ignore[arg-type]


# ---------------------------------------------------------------------------- example
def example_rounds(n_rounds: int = 40, n_counterparties: int = 60, seed: int = 7) -> pd.DataFrame:
    """A reproducible rounds table: three waves of long liquidations in a falling market.

    Counterparties are shorts with entries above the mark (in profit), leverage between 1x
    and 50x; each bankrupt long's deficit is 0.5-3% of its notional.
    """
    rng = np.random.default_rng(seed)
    rows: list[dict[str, object]] = []
    for r in range(n_rounds):
        wave = r * 3 // n_rounds
        ts = 1_760_130_964_000 + wave * 180_000 + (r % max(1, n_rounds // 3)) * 2_000
        mark = 100.0 * (1.0 - 0.05 * wave) * (1.0 - 0.002 * (r % 7))
        size = round(float(rng.uniform(5.0, 50.0)), 3)  # whole lots of 0.001
        deficit = size * mark * float(rng.uniform(0.005, 0.03))
        rows.append({
            "round": r, "ts_ms": ts, "role": "bankrupt", "account": 1_000_000 + r, "size": size,
            "mark_price": mark, "bankruptcy_price": mark + deficit / size, "deficit": deficit,
            "horizon_mark": mark * 1.01, "coin": "EXAMPLE",
        })  # fmt: skip
        accounts = rng.choice(10_000, size=n_counterparties, replace=False)
        for a in accounts.tolist():
            qty = float(rng.lognormal(1.5, 1.0))
            entry = mark * float(rng.uniform(1.0, 1.3)) if rng.random() < 0.85 else mark * 0.95
            leverage = float(rng.uniform(1.0, 50.0))
            equity = qty * mark / leverage
            rows.append({"round": r, "ts_ms": ts, "role": "counterparty", "account": a,
                         "size": -qty, "mark_price": mark, "entry_price": entry, "equity": equity,
                         "margin_ratio": min(1.0, 0.5 * leverage / 50.0), "lot_size": 0.001,
                         "cross": bool(a % 3 == 0), "coin": "EXAMPLE"})  # fmt: skip
    return validate_rounds(pd.DataFrame(rows))


def write_example_rounds(path: str | Path, **options: int) -> Path:
    """Write :func:`example_rounds` to ``path`` (CSV or Parquet by suffix)."""
    p = Path(path)
    frame = example_rounds(**options)
    if p.suffix.lower() in (".parquet", ".pq"):
        frame.to_parquet(p, index=False)
    else:
        frame.to_csv(p, index=False)
    return p


# ---------------------------------------------------------------------------- report
_CSS = """body{font-family:system-ui,sans-serif;margin:0;background:#fafafa;color:#222}
main{max-width:1100px;margin:auto;padding:1.5em}.card{background:#fff;border-radius:8px;
padding:.5em;margin:1em 0;box-shadow:0 1px 3px #0002}table{border-collapse:collapse;
font-size:.85em}td,th{padding:.25em .6em;border-bottom:1px solid #ddd;text-align:right}
th:first-child,td:first-child{text-align:left}"""


def _wave_figure(result: StudyResult) -> go.Figure:
    import plotly.graph_objects as go

    fig = go.Figure()
    w = result.waves
    deficit = w[w["policy"] == w["policy"].iloc[0]]
    fig.add_bar(x=deficit["wave"], y=deficit["deficit"], name="deficit", marker_color="#222")
    for name, g in w.groupby("policy", sort=False):
        fig.add_bar(x=g["wave"], y=g["haircut"], name=str(name))
    fig.update_layout(barmode="group", title="Haircut vs deficit per wave (quote)",
                      xaxis_title="wave", yaxis_type="log", template="plotly_white")  # fmt: skip
    return fig


def _fairness_figure(result: StudyResult) -> go.Figure:
    import plotly.graph_objects as go

    t = result.totals
    fig = go.Figure()
    for col in ("gini", "jain", "participation", "largest_haircut_pct"):
        fig.add_bar(x=t["policy"], y=t[col], name=col)
    fig.update_layout(barmode="group", title="Fairness over winners' haircut % (deficit-weighted)",
                      template="plotly_white")  # fmt: skip
    return fig


def _bucket_figure(result: StudyResult) -> go.Figure:
    import plotly.graph_objects as go

    h = result.hits.groupby(["policy", "bucket"], sort=False)["haircut"].sum().reset_index()
    fig = go.Figure()
    for bucket, g in h.groupby("bucket", sort=True):
        fig.add_bar(x=g["policy"], y=g["haircut"], name=str(bucket))
    fig.update_layout(barmode="stack", title="Who was hit: haircut by winners' leverage bucket",
                      template="plotly_white")  # fmt: skip
    return fig


def build_study_report(result: StudyResult, *, title: str = "ADL study") -> str:
    """The study as one self-contained HTML page (plotly.js inlined once)."""
    figures = [_wave_figure(result), _fairness_figure(result), _bucket_figure(result)]
    divs = [
        f.to_html(full_html=False, include_plotlyjs=i == 0, config={"displaylogo": False})
        for i, f in enumerate(figures)
    ]
    cols = [
        "policy", "rounds", "deficit", "haircut", "overshoot", "haircut_to_deficit", "uncovered",
        "largest_haircut_pct", "gini", "jain", "participation",
    ]  # fmt: skip
    table = result.totals[cols].to_html(index=False, float_format=lambda x: f"{x:,.4g}")
    cards = "".join(f'<div class="card">{d}</div>' for d in divs)
    n = int(result.rounds["round"].nunique()) if len(result.rounds) else 0
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>
<style>{_CSS}</style></head><body><main>
<h1>{html.escape(title)}</h1>
<p>{n} rounds, waves split by pauses over {result.gap_s:g} s. Haircut: winners' profit removed,
marked at the evaluation horizon; overshoot = haircut - (deficit - fund paid). Definitions:
docs/formulas.md, "ADL laboratory".</p>
<div class="card">{table}</div>{cards}
</main></body></html>
"""
