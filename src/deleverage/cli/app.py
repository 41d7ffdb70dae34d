"""Command line: ``deleverage demo``, ``deleverage presets``.

A thin layer over the public API (typer + rich). Exit codes: 0 success, 2 bad input (with the
message), 1 internal error.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table
from typer.exceptions import TyperException

from deleverage._files import atomic_write, check_input_file, check_output_file
from deleverage.cli.adl_study import adl_study_command
from deleverage.cli.calibrate import calibrate
from deleverage.cli.position import heatmap, position
from deleverage.cli.predict import predict_app
from deleverage.cli.redact import redact
from deleverage.cli.run import run, scenarios, validate
from deleverage.cli.scaffold import init, population
from deleverage.cli.serve import serve
from deleverage.cli.sweep import sweep, sweep_report_command
from deleverage.errors import DeleverageError

app = typer.Typer(
    name="deleverage",
    help="Risk engine and laboratory for liquidation cascades and automated deleveraging.",
    no_args_is_help=True,
    add_completion=False,
)
app.command("position")(position)
app.command("heatmap")(heatmap)
app.command("run")(run)
app.command("scenarios")(scenarios)
app.command("validate")(validate)
app.command("sweep")(sweep)
app.command("sweep-report")(sweep_report_command)
app.command("serve")(serve)
app.command("adl-study")(adl_study_command)
app.command("init")(init)
app.command("population")(population)
app.command("calibrate")(calibrate)
app.add_typer(predict_app, name="predict")
console = Console()
if not console.is_terminal:  # logs and pipes: wide enough for the tables, not 80 columns
    console = Console(width=130)


def _stderr() -> Console:
    err = Console(stderr=True)
    return err if err.is_terminal else Console(stderr=True, width=130)


def _version(value: bool) -> None:
    if value:
        from deleverage import __version__

        typer.echo(f"deleverage {__version__}")
        raise typer.Exit()


@app.callback()
def _options(
    version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_version, is_eager=True, help="Print the version and exit."
        ),
    ] = False,
) -> None:
    """Risk engine and laboratory for liquidation cascades and automated deleveraging."""


@app.command()
def demo(
    journal: Annotated[
        Path | None, typer.Option(help="Also write the engine's journal to this Parquet file.")
    ] = None,
) -> None:
    """Replay the 2025-10-10 BTC crash over eight traders and show margins, liquidations, ADL.

    Example: deleverage demo --journal demo.parquet
    """
    from deleverage.cli.demo import event_log, run_demo

    if journal is not None:
        check_output_file(journal, field="--journal")
    with console.status("Replaying BTCUSDT 2025-10-10 19:13-23:34 UTC, one mark a minute..."):
        result = run_demo()
    ex = result.exchange
    if journal is not None:
        atomic_write(journal, ex.journal.write_parquet, field="--journal")
        console.print(f"journal written to {journal} ({len(ex.journal):,} events)")
    console.rule("[bold]deleverage demo: BTCUSDT through the 2025-10-10 crash")
    console.print(
        f"mark {result.start_price:,.1f} -> low {result.low_price:,.1f} -> "
        f"{result.end_price:,.1f} over {len(result.reports)} one-minute marks "
        f"(Binance-preset tiers, constant-depth book, shared insurance fund)"
    )
    console.print(_margin_table("Positions before the crash", result.before))
    log = event_log(result)
    events = Table(title="What the risk engine did", show_lines=False)
    labels = {
        "MARGIN_CALL": "margin ratio",
        "LIQUIDATION": "shortfall",
        "ADL_ROUND": "profit taken",
        "BAD_DEBT": "bad debt",
    }
    for col in ("time", "event", "trader", "size closed", "price", "amount"):
        right = col in ("size closed", "price", "amount")
        events.add_column(col, justify="right" if right else "left")
    for row in log.itertuples():
        amount = f"{labels[row.kind_name]} {row.amount:,.2f}"
        price = f"{row.price:,.1f}" if row.price else ""
        size = f"{row.size:,.3f}" if row.size else ""
        events.add_row(row.time, row.kind_name.lower(), row.trader, size, price, amount)
    console.print(events)
    console.print(_margin_table("Positions after the crash", result.after))
    totals = {
        "liquidations": sum(r.liquidations for r in result.reports),
        "liquidated notional": sum(r.liquidated_notional for r in result.reports),
        "penalties to the fund": sum(r.penalties for r in result.reports),
        "fund paid for shortfalls": sum(r.insurance_paid for r in result.reports),
        "ADL rounds": sum(r.adl_rounds for r in result.reports),
        "ADL notional": sum(r.adl_notional for r in result.reports),
        "bad debt": sum(r.bad_debt for r in result.reports),
    }
    summary = Table(title="Summary")
    summary.add_column("metric")
    summary.add_column("value", justify="right")
    for key, value in totals.items():
        summary.add_row(key, f"{value:,.2f}" if isinstance(value, float) else str(value))
    fund = ex.insurance_fund()
    summary.add_row("insurance fund balance", f"{fund.balance:,.2f}")
    staker = next(a for a, name in result.names.items() if name == "insurance-staker")
    summary.add_row("staker's stake (1,000 in)", f"{fund.staker_value(staker):,.2f}")
    conservation = ex.conservation()
    summary.add_row(
        "money conserved",
        f"{conservation.holds} (error {conservation.error:.2e} on {conservation.scale:,.0f})",
    )
    for kind_name, below in conservation.negative_equity_lines.items():
        if below > 0.0:
            summary.add_row(f"negative equity: {kind_name}", f"{below:,.2f}")
    summary.add_row("events in the journal", f"{len(ex.journal):,}")
    console.print(summary)


@app.command()
def queue(
    journal: Annotated[Path, typer.Argument(help="A journal written by the engine (Parquet).")],
    market: Annotated[str, typer.Option(help="Market symbol.")],
    side: Annotated[str, typer.Option(help="long or short.")] = "long",
    limit: Annotated[
        int | None, typer.Option(help="Show only the first N positions of the queue.")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
) -> None:
    """The ADL queue of a saved engine state: rank, score and 1-5 indicator per account.

    The state is rebuilt by replaying the journal. Example:
    deleverage queue demo.parquet --market BTCUSDT --side short --limit 10
    """
    from deleverage.engine.events import Journal
    from deleverage.engine.exchange import Exchange
    from deleverage.errors import ValidationError

    sides = {"long": 1, "short": -1}
    if side not in sides:
        raise ValidationError("--side", side, "must be 'long' or 'short'")
    if limit is not None and limit < 1:
        raise ValidationError("--limit", limit, "must be >= 1")
    check_input_file(journal, field="journal", what="Parquet journal")
    ex = Exchange.replay(Journal.read_parquet(journal))
    frame = ex.adl_queue(market, sides[side])
    total = len(frame)
    if limit is not None:
        frame = frame.head(limit)
    if as_json:
        typer.echo(frame.to_json(orient="records"))
        return
    shown = f"first {len(frame)} of {total}" if len(frame) < total else str(total)
    table = Table(title=f"ADL queue, {market} {side}s ({shown} positions)")
    for col in ("rank", "account", "score", "size", "indicator"):
        table.add_column(col, justify="right")
    for row in frame.itertuples():
        lights = "●" * int(row.indicator) + "○" * (5 - int(row.indicator))
        table.add_row(
            str(row.rank), str(row.account), f"{row.score:.6g}", f"{row.size:,.4f}", lights
        )
    console.print(table)


@app.command()
def presets(
    venue: Annotated[
        str | None,
        typer.Argument(help="A venue: show its sources, rules and what the engine lacks."),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
) -> None:
    """List the venue presets (margin tiers, liquidation and ADL rules of real venues) and the
    rules each does not reproduce yet (gaps).

    Example: deleverage presets dydx_v4
    """
    import json

    from deleverage.venues import list_presets, preset, preset_info

    venues = list_presets() if venue is None else [preset_info(venue).venue]
    rows: list[dict[str, Any]] = []
    for name in venues:
        spec, info = preset(name), preset_info(name)
        rows.append(
            {
                "venue": name, "market": spec.symbol, "max_leverage": spec.max_leverage,
                "maintenance_rate": spec.tiers[0].maintenance_rate, "tiers": len(spec.tiers),
                "liquidation": spec.liquidation.kind, "execution": spec.liquidation.execution,
                "adl_ranking": spec.adl.ranking, "adl_price": spec.adl.price,
                "gaps": list(info.spec_gaps),
            }
        )  # fmt: skip
    if as_json:
        typer.echo(json.dumps(rows))
        return
    if venue is not None:
        _preset_detail(rows[0]["venue"])
        return
    table = Table(title="Venue presets (deleverage.preset(venue)); details: presets VENUE")
    for col in ("venue", "market", "max lev", "maint.", "tiers", "liquidation", "ADL", "gaps"):
        table.add_column(col)
    for row in rows:
        table.add_row(
            row["venue"], row["market"], f"{row['max_leverage']:g}x",
            f"{row['maintenance_rate']:.2%}", str(row["tiers"]),
            f"{row['liquidation']}/{row['execution']}",
            f"{row['adl_ranking']}@{row['adl_price']}", str(len(row["gaps"])),
        )  # fmt: skip
    console.print(table)


def _preset_detail(venue: str) -> None:
    from deleverage.venues import preset_info

    info = preset_info(venue)
    console.print(f"[bold]{escape(info.venue)}[/bold]: {escape(', '.join(info.symbols))}")
    for label, text in (
        ("insurance", info.insurance),
        ("backstop", info.backstop),
        ("execution", info.execution),
        ("ADL", info.adl),
    ):
        console.print(f"[bold]{label}[/bold]: {escape(text)}")
    console.print(f"[bold]not reproduced yet ({len(info.spec_gaps)})[/bold]:")
    for gap in info.spec_gaps:
        console.print(f"  - {escape(gap)}")
    console.print("[bold]sources[/bold]:")
    for source in info.sources:
        console.print(f"  - {escape(source)}")


def _margin_table(title: str, frame: object) -> Table:
    import pandas as pd

    assert isinstance(frame, pd.DataFrame)
    table = Table(title=title)
    columns = [
        ("trader", "trader", "{}"),
        ("mode", "mode", "{}"),
        ("size", "size", "{:,.3f}"),
        ("entry", "entry_price", "{:,.1f}"),
        ("mark", "mark_price", "{:,.1f}"),
        ("uPnL", "unrealized_pnl", "{:,.2f}"),
        ("equity", "equity", "{:,.2f}"),
        ("maint.", "maintenance_margin", "{:,.2f}"),
        ("margin ratio", "margin_ratio", "{:.1%}"),
    ]
    for name, _, _ in columns:
        table.add_column(name, justify="left" if name in ("trader", "mode") else "right")
    for _, row in frame.iterrows():
        table.add_row(*(fmt.format(row[key]) for _, key, fmt in columns))
    return table


def _error(message: str) -> None:
    _stderr().print(f"[red]error:[/red] {escape(redact(message))}", highlight=False)


def main() -> None:
    """Entry point: run the app, mapping bad input to exit code 2 (message on stderr)."""
    try:
        code = app(standalone_mode=False)  # returns a typer.Exit's code instead of raising
    except DeleverageError as exc:
        _error(str(exc))
        sys.exit(2)
    except (typer.Exit, typer.Abort) as exc:
        sys.exit(getattr(exc, "exit_code", 1))
    except TyperException as exc:  # usage errors (exit 2) and other command-line errors
        show = getattr(exc, "show", None)
        if callable(show):
            show()
        sys.exit(int(getattr(exc, "exit_code", 2)))
    except KeyboardInterrupt:
        _stderr().print("[red]interrupted[/red]")
        sys.exit(130)
    except BrokenPipeError:  # `deleverage ... | head`: the reader left; not an error of ours
        sys.stderr.close()
        sys.exit(0)
    except MemoryError:
        _error("out of memory: make the scenario smaller (deleverage validate estimates it)")
        sys.exit(1)
    except Exception as exc:  # a bug: exit 1 with the message, not a traceback
        text = f"{type(exc).__name__}: {exc}"
        _stderr().print(f"[red]internal error:[/red] {escape(redact(text))}", highlight=False)
        sys.exit(1)
    if isinstance(code, int) and code:
        sys.exit(code)
