"""The built-in demo: a handful of traders through the real BTC crash of 2025-10-10.

Opens a Binance-like BTCUSDT market (the ``binance`` preset's tiers), a constant-depth book,
an insurance fund with a staker, and eight traders from 5x to 100x, long and short, isolated
and cross; then replays the bundled one-minute closes of 2025-10-10 19:13-23:34 UTC through
the engine. Every mark runs the risk step, so the table at the end shows who was liquidated,
who was deleveraged, what the fund paid, and that money still adds up.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from deleverage.engine.exchange import Exchange
from deleverage.engine.risk import StepReport
from deleverage.liquidity import ConstantDepthBook
from deleverage.prices import bundled_crash
from deleverage.spec import MarginMode, MarketSpec
from deleverage.venues import preset

CRASH = "btcusdt-1m-2025-10-10"

#: (name, side, leverage, collateral USDT, margin mode) of the demo's traders.
TRADERS: tuple[tuple[str, int, float, float, MarginMode], ...] = (
    ("degen-long-100x", +1, 100.0, 2_000.0, MarginMode.ISOLATED),
    ("long-50x", +1, 50.0, 5_000.0, MarginMode.ISOLATED),
    ("long-20x-cross", +1, 20.0, 10_000.0, MarginMode.CROSS),
    ("long-10x", +1, 10.0, 20_000.0, MarginMode.ISOLATED),
    ("long-5x-cross", +1, 5.0, 40_000.0, MarginMode.CROSS),
    ("short-25x", -1, 25.0, 8_000.0, MarginMode.ISOLATED),
    ("short-10x-cross", -1, 10.0, 20_000.0, MarginMode.CROSS),
    ("short-3x", -1, 3.0, 60_000.0, MarginMode.ISOLATED),
)


@dataclass
class DemoResult:
    """What the demo produced: the engine, its steps and the tables to show."""

    exchange: Exchange
    names: dict[int, str]
    before: pd.DataFrame
    after: pd.DataFrame
    reports: list[StepReport] = field(default_factory=list)
    start_price: float = 0.0
    low_price: float = 0.0
    end_price: float = 0.0


def demo_market() -> MarketSpec:
    """The demo's market: Binance-preset tiers, ADL by PnL x leverage at bankruptcy price."""
    base = preset("binance", "BTC")
    data = base.model_dump()
    data["adl"] = {"ranking": "pnl_leverage", "price": "bankruptcy"}
    data["liquidation"] = {**data["liquidation"], "margin_call_ratio": 0.7}
    return MarketSpec.from_mapping(data)


def run_demo() -> DemoResult:
    """Run the demo and return the engine and its tables (prints nothing)."""
    bars = bundled_crash(CRASH).frame
    closes = bars["close"].to_numpy(dtype=np.float64)
    times = bars["ts_ns"].to_numpy(dtype=np.int64)
    ex = Exchange(check_invariants=True, insurance_protocol_share=0.5)
    spec = demo_market()
    ex.list_market(spec, ts_ns=int(times[0]))
    ex.set_liquidity(
        0, ConstantDepthBook(depth_per_pct=3.0, half_life_s=120.0, ts_ns=int(times[0]))
    )
    ex.set_mark(0, float(closes[0]), ts_ns=int(times[0]))
    names: dict[int, str] = {}
    staker = ex.open_account(label="staker")
    names[staker] = "insurance-staker"
    ex.deposit(staker, 1_000.0)
    ex.stake(staker, 1_000.0)
    maker = ex.open_account(label="market-maker")
    names[maker] = "market-maker"
    ex.deposit(maker, 5_000_000.0)
    price = float(np.round(closes[0], 1))
    for name, side, leverage, collateral, mode in TRADERS:
        a = ex.open_account(label=name, margin_mode=mode)
        names[a] = name
        ex.deposit(a, collateral)
        ex.set_leverage(a, 0, min(leverage, spec.max_leverage))
        size = np.floor(collateral * leverage * 0.95 / price * 1000) / 1000
        buyer, seller = (a, maker) if side > 0 else (maker, a)
        ex.trade(0, buyer=buyer, seller=seller, size=float(size), price=price, taker=None)
    before = _named(ex.margin_table(), names)
    reports = []
    for ts, close in zip(times[1:], closes[1:], strict=True):
        ex.set_mark(0, float(close), ts_ns=int(ts))
        reports.append(ex.last_step)
    after = _named(ex.margin_table(), names)
    return DemoResult(
        exchange=ex, names=names, before=before, after=after, reports=reports,
        start_price=float(closes[0]), low_price=float(closes.min()), end_price=float(closes[-1]),
    )  # fmt: skip


def _named(table: pd.DataFrame, names: dict[int, str]) -> pd.DataFrame:
    out = table.copy()
    out.insert(0, "trader", [names.get(int(a), str(a)) for a in out["account"]])
    return out


def event_log(result: DemoResult) -> pd.DataFrame:
    """Liquidations, ADL rounds, margin calls and bad debt of the demo, in order."""
    frame = result.exchange.journal.to_frame()
    keep = frame["kind_name"].isin(["LIQUIDATION", "ADL_ROUND", "MARGIN_CALL", "BAD_DEBT"])
    log = frame.loc[keep, ["ts_ns", "kind_name", "account", "size", "price", "amount", "fee"]]
    log = log.copy()
    log["time"] = pd.to_datetime(log["ts_ns"], unit="ns").dt.strftime("%H:%M")
    log["trader"] = [result.names.get(int(a), str(a)) for a in log["account"]]
    return log
