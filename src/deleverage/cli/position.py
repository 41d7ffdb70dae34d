"""Commands ``deleverage position`` and ``deleverage heatmap``.

Thin layers over the public API (registered on the typer app of :mod:`deleverage.cli.app`):

- ``position`` values one isolated position on a venue preset: liquidation and bankruptcy
  prices (:mod:`deleverage.rules.margin`), probability of liquidation within a horizon
  (:func:`~deleverage.analytics.first_passage.gbm_hit_probability`), delta and gamma of the
  liquidatable position (:func:`~deleverage.analytics.greeks.knockout_forward_greeks`) and the
  sensitivities of that probability (:func:`~deleverage.analytics.greeks.
  hit_probability_sensitivities`);
- ``heatmap`` bins the liquidation prices of a population file or of a scenario's population
  (:func:`~deleverage.analytics.heatmap.liquidation_heatmap`) and names the largest clusters;
  with several ``--venue`` it recomputes the same positions' levels with each venue's tiers.

Bad input raises :class:`~deleverage.errors.ValidationError` or
:class:`~deleverage.errors.UnknownEntityError`; :func:`deleverage.cli.app.main` turns them into exit
code 2 with the message.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from deleverage._files import atomic_write, check_input_file, check_output_file
from deleverage.engine.contracts import ContractUnits
from deleverage.errors import ValidationError
from deleverage.venues import preset

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt
    import pandas as pd

    from deleverage.spec import MarketSpec

__all__ = ["PositionMetrics", "heatmap", "position", "position_metrics"]

SECONDS_PER_HOUR = 3600.0


def _console() -> Console:
    console = Console()
    if not console.is_terminal:  # logs, pipes and tests: wide enough for the tables
        console = Console(width=130)
    return console


def _positive(option: str, value: float) -> float:
    if not math.isfinite(value) or value <= 0.0:
        raise ValidationError(option, value, "must be a finite number > 0")
    return float(value)


def _within(option: str, value: float, high: float) -> float:
    """``value`` if it is finite and in ``(0, high]``."""
    if not (math.isfinite(value) and 0.0 < value <= high):
        raise ValidationError(option, value, f"must be a finite number > 0 and at most {high:g}")
    return float(value)


def _json_safe(value: Any) -> Any:
    """Non-finite floats as ``None``: JSON has no NaN or Infinity."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_safe(v) for v in value]
    return value


#: Ranges of ``position``'s inputs: beyond them the figures are meaningless (a price beyond
#: any market, a volatility of more than 2,000% a year) or overflow float64.
MAX_SIZE = 1e9  # base units
MAX_MARGIN = 1e15  # quote
MAX_HORIZON_HOURS = 10 * 365 * 24.0
HOURS_PER_YEAR = 365 * 24.0
MAX_LOG_DRIFT = 50.0  # |drift| x horizon in years: exp(50) ~ 5e21, far from float overflow


@dataclass(frozen=True, slots=True)
class PositionMetrics:
    """Risk figures of one isolated position (quote per base, base units, quote, fractions;
    contracts and the coin for an inverse market)."""

    venue: str
    symbol: str
    side: str
    size: float  # signed, base units (long > 0)
    entry_price: float
    margin: float  # isolated margin, quote
    mark_price: float
    notional: float  # |size| x mark, quote
    leverage: float  # |size| x entry / margin
    initial_margin: float  # at the tier's maximum leverage, quote
    maintenance_margin: float  # at the mark, quote
    unrealized_pnl: float  # size x (mark - entry), quote
    liquidation_price: float
    bankruptcy_price: float
    distance_to_liquidation: float  # liquidation / mark - 1
    volatility: float  # annualized
    drift: float  # annualized
    horizon_s: float
    liquidation_probability: float
    value: float  # of the knock-out forward, quote
    delta: float  # d value / d mark, base units
    gamma: float  # d2 value / d mark2, base per quote
    probability_d_price: float  # dP / d mark, per quote
    probability_d_volatility: float  # dP / d sigma


def _checked_position_inputs(
    side: str,
    size: float,
    entry_price: float,
    margin: float,
    volatility: float,
    horizon_hours: float,
    drift: float,
    mark_price: float | None,
) -> tuple[float, float, float, float, float, float, float]:
    """The position's inputs, each within its documented bounds, or a ValidationError naming
    the option: size, entry, margin, volatility, horizon (hours), drift and mark."""
    from deleverage.sim.scenario import MAX_PRICE, MAX_VOLATILITY

    if side not in ("long", "short"):
        raise ValidationError("--side", side, "must be 'long' or 'short'")
    absolute = _within("--size", size, MAX_SIZE)
    entry = _within("--entry", entry_price, MAX_PRICE)
    collateral = _within("--margin", margin, MAX_MARGIN)
    sigma = _within("--volatility", volatility, MAX_VOLATILITY)
    hours = _within("--horizon-hours", horizon_hours, MAX_HORIZON_HOURS)
    if not math.isfinite(drift):
        raise ValidationError("--drift", drift, "must be a finite number")
    mu = float(drift)
    if abs(mu) * hours / HOURS_PER_YEAR > MAX_LOG_DRIFT:
        raise ValidationError(
            "--drift",
            mu,
            f"must keep |drift| x horizon within {MAX_LOG_DRIFT:g} (log-price units; the "
            f"horizon is {hours / HOURS_PER_YEAR:g} years)",
        )
    mark = entry if mark_price is None else _within("--mark", mark_price, MAX_PRICE)
    return absolute, entry, collateral, sigma, hours, mu, mark


def position_metrics(
    *,
    side: str,
    size: float,
    entry_price: float,
    margin: float,
    venue: str = "binance",
    symbol: str = "BTC",
    volatility: float = 0.8,
    horizon_hours: float = 24.0,
    drift: float = 0.0,
    mark_price: float | None = None,
) -> PositionMetrics:
    """Compute the risk figures of one isolated position on a venue preset.

    - liquidation price: :func:`~deleverage.rules.margin.liquidation_price_isolated` with the
      preset's tiers (maintenance on the mark notional, tier at the liquidation price: Binance);
    - bankruptcy price: :func:`~deleverage.rules.margin.bankruptcy_price`, ``EP - side x margin /
      |size|`` (no closing fee);
    - probability of liquidation within ``horizon_hours``:
      :func:`~deleverage.analytics.first_passage.gbm_hit_probability` from the mark;
    - value, delta, gamma: :func:`~deleverage.analytics.greeks.knockout_forward_greeks` with
      knock-out value ``R = -margin`` (liquidated, the trader loses the isolated margin);
    - ``dP/dS``, ``dP/dsigma``: :func:`~deleverage.analytics.greeks.
      hit_probability_sensitivities`.

    An inverse market (BitMEX XBTUSD, Bybit BTCUSD, Binance BTCUSD_PERP) takes ``size`` in
    contracts and ``margin`` in its coin, and reports notional, margins, PnL and value in the
    coin: the figures are those of the linear position ``-contracts x contract_value`` on the
    reciprocal price ``Y = 1 / S`` (:mod:`deleverage.engine.contracts`), a GBM with drift
    ``sigma^2 - mu``; delta and gamma are turned back into derivatives in ``S``
    (``dV/dS = -V_Y / S^2``, ``d2V/dS2 = V_YY / S^4 + 2 V_Y / S^3``).

    Parameters
    ----------
    side
        ``"long"`` or ``"short"``.
    size
        Absolute size in base units, ``> 0``.
    entry_price
        Entry price, quote per base, ``> 0``.
    margin
        Isolated margin in quote, at least the initial margin at the tier's maximum leverage.
    venue, symbol
        Venue preset and market (:func:`deleverage.venues.preset`).
    volatility, drift
        Annualized volatility (``> 0``) and drift of the mark price.
    horizon_hours
        Horizon in hours, ``> 0``.
    mark_price
        Current mark price (default: the entry price).

    Returns
    -------
    PositionMetrics
        The figures, one float each.

    Raises
    ------
    ValidationError
        Naming the option (``--size``, ``--margin``...), the value and the rule broken.
    UnknownEntityError
        For an unknown venue or symbol.
    """
    import numpy as np

    from deleverage.analytics.first_passage import gbm_hit_probability
    from deleverage.analytics.greeks import hit_probability_sensitivities, knockout_forward_greeks
    from deleverage.rules import margin as mm

    absolute, entry, collateral, sigma, hours, mu, mark = _checked_position_inputs(
        side, size, entry_price, margin, volatility, horizon_hours, drift, mark_price
    )
    market = preset(venue, symbol)
    tiers = market.tier_arrays
    units = ContractUnits.of(market)
    signed = absolute if side == "long" else -absolute
    # Engine units: identity for linear markets, the reciprocal price for inverse ones.
    q, entry_e, mark_e = (
        units.engine_size(signed),
        units.engine_price(entry),
        units.engine_price(mark),
    )
    mu_e = sigma * sigma - mu if units.inverse else mu
    entry_notional = abs(q) * entry_e
    initial = float(mm.initial_margin(entry_notional, tiers))
    if collateral < initial:
        max_leverage = entry_notional / initial
        raise ValidationError(
            "--margin",
            collateral,
            f"must be at least the initial margin {initial:,.2f} "
            f"(notional {entry_notional:,.2f} at the tier's max leverage {max_leverage:g}x "
            f"on {market.symbol})",
        )
    direction = "down" if side == "long" else "up"
    horizon_s = hours * SECONDS_PER_HOUR
    liquidation_e = float(mm.liquidation_price_isolated(q, entry_e, collateral, tiers))
    liquidation = float(units.venue_price(liquidation_e))
    bankruptcy = float(units.venue_price(float(mm.bankruptcy_price(q, entry_e, collateral))))
    probability = float(
        gbm_hit_probability(mark, liquidation, mu, sigma, horizon_s, direction=direction)
    )
    sens = hit_probability_sensitivities(
        mark, liquidation, mu, sigma, horizon_s, direction=direction
    )
    greeks = knockout_forward_greeks(
        mark_e,
        size=q,
        entry_price=entry_e,
        liquidation_price=liquidation_e,
        sigma=sigma,
        horizon_s=horizon_s,
        mu=mu_e,
        knockout_value=-collateral,
    )
    delta, gamma = float(np.asarray(greeks.delta)), float(np.asarray(greeks.gamma))
    if units.inverse:  # derivatives in Y = 1 / S back to derivatives in S
        delta, gamma = -delta / mark**2, gamma / mark**4 + 2.0 * delta / mark**3
    notional = abs(q) * mark_e
    return PositionMetrics(
        venue=venue,
        symbol=market.symbol,
        side=side,
        size=signed,
        entry_price=entry,
        margin=collateral,
        mark_price=mark,
        notional=notional,
        leverage=entry_notional / collateral,
        initial_margin=initial,
        maintenance_margin=float(mm.maintenance_margin(notional, tiers)),
        unrealized_pnl=q * (mark_e - entry_e),
        liquidation_price=liquidation,
        bankruptcy_price=bankruptcy,
        distance_to_liquidation=liquidation / mark - 1.0,
        volatility=sigma,
        drift=mu,
        horizon_s=horizon_s,
        liquidation_probability=probability,
        value=float(np.asarray(greeks.value)),
        delta=delta,
        gamma=gamma,
        probability_d_price=float(np.asarray(sens.d_price)),
        probability_d_volatility=float(np.asarray(sens.d_sigma)),
    )


def position(
    side: Annotated[str, typer.Option(help="long or short.")],
    size: Annotated[
        float, typer.Option(help="Absolute size in base units (BTC); contracts if inverse.")
    ],
    entry: Annotated[float, typer.Option(help="Entry price, quote per base.")],
    margin: Annotated[float, typer.Option(help="Isolated margin, quote; coin if inverse.")],
    venue: Annotated[str, typer.Option(help="Venue preset (deleverage presets).")] = "binance",
    symbol: Annotated[str, typer.Option(help="Market of the venue.")] = "BTC",
    volatility: Annotated[float, typer.Option(help="Annualized volatility.")] = 0.8,
    horizon_hours: Annotated[float, typer.Option(help="Horizon in hours.")] = 24.0,
    drift: Annotated[float, typer.Option(help="Annualized drift.")] = 0.0,
    mark: Annotated[float | None, typer.Option(help="Mark price (default: entry).")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
) -> None:
    """Liquidation and bankruptcy prices, liquidation probability and greeks of a position.

    Example: deleverage position --side long --size 1 --entry 60000 --margin 3000
    """
    metrics = position_metrics(
        side=side,
        size=size,
        entry_price=entry,
        margin=margin,
        venue=venue,
        symbol=symbol,
        volatility=volatility,
        horizon_hours=horizon_hours,
        drift=drift,
        mark_price=mark,
    )
    if as_json:
        typer.echo(json.dumps(_json_safe(asdict(metrics)), allow_nan=False))
        return
    m = metrics
    table = Table(title=f"{m.side} {abs(m.size):g} {m.symbol} on {m.venue} (isolated)")
    table.add_column("metric")
    table.add_column("value", justify="right")
    rows = [
        ("entry price", f"{m.entry_price:,.2f}"),
        ("mark price", f"{m.mark_price:,.2f}"),
        ("notional at mark", f"{m.notional:,.2f}"),
        ("isolated margin", f"{m.margin:,.2f}"),
        ("leverage", f"{m.leverage:.2f}x"),
        ("initial margin (tier max leverage)", f"{m.initial_margin:,.2f}"),
        ("maintenance margin at mark", f"{m.maintenance_margin:,.2f}"),
        ("unrealized PnL", f"{m.unrealized_pnl:,.2f}"),
        ("liquidation price", f"{m.liquidation_price:,.2f}"),
        ("bankruptcy price", f"{m.bankruptcy_price:,.2f}"),
        ("distance to liquidation", f"{m.distance_to_liquidation:+.2%}"),
        (
            f"P(liquidated within {m.horizon_s / SECONDS_PER_HOUR:g} h)",
            f"{m.liquidation_probability:.4f}",
        ),
        ("delta (base)", f"{m.delta:.6f}"),
        ("gamma (base per quote)", f"{m.gamma:.3e}"),
        ("dP / d price (per quote)", f"{m.probability_d_price:.3e}"),
        ("dP / d volatility", f"{m.probability_d_volatility:.6f}"),
    ]
    for row in rows:
        table.add_row(*row)
    console = _console()
    console.print(table)
    console.print(
        f"GBM, volatility {m.volatility:g}, drift {m.drift:g} (annualized, 365-day year); "
        "liquidated, the position is worth -margin."
    )


@dataclass(frozen=True, slots=True)
class _HeatmapResult:
    venue: str
    symbol: str
    buckets: pd.DataFrame
    clusters: pd.DataFrame
    mark: float
    positions: int
    mapped: int


@dataclass(frozen=True, slots=True)
class _Source:
    """A population frame and where it came from (a file, or a scenario's market)."""

    frame: pd.DataFrame
    label: str
    mark: float | None  # the scenario's first mark; None for a file
    venue: str  # the scenario market's venue, or the first --venue


def _venue_levels(frame: pd.DataFrame, market: MarketSpec) -> npt.NDArray[np.float64]:
    """Isolated liquidation prices of the rows with ``market``'s tiers and taker fee (NaN for
    cross rows): :func:`deleverage.rules.margin.liquidation_price_isolated` on the isolated margin
    ``collateral - |size| x entry x taker_fee_rate``, as the population generator does."""
    import numpy as np

    from deleverage.rules import margin as mm

    size = frame["size"].to_numpy(dtype=np.float64)
    entry = frame["entry_price"].to_numpy(dtype=np.float64)
    collateral = frame["collateral"].to_numpy(dtype=np.float64)
    isolated = frame["margin_mode"].astype(str).to_numpy() == "isolated"
    held = collateral - np.abs(size) * entry * market.taker_fee_rate
    levels = mm.liquidation_price_isolated(size, entry, held, market.tier_arrays)
    return np.asarray(np.where(isolated, levels, np.nan), dtype=np.float64)


def _heatmap_of(
    frame: pd.DataFrame,
    liquidation: npt.NDArray[np.float64],
    *,
    venue: str,
    symbol: str,
    mark: float,
    width: float,
    clusters: int,
) -> _HeatmapResult:
    import numpy as np

    from deleverage.analytics.heatmap import largest_clusters, liquidation_heatmap

    buckets = liquidation_heatmap(
        liquidation,
        frame["size"].to_numpy(dtype=np.float64),
        frame["side"].to_numpy(dtype=np.float64),
        mark,
        bucket_width=width,
    )
    mapped = int(np.count_nonzero(np.isfinite(liquidation) & (liquidation > 0.0)))
    return _HeatmapResult(
        venue=venue,
        symbol=symbol,
        buckets=buckets,
        clusters=largest_clusters(buckets, clusters),
        mark=mark,
        positions=len(frame),
        mapped=mapped,
    )


def scenario_population(name_or_path: str, market: str | None, *, field: str) -> _Source:
    """The population of one market of a scenario, drawn exactly as the runner draws it (the
    runner's own set-up, :class:`deleverage.sim.runner.Simulation`: same seed, same rows)."""
    from deleverage.sim.runner import Simulation
    from deleverage.sim.scenario import check_resources, load_scenario

    scenario = load_scenario(name_or_path)
    check_resources(scenario)
    with_population = [m for m in scenario.markets if m.population is not None]
    if not with_population:
        raise ValidationError(field, name_or_path, "must have a market with a population")
    symbols = [m.symbol for m in with_population]
    if market is None:
        chosen = with_population[0]
    else:
        matches = [m for m in with_population if m.symbol.upper() == market.upper()]
        if not matches:
            raise ValidationError("--market", market, f"must be one of the scenario's {symbols}")
        chosen = matches[0]
    sim = Simulation(scenario)
    index = [m.symbol for m in scenario.markets].index(chosen.symbol)
    population = sim.populations[chosen.symbol]
    return _Source(
        frame=population.frame,
        label=f"{scenario.name} {chosen.symbol}",
        mark=float(sim.paths[0, index]),
        venue=chosen.preset or chosen.symbol,
    )


def _heatmap_results(
    population: Path | None,
    *,
    scenario: str | None,
    venues: list[str] | None,
    symbol: str | None,
    market: str | None,
    mark: float | None,
    bucket: float,
    clusters: int,
) -> list[_HeatmapResult]:
    import numpy as np

    from deleverage.sim.population import Population

    width = _positive("--bucket", bucket)
    if clusters < 1:
        raise ValidationError("--clusters", clusters, "must be >= 1")
    if (population is None) == (scenario is None):
        raise ValidationError(
            "population", population, "must be given, or --scenario instead (exactly one of them)"
        )
    if venues is not None and len(set(venues)) != len(venues):
        raise ValidationError("--venue", venues, "must name each venue once")
    asset = "BTC" if symbol is None else symbol
    if scenario is not None:
        source = scenario_population(scenario, market, field="--scenario")
        specs = [] if venues is None else [preset(v, asset) for v in venues]
    else:
        assert population is not None
        names = ["binance"] if venues is None else venues
        specs = [preset(v, asset) for v in names]
        check_input_file(population, field="population", what="Parquet file")
        base = Population.from_parquet(population, market=specs[0])
        source = _Source(frame=base.frame, label=population.name, mark=None, venue=names[0])
    frame = source.frame
    if mark is not None:
        mark_price = _positive("--mark", mark)
    elif source.mark is not None:
        mark_price = source.mark
    else:
        mark_price = float(np.median(frame["entry_price"].to_numpy()))
    common: dict[str, Any] = {"mark": mark_price, "width": width, "clusters": clusters}
    if not specs:  # a scenario on its own market: the levels the runner will liquidate
        levels = frame["liquidation_price"].to_numpy(dtype=np.float64)
        return [_heatmap_of(frame, levels, venue=source.venue, symbol=asset, **common)]
    if len(specs) == 1 and scenario is None:  # one venue: the file's own levels if it has them
        levels = frame["liquidation_price"].to_numpy(dtype=np.float64)
        return [_heatmap_of(frame, levels, venue=source.venue, symbol=specs[0].symbol, **common)]
    names = [source.venue] if venues is None else venues
    return [
        _heatmap_of(frame, _venue_levels(frame, spec), venue=v, symbol=spec.symbol, **common)
        for v, spec in zip(names, specs, strict=True)
    ]


def _bucket_table(title: str, frame: pd.DataFrame, *, first: str) -> Table:
    table = Table(title=title)
    table.add_column(first)
    for col in ("bucket", "positions", "size", "notional", "distance"):
        table.add_column(col, justify="right")
    for row in frame.itertuples(index=False):
        label = str(row.zone if first == "zone" else f"{row.kind} #{row.rank}")
        table.add_row(
            label,
            f"{row.bucket_low:,.2f} - {row.bucket_high:,.2f}",
            f"{row.count:,}",
            f"{row.size:,.3f}",
            f"{row.notional:,.0f}",
            f"{row.distance:+.2%}",
        )
    return table


def _write_html(results: list[_HeatmapResult], out: Path, *, title: str) -> None:
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    check_output_file(out, field="--html")
    several = len(results) > 1
    figure = make_subplots(
        rows=len(results),
        cols=1,
        shared_xaxes=True,
        vertical_spacing=0.08 if several else 0.02,
        subplot_titles=[f"{r.venue} ({r.symbol})" for r in results] if several else None,
    )
    for row, result in enumerate(results, start=1):
        frame = result.buckets
        for side, color in (("long", "#d62728"), ("short", "#2ca02c")):
            part = frame[frame["side"] == side]
            mid = (part["bucket_low"] + part["bucket_high"]) / 2.0
            name = f"{side} liquidations" + (f", {result.venue}" if several else "")
            figure.add_trace(
                go.Bar(
                    x=mid.tolist(),
                    y=part["notional"].tolist(),
                    name=name,
                    marker_color=color,
                    customdata=part[["bucket_low", "bucket_high", "count"]].to_numpy().tolist(),
                    hovertemplate="%{customdata[0]:,.2f} - %{customdata[1]:,.2f}<br>"
                    "notional %{y:,.0f}<br>%{customdata[2]} positions<extra></extra>",
                ),
                row=row,
                col=1,
            )
        figure.add_vline(
            x=result.mark,
            line_dash="dash",
            annotation_text=f"mark {result.mark:,.2f}",
            row=row,
            col=1,
        )
        figure.update_yaxes(title_text="liquidation notional (quote)", row=row, col=1)
    figure.update_xaxes(title_text="liquidation price (quote per base)", row=len(results), col=1)
    figure.update_layout(title=title, barmode="stack", height=max(450, 320 * len(results)))
    atomic_write(
        out,
        lambda tmp: figure.write_html(str(tmp), include_plotlyjs=True, full_html=True),
        field="--html",
    )


def _payload(result: _HeatmapResult) -> dict[str, object]:
    return {
        "venue": result.venue,
        "symbol": result.symbol,
        "mapped": result.mapped,
        "buckets": result.buckets.to_dict(orient="records"),
        "clusters": result.clusters.to_dict(orient="records"),
    }


def _print_heatmaps(
    console: Console, results: list[Any], *, label: str, bucket: float, top: int
) -> None:
    first = results[0]
    console.print(
        f"{first.positions:,} positions of {label}; mark {first.mark:,.2f}; bucket width {bucket:g}"
    )
    for result in results:
        prefix = f"{result.venue} ({result.symbol}): " if len(results) > 1 else ""
        console.print(f"{prefix}{result.mapped:,} positions with a liquidation price (isolated)")
        frame = result.buckets
        for side in ("long", "short"):
            part = frame[frame["side"] == side].nlargest(top, "notional", keep="first")
            console.print(
                _bucket_table(f"{prefix}Largest {side} liquidation buckets", part, first="zone")
            )
        console.print(
            _bucket_table(
                f"{prefix}Clusters (support: longs below the mark; resistance: shorts above)",
                result.clusters,
                first="kind",
            )
        )


def heatmap(
    population: Annotated[
        Path | None, typer.Argument(help="Population Parquet file (or use --scenario).")
    ] = None,
    venue: Annotated[
        list[str] | None,
        typer.Option(
            help="Venue preset (deleverage presets); repeat to compare venues side by side "
            "(the same positions' levels with each venue's tiers). Default: binance for a "
            "file, the scenario's own market for --scenario."
        ),
    ] = None,
    symbol: Annotated[
        str | None, typer.Option(help="Market of the venue presets (default: BTC).")
    ] = None,
    scenario: Annotated[
        str | None,
        typer.Option(
            help="A scenario TOML file or built-in name: map its population, drawn with the "
            "scenario's seed as the runner draws it, at its first mark."
        ),
    ] = None,
    market: Annotated[
        str | None,
        typer.Option(help="With --scenario: the market's symbol (default: its first market)."),
    ] = None,
    mark: Annotated[
        float | None,
        typer.Option(help="Mark price (default: median entry, or the scenario's first mark)."),
    ] = None,
    bucket: Annotated[float, typer.Option(help="Bucket width, quote per base.")] = 500.0,
    top: Annotated[int, typer.Option(help="Buckets shown per side.")] = 10,
    clusters: Annotated[int, typer.Option(help="Clusters named per kind.")] = 3,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
    html: Annotated[
        Path | None, typer.Option(help="Write a self-contained plotly bar chart here.")
    ] = None,
) -> None:
    """Liquidation heatmap of a population: notional by price bucket and side, and clusters.

    Examples:

      deleverage heatmap population.parquet --bucket 500 --html heatmap.html

      deleverage heatmap population.parquet --venue binance --venue bybit --venue hyperliquid

      deleverage heatmap --scenario btc-2025-10-10 --bucket 250 --json
    """
    if top < 1:
        raise ValidationError("--top", top, "must be >= 1")
    if html is not None:
        check_output_file(html, field="--html")
    from deleverage.world.config import scenario_kind

    if scenario is not None and scenario_kind(scenario) == "world":  # every venue of a world
        from deleverage.cli.world import world_heatmap

        if population is not None or venue:
            raise ValidationError(
                "--scenario", scenario, "is a world: give no population file and no --venue"
            )
        world_heatmap(scenario, bucket=bucket, as_json=as_json, html=html)
        return
    results = _heatmap_results(
        population,
        scenario=scenario,
        venues=venue,
        symbol=symbol,
        market=market,
        mark=mark,
        bucket=bucket,
        clusters=clusters,
    )
    first = results[0]
    label = population.name if population is not None else str(scenario)
    venues = ", ".join(r.venue for r in results)
    title = f"Liquidation heatmap: {label} ({venues}), mark {first.mark:,.2f}, bucket {bucket:g}"
    if html is not None:
        _write_html(results, html, title=title)
    if as_json:
        payload = {
            "mark_price": first.mark,
            "bucket_width": float(bucket),
            "positions": first.positions,
            **_payload(first),
            "venues": [_payload(r) for r in results],
        }
        if scenario is not None:
            payload["scenario"] = scenario
        typer.echo(json.dumps(_json_safe(payload), allow_nan=False))
        return
    console = _console()
    _print_heatmaps(console, results, label=label, bucket=bucket, top=top)
    if html is not None:
        console.print(f"wrote {html}")
