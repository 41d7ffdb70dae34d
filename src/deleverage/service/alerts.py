"""What the risk service tells clients: notifications derived from the engine's events.

After every request that changed the engine, :meth:`Alerts.derive` reads the new journal rows
and the state they left, and returns the notifications, in this order:

1. the engine's notices, in journal order: ``margin_call`` (the market's own call level,
   :class:`~deleverage.engine.events.MarginCall`), ``liquidation``
   (:class:`~deleverage.engine.events.Liquidation`), ``adl_fill`` (each trader side of an ADL fill,
   the deleveraged counterparty included), ``adl_round`` (to the bankrupt account),
   ``bad_debt`` and ``circuit_breaker`` (market-wide);
2. ``margin_warning``: a position's margin ratio (maintenance / equity, 1 = liquidation) rose
   through one of the configured levels since the last check; once per level and episode (the
   ratio must fall back below a level before that level warns again). Checked after the risk
   step, so a position liquidated in the same step gets its ``liquidation`` instead;
3. ``adl_indicator``: an account's ADL indicator (1-5 lights, 0 = no position) in a market
   changed (:meth:`deleverage.engine.exchange.Exchange.adl_queue`);
4. ``insurance_drawdown`` (market-wide): the fund backing a market started or stopped
   meeting Bybit's drawdown rule (loss over the last 8 hours at least the alert share of the
   fund, :meth:`deleverage.engine.insurance_fund.InsuranceFund.drawdown_alert`);
   ``data.active`` says which;
5. ``prediction_alert``: an account's predicted probability of liquidation within the horizon
   it chose rose through the level it chose (``PUT /v1/accounts/{id}/prediction-alert``);
   once per crossing (it must fall back below the level to alert again). The prediction is
   the analytic baseline of ``deleverage.predict``: the GBM first-passage probability of the
   position's liquidation price at zero drift and the realized volatility of the marks the
   service saw in the last :data:`PREDICTION_WINDOW_S` seconds (the service's
   ``default_volatility`` until three marks are in the window; formulas §18.2).

The warning levels, indicators and alert states are kept per market in arrays over accounts;
:meth:`Alerts.prime` sets them from the current state without notifying (at start-up).
"""

from __future__ import annotations

import math
from collections import deque
from typing import Any, Final

import numpy as np
import numpy.typing as npt
import pyarrow as pa

from deleverage.engine.events import EventKind, FillReason, rows_of_kind
from deleverage.engine.exchange import Exchange
from deleverage.engine.state import AccountKind
from deleverage.rules import margin as mm
from deleverage.rules.dynamic import realized_volatility
from deleverage.service import views
from deleverage.spec import MarginMode

__all__ = ["Alerts"]

_NOTICES = (
    EventKind.MARGIN_CALL,
    EventKind.LIQUIDATION,
    EventKind.ADL_ROUND,
    EventKind.BAD_DEBT,
    EventKind.CIRCUIT_BREAKER,
    EventKind.FILL,
)
_MOVERS = (EventKind.MARK_PRICE, EventKind.FILL, EventKind.FUNDING, EventKind.MARGIN_MOVED)
_CASH = (EventKind.DEPOSIT, EventKind.WITHDRAWAL)  # change cross leverage: every market
#: Seconds of marks behind the realized volatility of prediction alerts.
PREDICTION_WINDOW_S: Final = 3600.0


def _finite(value: float) -> float | None:
    return value if math.isfinite(value) else None


def position_ratios(ex: Exchange, market: int) -> tuple[npt.NDArray[np.int64], npt.NDArray[Any]]:
    """Trader accounts with a position in ``market`` and their margin ratios (MM / equity).

    An isolated position's ratio is its own (isolated margin + unrealized PnL against its
    maintenance margin), a cross position's the account's cross ratio; ``inf`` where equity is
    not positive.
    """
    n = ex.n_accounts
    cols = ex.columns(market)
    kind = ex.state_arrays()["kind"]
    idx = np.flatnonzero((cols.size[:n] != 0.0) & (kind == AccountKind.TRADER))
    if len(idx) == 0:
        return idx.astype(np.int64), np.zeros(0)
    value = ex.valuation(market)
    iso_ratio = mm.margin_ratio(
        cols.isolated_margin[idx] + value["upnl"][idx], value["maintenance"][idx]
    )
    cross_ratio = ex.cached_margin_state()["cross_margin_ratio"][idx]
    ratio = np.where(cols.mode[idx] == MarginMode.ISOLATED, iso_ratio, cross_ratio)
    return idx.astype(np.int64), ratio


class Alerts:
    """Derives notifications from new journal rows; keeps the per-market alert state.

    Parameters
    ----------
    exchange
        The engine whose events are read.
    levels
        Margin-ratio warning levels, ascending fractions in (0, 1].
    default_volatility
        Annualized volatility of prediction alerts until enough marks were seen.
    """

    def __init__(
        self, exchange: Exchange, levels: tuple[float, ...], *, default_volatility: float = 0.8
    ) -> None:
        self.ex = exchange
        self.default_volatility = default_volatility
        #: (market id, account) -> (level, horizon_s) of each prediction alert.
        self.predictions: dict[tuple[int, int], tuple[float, float]] = {}
        self._predicted_above: set[tuple[int, int]] = set()
        self._marks: dict[int, deque[tuple[int, float]]] = {}
        self.levels = np.asarray(sorted(levels), dtype=np.float64)
        self._level: dict[int, npt.NDArray[np.int8]] = {}
        self._indicator: dict[int, npt.NDArray[np.int8]] = {}
        self._drawdown: dict[int, bool] = {}
        self._ranks: dict[int, tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]] = {}

    def prime(self) -> None:
        """Take the current state as known: later changes notify, the present does not."""
        self._level.clear()
        self._indicator.clear()
        self._ranks.clear()
        self._drawdown.clear()
        now = self.ex.clock_ns
        for m in range(len(self.ex.markets)):
            self._margin_warnings(m, None)
            self._indicators(m, None)
            self._insurance(m, now, None)
            self._predictions(m, now, None)

    def derive(self, rows: pa.Table, ts_ns: int) -> list[dict[str, Any]]:
        """The notifications for a request's new journal rows (without ``seq``)."""
        out: list[dict[str, Any]] = []
        if rows.num_rows == 0:
            return out
        self._notices(rows, out)
        kinds = np.asarray(rows["kind"])
        markets = np.asarray(rows["market"])
        if np.isin(kinds, [int(k) for k in _CASH]).any():
            moved = list(range(len(self.ex.markets)))
        else:
            movers = markets[np.isin(kinds, [int(k) for k in _MOVERS])]
            moved = sorted({int(m) for m in movers if m >= 0})
        for m in moved:
            self._margin_warnings(m, out)
        for m in moved:
            self._indicators(m, out)
        marks = sorted({int(m) for m in markets[kinds == int(EventKind.MARK_PRICE)]})
        for m in marks:
            self._insurance(m, ts_ns, out)
        self._record_marks(rows)
        for m in moved:
            self._predictions(m, ts_ns, out)
        return out

    # ------------------------------------------------------------------ prediction alerts
    def set_prediction_alert(
        self, market: int, account: int, *, level: float, horizon_s: float
    ) -> float:
        """Watch an account's predicted probability in a market; return the probability now
        (taken as known: only a later rise through the level alerts)."""
        self.predictions[(market, account)] = (level, horizon_s)
        p = self.predicted_probability(market, account, horizon_s, self.ex.clock_ns)
        if p >= level:
            self._predicted_above.add((market, account))
        else:
            self._predicted_above.discard((market, account))
        return p

    def remove_prediction_alert(self, market: int, account: int) -> None:
        """Stop watching an account in a market."""
        self.predictions.pop((market, account), None)
        self._predicted_above.discard((market, account))

    def volatility(self, market: int, ts_ns: int) -> float:
        """Annualized realized volatility of the market's recent marks (or the default)."""
        marks = self._marks.get(market, ())
        sigma = realized_volatility(list(marks), ts_ns=ts_ns, window_s=PREDICTION_WINDOW_S)
        return self.default_volatility if sigma is None or sigma <= 0 else sigma

    def predicted_probability(self, market: int, account: int, horizon_s: float, ts: int) -> float:
        """The analytic baseline: P(mark reaches the position's liquidation price within H)."""
        ex = self.ex
        size = float(ex.columns(market).size[account]) if account < ex.n_accounts else 0.0
        mark = ex.markets[market].mark
        if size == 0.0 or mark <= 0.0:
            return 0.0
        liq, _ = views.liquidation_prices(ex, market, np.asarray([account], dtype=np.int64))
        p = views.liquidation_probability(
            mark, float(liq[0]), 1 if size > 0 else -1,
            volatility=self.volatility(market, ts), drift=0.0, horizon_s=horizon_s,
        )  # fmt: skip
        return p if math.isfinite(p) else 0.0

    def _record_marks(self, rows: pa.Table) -> None:
        table = rows_of_kind(rows, (EventKind.MARK_PRICE,))
        if table.num_rows == 0:
            return
        window_ns = int(PREDICTION_WINDOW_S * 1e9)
        for m, ts, price in zip(
            table["market"].to_pylist(),
            table["ts_ns"].to_pylist(),
            table["price"].to_pylist(),
            strict=True,
        ):
            marks = self._marks.setdefault(int(m), deque())
            marks.append((int(ts), float(price)))
            while marks and marks[0][0] < int(ts) - window_ns:
                marks.popleft()

    def _predictions(self, m: int, ts: int, out: list[dict[str, Any]] | None) -> None:
        for (market, account), (level, horizon_s) in sorted(self.predictions.items()):
            if market != m:
                continue
            p = self.predicted_probability(m, account, horizon_s, ts)
            key = (m, account)
            if p < level:
                self._predicted_above.discard(key)
                continue
            if key in self._predicted_above:
                continue
            self._predicted_above.add(key)
            if out is not None:
                data = {
                    "probability": p, "level": level, "horizon_s": horizon_s,
                    "volatility": self.volatility(m, ts), "model": "first_passage_baseline",
                }  # fmt: skip
                out.append(self._note("prediction_alert", ts, account, m, data))

    # ------------------------------------------------------------------ engine notices
    def _symbol(self, market: int) -> str | None:
        return self.ex.markets[market].spec.symbol if market >= 0 else None

    def _note(
        self, kind: str, ts: int, account: int | None, market: int, data: dict[str, Any]
    ) -> dict[str, Any]:
        return {
            "seq": 0,  # set when committed
            "ts_ns": int(ts),
            "kind": kind,
            "account": account,
            "market": self._symbol(market),
            "data": data,
        }

    def _notices(self, rows: pa.Table, out: list[dict[str, Any]]) -> None:
        table = rows_of_kind(rows, _NOTICES)
        if table.num_rows == 0:
            return
        kinds = np.asarray(table["kind"])
        codes = np.asarray(table["code"])
        keep = (kinds != int(EventKind.FILL)) | (codes == int(FillReason.ADL))
        trader = self.ex.state_arrays()["kind"] == AccountKind.TRADER
        for row in table.filter(pa.array(keep)).to_pylist():
            kind, ts, m, a = EventKind(row["kind"]), row["ts_ns"], row["market"], row["account"]
            if kind is EventKind.MARGIN_CALL:
                out.append(self._note("margin_call", ts, a, m, {"ratio": _finite(row["amount"])}))
            elif kind is EventKind.LIQUIDATION:
                data = {
                    "size": row["size"],
                    "price": row["price"],
                    "shortfall": row["amount"],
                    "penalty": row["fee"],
                    "bankruptcy_price": row["counterparty_fee"],
                    "policy": row["code"],
                    "event_seq": row["seq"],
                }
                out.append(self._note("liquidation", ts, a, m, data))
            elif kind is EventKind.ADL_ROUND:
                data = {"size": row["size"], "price": row["price"], "loss_covered": row["amount"]}
                out.append(self._note("adl_round", ts, a, m, data))
            elif kind is EventKind.BAD_DEBT:
                out.append(self._note("bad_debt", ts, a, m, {"amount": row["amount"]}))
            elif kind is EventKind.CIRCUIT_BREAKER:
                data = {"halted": bool(row["code"]), "move": row["amount"]}
                out.append(self._note("circuit_breaker", ts, None, m, data))
            else:  # an ADL fill: both trader sides learn their position changed
                for account, sign in ((a, 1.0), (row["counterparty"], -1.0)):
                    if 0 <= account < len(trader) and trader[account]:
                        data = {"size": sign * row["size"], "price": row["price"]}
                        out.append(self._note("adl_fill", ts, account, m, data))

    # ------------------------------------------------------------------ derived states
    def _grown(self, store: dict[int, npt.NDArray[np.int8]], m: int) -> npt.NDArray[np.int8]:
        n = self.ex.n_accounts
        arr = store.get(m)
        if arr is None or len(arr) < n:
            new = np.zeros(max(n, 16) if arr is None else max(n, 2 * len(arr)), dtype=np.int8)
            if arr is not None:
                new[: len(arr)] = arr
            store[m] = arr = new
        return arr

    def _margin_warnings(self, m: int, out: list[dict[str, Any]] | None) -> None:
        prev = self._grown(self._level, m)
        idx, ratio = position_ratios(self.ex, m)
        level = np.searchsorted(self.levels, ratio, side="right").astype(np.int8)
        if out is not None:
            fresh = np.flatnonzero(level > prev[idx])
            mark = self.ex.markets[m].mark
            ts = self.ex.clock_ns
            for k in fresh.tolist():
                data = {
                    "level": float(self.levels[level[k] - 1]),
                    "ratio": _finite(float(ratio[k])),
                    "mark_price": mark,
                }
                out.append(self._note("margin_warning", ts, int(idx[k]), m, data))
        prev[:] = 0
        prev[idx] = level

    def _indicators(self, m: int, out: list[dict[str, Any]] | None) -> None:
        prev = self._grown(self._indicator, m)
        new = np.zeros_like(prev)
        ranks = np.zeros(len(prev), dtype=np.int64)
        lengths = np.zeros(len(prev), dtype=np.int64)
        for side in (1, -1):
            queue = self.ex.adl_queue(m, side)
            accounts = queue["account"].to_numpy(dtype=np.int64)
            new[accounts] = queue["indicator"].to_numpy(dtype=np.int8)
            ranks[accounts] = queue["rank"].to_numpy(dtype=np.int64)
            lengths[accounts] = len(accounts)
        self._ranks[m] = (ranks, lengths)
        if out is not None:
            ts = self.ex.clock_ns
            for a in np.flatnonzero(new != prev).tolist():
                data = {
                    "indicator": int(new[a]),
                    "previous": int(prev[a]),
                    "rank": int(ranks[a]),
                    "queue_length": int(lengths[a]),
                }
                out.append(self._note("adl_indicator", ts, a, m, data))
        prev[:] = new

    def adl_position(self, market: int, account: int) -> dict[str, int | None]:
        """An account's place in its side's ADL queue as of the last write (0 lights: none).

        ``rank`` 1 is deleveraged first; ``queue_length`` counts that side's positions.
        """
        ranks, lengths = self._ranks.get(market, (np.zeros(0, np.int64), np.zeros(0, np.int64)))
        indicator = self._indicator.get(market, np.zeros(0, dtype=np.int8))
        if account >= len(ranks) or ranks[account] == 0:
            return {"rank": None, "indicator": 0, "queue_length": 0}
        return {
            "rank": int(ranks[account]),
            "indicator": int(indicator[account]),
            "queue_length": int(lengths[account]),
        }

    def _insurance(self, m: int, ts: int, out: list[dict[str, Any]] | None) -> None:
        fund_account = self.ex.insurance_account_for(m)
        fund = self.ex.insurance_fund(m)
        active = fund.drawdown_alert(ts) if ts > 0 else False
        before = self._drawdown.get(fund_account, False)
        self._drawdown[fund_account] = active
        if out is not None and active != before:
            loss, fraction = fund.drawdown_over_window(ts)
            data = {
                "active": active,
                "loss": loss,
                "fraction": fraction,
                "balance": fund.balance,
                "window_s": fund.drawdown_window_s,
                "alert_fraction": fund.drawdown_alert_fraction,
            }
            out.append(self._note("insurance_drawdown", ts, None, m, data))
