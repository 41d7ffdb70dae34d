"""``deleverage adl-study ROUNDS``: every deleveraging policy on the same ADL rounds.

Reads a rounds table (CSV or Parquet; schema in :mod:`deleverage.analytics.adl_study`), runs
the chosen policies, prints the totals and writes a CSV table and a self-contained HTML report.
Bad input (a missing column, a negative deficit, an unknown policy) exits with code 2 and a
message naming the field, the value and the rule (:func:`deleverage.cli.app.main`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

_COLUMNS = ("rounds", "deficit", "haircut", "overshoot", "haircut_to_deficit", "uncovered",
            "largest_haircut_pct", "gini", "jain", "participation")  # fmt: skip


def adl_study_command(
    rounds: Annotated[
        Path | None, typer.Argument(help="Rounds table (.csv or .parquet).", show_default=False)
    ] = None,
    policy: Annotated[
        list[str] | None,
        typer.Option("--policy", "-p", help="Policy to run (repeat); default: a standard set."),
    ] = None,
    out: Annotated[Path, typer.Option(help="Folder for adl_study.csv and adl_study.html.")] = Path(
        "adl-study"
    ),
    gap_s: Annotated[
        float, typer.Option(help="A pause longer than this starts a wave (s).")
    ] = 30.0,
    cap_fraction: Annotated[
        float, typer.Option(help="Share of a winner's profit a haircut may take.")
    ] = 1.0,
    fund: Annotated[float, typer.Option(help="Fund per round for fund_first+NAME (quote).")] = 0.0,
    drawdown_limit: Annotated[
        float, typer.Option(help="Share of the fund fund_first+NAME may use.")
    ] = 1.0,
    example: Annotated[
        Path | None,
        typer.Option(help="Write the generated example rounds here first and use them."),
    ] = None,
) -> None:
    """Run ADL policies side by side on the same rounds: haircut vs deficit, fairness, who was
    hit.

    Example: deleverage adl-study --example rounds.csv --out adl-study
    """
    from deleverage.analytics.adl_study import (
        DEFAULT_POLICIES,
        build_study_report,
        load_rounds,
        run_study,
        write_example_rounds,
    )
    from deleverage.errors import ValidationError

    if example is not None:
        rounds = write_example_rounds(example)
    if rounds is None:
        raise ValidationError("ROUNDS", None, "is required (or pass --example PATH)")
    frame = load_rounds(rounds)
    result = run_study(
        frame, tuple(policy) if policy else DEFAULT_POLICIES, gap_s=gap_s,
        cap_fraction=cap_fraction, fund=fund, drawdown_limit=drawdown_limit,
    )  # fmt: skip
    out.mkdir(parents=True, exist_ok=True)
    result.rounds.to_csv(out / "adl_study_rounds.csv", index=False)
    result.waves.to_csv(out / "adl_study_waves.csv", index=False)
    result.totals.to_csv(out / "adl_study.csv", index=False)
    (out / "adl_study.html").write_text(
        build_study_report(result, title=f"ADL study: {rounds.name}"), encoding="utf-8"
    )
    console = Console(width=150)
    table = Table(title=f"{rounds.name}: totals per policy")
    table.add_column("policy")
    for col in _COLUMNS:
        table.add_column(col, justify="right")
    for row in result.totals.itertuples(index=False):
        table.add_row(row.policy, *(f"{getattr(row, c):,.4g}" for c in _COLUMNS))
    console.print(table)
    console.print(f"wrote {out / 'adl_study.csv'} and {out / 'adl_study.html'}")
