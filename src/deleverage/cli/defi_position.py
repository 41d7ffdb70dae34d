"""The DeFi half of ``deleverage position`` and ``deleverage heatmap`` (``--protocol``).

- :func:`defi_position_report` values one position of a protocol (an Aave account, a Maker
  vault, a GMX v2 or Synthetix perps v3 position) with :mod:`deleverage.analytics.defi_position`
  and returns the rows and the JSON payload that :mod:`deleverage.cli.position` prints;
- :func:`defi_levels` draws a protocol's population (its generator, seeded), builds the venue
  and returns its :meth:`~deleverage.venues.protocol.Venue.liquidation_levels` with a side per
  row, for :func:`deleverage.analytics.heatmap.liquidation_heatmap`.

The protocol's parameters are its configuration's defaults, changed with ``--param KEY=VALUE``
(``mat=1.45``, ``clipper.tip=300``, ``WETH.liquidation_threshold=0.8`` for an Aave reserve,
``skew_scale=2e5`` for the Synthetix market); the configuration's own bounds check them, and a
bad one raises :class:`~deleverage.errors.ValidationError` naming ``--param``, the value and
the rule (exit code 2).
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import asdict
from typing import TYPE_CHECKING, Any

from deleverage.errors import ConfigError, ValidationError

if TYPE_CHECKING:
    import pandas as pd
    from pydantic import BaseModel

    from deleverage.analytics.defi_position import Horizon
    from deleverage.venues.protocol import Venue

__all__ = [
    "DEFAULT_PRICE",
    "PROTOCOLS",
    "DefiReport",
    "checked_horizon",
    "defi_levels",
    "defi_position_report",
    "parse_pairs",
    "print_defi_position",
    "protocol_config",
    "refuse_options",
    "refuse_perp",
    "venue_levels",
]

PROTOCOLS = ("aave", "maker", "gmx", "synthetix")

#: The ETH price a population is drawn at when no ``--mark`` is given (the issue's examples).
DEFAULT_PRICE = 2_000.0

#: The Synthetix market of ``--protocol synthetix`` (SynthetixConfig has no default market):
#: ETH, with the skew scale of the configuration's own example; change it with ``--param``.
SYNTHETIX_MARKET: dict[str, Any] = {"asset": "ETH", "skew_scale": 1_000_000.0}

MAX_AMOUNT = 1e15


def parse_pairs(option: str, items: list[str] | None) -> dict[str, float]:
    """``["ETH=10", "WBTC=0.5"]`` as ``{"ETH": 10.0, "WBTC": 0.5}``; each name once, each
    amount a finite number in ``[0, 1e15]``."""
    out: dict[str, float] = {}
    for item in items or []:
        name, sep, raw = item.partition("=")
        name = name.strip()
        try:
            value = float(raw)
        except ValueError:
            value = math.nan
        if not sep or not name or not (math.isfinite(value) and 0.0 <= value <= MAX_AMOUNT):
            raise ValidationError(
                option, item, f"must be NAME=AMOUNT with a finite amount in [0, {MAX_AMOUNT:g}]"
            )
        if name.upper() in (k.upper() for k in out):
            raise ValidationError(option, item, f"must name {name} once")
        out[name] = value
    return out


def _value(raw: str) -> Any:
    """A ``--param`` value: JSON (numbers, true/false), else the text itself."""
    try:
        return json.loads(raw)
    except json.JSONDecodeError:
        return raw


def _set(tree: dict[str, Any], path: list[str], value: Any, item: str) -> None:
    node = tree
    for key in path[:-1]:
        child = node.get(key)
        if not isinstance(child, dict):
            raise ValidationError("--param", item, f"must name a field: {key!r} is not a section")
        node = child
    if path[-1] not in node:
        fields = sorted(node)
        raise ValidationError("--param", item, f"must name a field of {fields}")
    node[path[-1]] = value


def protocol_config(protocol: str, params: list[str] | None) -> BaseModel:
    """The protocol's configuration: its defaults with ``params`` (``KEY=VALUE``) applied."""
    from pydantic import ValidationError as PydanticError

    from deleverage.protocols.aave import AaveConfig
    from deleverage.protocols.gmx.config import GmxConfig
    from deleverage.protocols.maker.config import MakerConfig
    from deleverage.protocols.synthetix.config import SynthetixConfig

    kinds: dict[str, type[BaseModel]] = {
        "aave": AaveConfig,
        "maker": MakerConfig,
        "gmx": GmxConfig,
        "synthetix": SynthetixConfig,
    }
    if protocol not in kinds:
        raise ValidationError("--protocol", protocol, f"must be one of {list(PROTOCOLS)}")
    kind = kinds[protocol]
    if protocol == "synthetix":
        tree = kind.model_validate({"markets": [SYNTHETIX_MARKET]}).model_dump()
    else:
        tree = kind().model_dump()
    for item in params or []:
        key, sep, raw = item.partition("=")
        if not sep or not key:
            raise ValidationError("--param", item, "must be KEY=VALUE")
        path = key.strip().split(".")
        value = _value(raw.strip())
        if protocol == "aave" and len(path) == 2 and path[0] not in tree:
            reserves = [dict(r) for r in tree["reserves"]]
            match = [r for r in reserves if str(r["name"]).upper() == path[0].upper()]
            if not match:
                names = [r["name"] for r in reserves]
                raise ValidationError("--param", item, f"must name a reserve of {names}")
            _set(match[0], path[1:], value, item)
            tree["reserves"] = reserves
        elif protocol == "synthetix" and path[0] in tree["markets"][0]:
            _set(tree["markets"][0], path, value, item)
        else:
            _set(tree, path, value, item)
    try:
        return kind.model_validate(tree)
    except PydanticError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        rule = f"{where}: {first['msg']}" if where else str(first["msg"])
        raise ValidationError("--param", params, rule) from None
    except ConfigError as exc:
        raise ValidationError("--param", params, str(exc)) from None


class DefiReport:
    """What ``position --protocol`` prints: a title, table rows and a JSON payload."""

    def __init__(
        self, title: str, rows: list[tuple[str, str]], payload: dict[str, Any], note: str
    ) -> None:
        self.title, self.rows, self.payload, self.note = title, rows, payload, note


def _money(x: float) -> str:
    return f"{x:,.2f}" if math.isfinite(x) else "none"


def _pct(x: float) -> str:
    return f"{x:+.2%}" if math.isfinite(x) else "none"


def checked_horizon(
    volatility: float, hours: float, drift: float, *, max_hours: float, max_log_drift: float = 50.0
) -> Horizon:
    """The GBM horizon of a DeFi position's probabilities, within ``position``'s bounds:
    volatility in ``(0, MAX_VOLATILITY]``, hours in ``(0, max_hours]``, ``|drift| x years``
    at most ``max_log_drift``."""
    from deleverage.analytics.defi_position import Horizon
    from deleverage.sim.scenario import MAX_VOLATILITY

    for option, value, high in (
        ("--volatility", volatility, MAX_VOLATILITY),
        ("--horizon-hours", hours, max_hours),
    ):
        if not (math.isfinite(value) and 0.0 < value <= high):
            raise ValidationError(
                option, value, f"must be a finite number > 0 and at most {high:g}"
            )
    if not math.isfinite(drift) or abs(drift) * hours / (365 * 24.0) > max_log_drift:
        raise ValidationError(
            "--drift",
            drift,
            f"must be finite with |drift| x horizon (years) within {max_log_drift:g}",
        )
    return Horizon(volatility=float(volatility), drift=float(drift), hours=float(hours))


def refuse_options(options: Mapping[str, object], rule: str) -> None:
    """Raise a ValidationError naming the first option given (truthy) of ``options``."""
    for option, value in options.items():
        if value:
            raise ValidationError(option, value, rule)


def refuse_perp(**options: object) -> None:
    """Raise a ValidationError naming the first perp option (``side=...``) left out."""
    for name, value in options.items():
        if value is None:
            raise ValidationError(
                f"--{name}", None, "is required for a perp position (or give --protocol)"
            )


def _no(option: str, value: object, protocol: str) -> None:
    if value:
        raise ValidationError(option, value, f"is not used by --protocol {protocol}")


def _need(option: str, value: float | None, protocol: str) -> float:
    if value is None:
        raise ValidationError(option, value, f"is required by --protocol {protocol}")
    if not (math.isfinite(value) and 0.0 < value <= MAX_AMOUNT):
        raise ValidationError(option, value, f"must be a finite number in (0, {MAX_AMOUNT:g}]")
    return float(value)


def _one_price(prices: dict[str, float], asset: str, default: float | None) -> float:
    matches = [v for k, v in prices.items() if k.upper() == asset.upper()]
    others = [k for k in prices if k.upper() != asset.upper()]
    if others:
        raise ValidationError("--price", others[0], f"must name the protocol's asset {asset}")
    price = matches[0] if matches else default
    if price is None:
        raise ValidationError("--price", None, f"must give {asset}=PRICE")
    if not (math.isfinite(price) and price > 0.0):
        raise ValidationError("--price", f"{asset}={price}", "must be a finite price > 0")
    return price


def _aave(
    config: Any,
    collateral: dict[str, float],
    debt: dict[str, float],
    prices: dict[str, float],
    horizon: Horizon,
) -> DefiReport:
    from deleverage.analytics.defi_position import aave_account_metrics
    from deleverage.protocols.aave import math as am

    upper = {k.upper(): v for k, v in prices.items()}
    for key in upper:
        if key not in (a.upper() for a in config.assets):
            raise ValidationError("--price", key, f"must name a reserve asset of {config.assets}")
    missing = [a for a in config.assets if a.upper() not in upper]
    if missing:
        raise ValidationError("--price", None, f"must give {missing[0]}=PRICE (each reserve asset)")
    for key, value in upper.items():
        if not (math.isfinite(value) and 0.0 < value <= MAX_AMOUNT):
            raise ValidationError("--price", f"{key}={value}", "must be a finite price > 0")
    m = aave_account_metrics(
        config, collateral, debt, {a: upper[a.upper()] for a in config.assets}, horizon
    )
    status = {
        am.LIQUIDATABLE: "liquidatable",
        am.NOT_BELOW_THRESHOLD: "HF >= 1",
        am.LEAVES_DUST: "reverts: would leave dust",
    }[m.status]
    rows = [
        ("collateral value", _money(m.collateral_value)),
        ("debt value", _money(m.debt_value)),
        ("health factor", f"{m.health_factor:.4f}"),
    ]
    for level in m.levels:
        way = "falls" if level.falls else "rises"
        rows += [
            (f"liquidation price of {level.asset} ({way})", _money(level.liquidation_price)),
            (f"distance ({level.asset})", _pct(level.distance)),
            (f"P({level.asset} reaches it within {horizon.hours:g} h)", f"{level.probability:.4f}"),
        ]
    at = f"{m.driver} at {_money(m.at_price)}, HF {m.health_at:.4f}"
    rows += [
        (f"liquidation {m.collateral_reserve} for {m.debt_reserve}", at),
        ("close factor", f"{m.close_factor:.0%}"),
        (f"debt repaid ({m.debt_reserve})", f"{m.debt_repaid:,.6g}"),
        (f"collateral seized ({m.collateral_reserve})", f"{m.collateral_seized:,.6g}"),
        ("of which bonus", f"{m.bonus:,.6g}"),
        ("protocol fee (treasury)", f"{m.protocol_fee:,.6g}"),
        ("to the liquidator", f"{m.to_liquidator:,.6g}"),
        ("health factor after", f"{m.health_after:.4f}"),
        ("liquidation call", status),
        ("deficit (debt burned)", _money(m.deficit_value)),
    ]
    return DefiReport(
        "Aave v3.3 account",
        rows,
        asdict(m),
        "Liquidation prices hold the other prices fixed; the call repays as much as the close "
        "factor allows (debtToCover = max).",
    )


def _maker(
    config: Any,
    collateral: dict[str, float],
    debt: dict[str, float],
    prices: dict[str, float],
    osm_price: float | None,
    horizon: Horizon,
) -> DefiReport:
    from deleverage.analytics.defi_position import maker_vault_metrics

    asset = config.asset
    if len(collateral) != 1 or next(iter(collateral)).upper() != asset.upper():
        raise ValidationError("--collateral", collateral, f"must be {asset}=INK (one entry)")
    if len(debt) != 1 or next(iter(debt)).upper() != "DAI":
        raise ValidationError("--debt", debt, "must be DAI=DEBT (one entry)")
    price = _one_price(prices, asset, None)
    m = maker_vault_metrics(
        config,
        ink=next(iter(collateral.values())),
        debt=next(iter(debt.values())),
        price=price,
        osm_price=osm_price,
        horizon=horizon,
    )
    hop = f"{m.osm_delay_s / 3600:g} h"
    rows = [
        (f"collateral ({asset})", f"{m.ink:,.6g}"),
        ("debt (DAI)", _money(m.debt)),
        ("liquidation price (debt x mat / ink)", _money(m.liquidation_price)),
        ("OSM price now (the Spotter's)", _money(m.osm_price)),
        (f"OSM price after the next poke (within {hop})", _money(m.osm_next)),
        ("collateralization at the OSM price", f"{m.ratio_osm:.2%}"),
        ("unsafe now / after the next poke", f"{m.unsafe_now} / {m.unsafe_next}"),
        ("bark: debt to the Vow (due)", _money(m.due)),
        ("tab (due x chop)", _money(m.tab)),
        ("liquidation penalty", _money(m.penalty)),
        (f"lot ({asset})", f"{m.lot:,.6g}"),
        ("keeper incentive (tip + chip x tab)", _money(m.keeper_incentive)),
        ("auction starting price (top)", _money(m.auction_top)),
        ("bark refused", m.refusal),
        (f"P(price reaches it within {horizon.hours:g} h)", f"{m.probability_market:.4f}"),
        (f"P(an OSM poke sees it within {horizon.hours:g} h)", f"{m.probability_osm:.4f}"),
    ]
    return DefiReport(
        f"Maker vault ({asset}, Liquidations 2.0)",
        rows,
        asdict(m),
        f"The OSM publishes the price its previous poke read: {hop} late; the bark figures are "
        "at the liquidation price.",
    )


def _perp_inputs(
    protocol: str, side: str | None, size: float | None, entry: float | None, mark: float | None
) -> tuple[str, float, float, float]:
    if side not in ("long", "short"):
        raise ValidationError("--side", side, f"must be 'long' or 'short' for {protocol}")
    absolute = _need("--size", size, protocol)
    entry_price = _need("--entry", entry, protocol)
    price = entry_price if mark is None else _need("--mark", mark, protocol)
    return side, absolute, entry_price, price


def _gmx(
    config: Any,
    side: str,
    size: float,
    entry: float,
    mark: float,
    collateral: dict[str, float],
    horizon: Horizon,
) -> DefiReport:
    from deleverage.analytics.defi_position import gmx_position_metrics

    if len(collateral) != 1:
        raise ValidationError(
            "--collateral", collateral, f"must be one entry: {config.asset}=AMOUNT or USD=AMOUNT"
        )
    token, amount = next(iter(collateral.items()))
    in_token = token.upper() == config.asset.upper()
    if not in_token and token.upper() not in ("USD", "USDC"):
        raise ValidationError("--collateral", token, f"must be {config.asset}, USD or USDC")
    m = gmx_position_metrics(
        config,
        side=side,
        size_tokens=size,
        entry_price=entry,
        collateral=amount,
        collateral_in_token=in_token,
        price=mark,
        horizon=horizon,
    )
    rows = [
        ("size (USD)", _money(m.size_usd)),
        ("collateral (USD at the price)", _money(m.collateral_usd)),
        ("leverage", f"{m.leverage:.2f}x"),
        ("PnL (worse oracle price)", _money(m.pnl_usd)),
        ("close fee", _money(m.close_fee_usd)),
        ("price impact at its cap", _money(-m.impact_cap_usd)),
        ("remaining collateral", _money(m.remaining_usd)),
        ("liquidation threshold", _money(m.threshold_usd)),
        ("liquidatable now", str(m.liquidatable)),
        ("liquidation price (fees, capped impact)", _money(m.liquidation_price)),
        ("liquidation price (fees, no impact)", _money(m.liquidation_price_no_impact)),
        ("distance to liquidation", _pct(m.distance)),
        (f"P(liquidated within {horizon.hours:g} h)", f"{m.probability:.4f}"),
    ]
    return DefiReport(
        f"GMX v2 {side} {size:g} {config.asset}",
        rows,
        asdict(m),
        "Remaining collateral = collateral + PnL - close fee - impact (negative impact counted "
        "up to its cap); no borrowing or funding accrued.",
    )


def _synthetix(
    config: Any, side: str, size: float, entry: float, mark: float, margin: float, horizon: Horizon
) -> DefiReport:
    from deleverage.analytics.defi_position import synthetix_position_metrics

    signed = size if side == "long" else -size
    m = synthetix_position_metrics(
        config, size=signed, entry_price=entry, margin=margin, price=mark, horizon=horizon
    )
    rows = [
        ("margin (USD)", _money(m.margin)),
        ("PnL", _money(m.pnl)),
        ("available margin", _money(m.available_margin)),
        ("initial margin ratio (skew-scaled)", f"{m.initial_margin_ratio:.4%}"),
        ("maintenance margin ratio", f"{m.maintenance_margin_ratio:.4%}"),
        ("initial margin", _money(m.initial_margin)),
        ("maintenance margin", _money(m.maintenance_margin)),
        ("flag reward (notional x ratio)", _money(m.flag_reward)),
        ("liquidation reward (keeper guards)", _money(m.liquidation_reward)),
        ("liquidation windows", f"{m.windows:g}"),
        ("liquidatable now", str(m.liquidatable)),
        ("liquidation price", _money(m.liquidation_price)),
        ("distance to liquidation", _pct(m.distance)),
        (f"P(liquidated within {horizon.hours:g} h)", f"{m.probability:.4f}"),
    ]
    return DefiReport(
        f"Synthetix perps v3 {side} {size:g} {m.asset}",
        rows,
        asdict(m),
        "Liquidatable when available margin < maintenance margin + liquidation reward; the "
        "liquidation price holds the reward at its value now.",
    )


def defi_position_report(
    protocol: str,
    *,
    horizon: Horizon,
    side: str | None = None,
    size: float | None = None,
    entry: float | None = None,
    margin: float | None = None,
    mark: float | None = None,
    collateral: list[str] | None = None,
    debt: list[str] | None = None,
    price: list[str] | None = None,
    osm_price: float | None = None,
    params: list[str] | None = None,
) -> DefiReport:
    """Value one position of ``protocol`` (see the module docstring); options a protocol does
    not use are refused, naming the option."""
    config = protocol_config(protocol, params)
    coll = parse_pairs("--collateral", collateral)
    owed = parse_pairs("--debt", debt)
    prices = parse_pairs("--price", price)
    if protocol in ("aave", "maker"):
        for option, value in (
            ("--side", side),
            ("--size", size),
            ("--entry", entry),
            ("--margin", margin),
            ("--mark", mark),
        ):
            _no(option, value, protocol)
        if protocol == "aave":
            _no("--osm-price", osm_price, protocol)
            return _aave(config, coll, owed, prices, horizon)
        return _maker(config, coll, owed, prices, osm_price, horizon)
    _no("--debt", owed, protocol)
    _no("--price", prices, protocol)
    _no("--osm-price", osm_price, protocol)
    side_, absolute, entry_price, now = _perp_inputs(protocol, side, size, entry, mark)
    if protocol == "gmx":
        _no("--margin", margin, protocol)
        return _gmx(config, side_, absolute, entry_price, now, coll, horizon)
    _no("--collateral", coll, protocol)
    return _synthetix(
        config, side_, absolute, entry_price, now, _need("--margin", margin, protocol), horizon
    )


def print_defi_position(protocol: str, horizon: Horizon, *, as_json: bool, **options: Any) -> None:
    """Print :func:`defi_position_report` as a rich table, or one JSON object."""
    import typer
    from rich.table import Table

    from deleverage.cli._output import console, json_safe

    report = defi_position_report(protocol, horizon=horizon, **options)
    if as_json:
        payload = {"protocol": protocol, **report.payload}
        typer.echo(json.dumps(json_safe(payload), allow_nan=False))
        return
    table = Table(title=report.title)
    table.add_column("metric")
    table.add_column("value", justify="right")
    for row in report.rows:
        table.add_row(*row)
    out = console()
    out.print(table)
    out.print(
        f"{report.note} GBM, volatility {horizon.volatility:g}, drift {horizon.drift:g} "
        "(annualized, 365-day year)."
    )


def defi_levels(
    protocol: str,
    *,
    accounts: int,
    seed: int,
    mark: float | None,
    params: list[str] | None,
    unused: Mapping[str, object] | None = None,
) -> tuple[pd.DataFrame, float, str]:
    """The liquidation levels of a protocol's population: ``accounts`` drawn by its generator
    with ``seed`` at ``mark`` (default :data:`DEFAULT_PRICE`), the venue built over them, and
    :meth:`~deleverage.venues.protocol.Venue.liquidation_levels` with a ``side`` column
    (``+1`` where the position is liquidated as the price falls: positive size). Returns the
    frame, the mark and a label. ``unused``: options (name to value) that must not be given
    with ``--protocol``."""
    refuse_options(unused or {}, "is not used with --protocol")
    if isinstance(accounts, bool) or not 1 <= accounts <= 1_000_000:
        raise ValidationError("--accounts", accounts, "must be an integer in [1, 1000000]")
    if seed < 0:
        raise ValidationError("--seed", seed, "must be >= 0")
    price = DEFAULT_PRICE if mark is None else mark
    if not (math.isfinite(price) and price > 0.0):
        raise ValidationError("--mark", price, "must be a finite number > 0")
    config: Any = protocol_config(protocol, params)
    if protocol == "aave":
        from deleverage.protocols.aave import aave_population, build_aave

        prices = dict.fromkeys(config.assets, price)
        population = aave_population(config, accounts, seed=seed, prices=prices)
        venue: Any = build_aave(config, population, prices=prices, seed=seed)
    elif protocol == "maker":
        from deleverage.protocols.maker.config import MakerPopulationSpec
        from deleverage.protocols.maker.venue import build_maker

        book = MakerPopulationSpec(n_vaults=accounts).draw(config, seed=seed, price=price)
        venue = build_maker(config, book)
    elif protocol == "gmx":
        from deleverage.protocols.gmx.venue import build_gmx

        config = config.model_copy(
            update={"population": config.population.model_copy(update={"positions": accounts})}
        )
        venue = build_gmx(config, prices={config.asset: price}, seed=seed)
    else:
        from deleverage.protocols.synthetix.venue import build_synthetix

        config = config.model_copy(
            update={"population": config.population.model_copy(update={"accounts": accounts})}
        )
        venue = build_synthetix(config, prices=dict.fromkeys(config.assets, price), seed=seed)
    label = f"{protocol} population ({accounts:,} accounts, seed {seed})"
    return venue_levels(venue), price, label


def venue_levels(venue: Venue) -> pd.DataFrame:
    """``venue.liquidation_levels()`` with a ``side`` column: ``+1`` where the size is
    positive (liquidated as the price falls: collateral, a long), ``-1`` where it is negative
    (liquidated as it rises: a debt, a short)."""
    import numpy as np

    frame = venue.liquidation_levels().reset_index(drop=True)
    frame["side"] = np.where(frame["size"].to_numpy(dtype=np.float64) >= 0.0, 1.0, -1.0)
    return frame
