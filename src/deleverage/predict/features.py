"""Features a venue can see, recorded per account and step while a simulation runs.

A :class:`FeatureRecorder` is a :data:`~deleverage.sim.runner.StepObserver`: the runner calls it
after every step of every market, when the engine holds the state at the end of that step and
nothing later. Every ``sample_every_s`` seconds (after a warm-up of one volatility window) it
writes one row per open trader position (:data:`ACCOUNT_FEATURES`) and one row per market
(:data:`MARKET_FEATURES`). So a feature at step ``t`` is built only from the engine's state at
``t`` and the recorder's own history of earlier steps: leakage-free by construction, and checked
by a test that truncates the run at ``t`` and finds the same row.

Units: prices in quote per base, notionals in quote, times in seconds, volatility annualized
over a 365-day year (:func:`deleverage.rules.dynamic.realized_volatility`). The distance to
liquidation in units of recent volatility is

    distance_sigma = side x ln(mark / L) / (sigma_realized x sqrt(H / year))

(docs/formulas.md, "Predictive liquidation"), where ``L`` is the position's liquidation price
(:meth:`~deleverage.engine.exchange.Exchange.liquidation_prices`) and ``H`` the label horizon;
the analytic baseline's probability is the discretely monitored first-passage probability of
``L`` within ``H`` at that volatility and zero drift
(:func:`~deleverage.analytics.first_passage.discrete_hit_probability`).
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final

import numpy as np
import numpy.typing as npt
import pandas as pd

from deleverage import portable_math as pm
from deleverage.analytics.first_passage import discrete_hit_probability
from deleverage.engine.state import AccountKind
from deleverage.errors import ValidationError
from deleverage.rules import margin as mm
from deleverage.rules.dynamic import realized_volatility
from deleverage.spec import MarginMode

if TYPE_CHECKING:
    from deleverage.sim.runner import Simulation

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]

_NS: Final = 1_000_000_000
#: Cap of the distance features for positions that cannot be liquidated (no liquidation price).
MAX_DISTANCE: Final = 50.0
#: Floor of the realized volatility (annualized) so distances stay finite on a flat mark.
MIN_VOLATILITY: Final = 1e-4

#: Columns that identify a row (not model inputs).
KEY_COLUMNS: Final = ("seed", "step", "t_s", "ts_ns", "market", "account")

#: Model inputs of an account row: name -> (unit, what it is). Order is the model's column order.
ACCOUNT_FEATURES: Final[dict[str, tuple[str, str]]] = {
    "side": ("+1/-1", "long (+1) or short (-1)"),
    "distance_sigma": ("sigma sqrt(H)", "side ln(mark / L) over realized volatility x sqrt(H)"),
    "log_distance": ("log", "side ln(mark / L), the log distance to the liquidation price"),
    "leverage": ("x", "position notional over the equity backing it"),
    "margin_ratio": ("1", "maintenance over equity (1 = liquidatable)"),
    "tier": ("index", "margin tier of the position's notional (0 = first)"),
    "position_age_s": ("s", "seconds since the position was opened (or flipped side)"),
    "notional": ("quote", "|size| x mark"),
    "liquidation_density": ("1", "share of open notional whose |log distance| <= sigma sqrt(H)"),
    "open_interest_notional": ("quote", "traders' long size x mark"),
    "open_interest_change": ("1", "relative change of open interest over the window"),
    "funding_rate": ("1 per interval", "last funding rate settled"),
    "realized_volatility": ("1/sqrt(year)", "annualized volatility of the marks in the window"),
    "depth_multiplier": ("1", "book depth over its base depth"),
    "liquidation_intensity": ("1", "notional liquidated in the window over open interest"),
    "adl_rank_pct": ("1", "ADL queue rank on its side over the queue length (0 = first)"),
    "first_passage_probability": ("1", "analytic baseline: P(mark reaches L within H)"),
}
#: Account features that are the market's value at the sample, repeated on every row.
_MARKET_WIDE: Final = (
    "open_interest_notional", "open_interest_change", "funding_rate", "realized_volatility",
    "depth_multiplier", "liquidation_intensity",
)  # fmt: skip
#: Model inputs of a market row.
MARKET_FEATURES: Final[dict[str, tuple[str, str]]] = {
    "liquidation_density": ACCOUNT_FEATURES["liquidation_density"],
    "open_interest_notional": ACCOUNT_FEATURES["open_interest_notional"],
    "open_interest_change": ACCOUNT_FEATURES["open_interest_change"],
    "funding_rate": ACCOUNT_FEATURES["funding_rate"],
    "realized_volatility": ACCOUNT_FEATURES["realized_volatility"],
    "depth_multiplier": ACCOUNT_FEATURES["depth_multiplier"],
    "liquidation_intensity": ACCOUNT_FEATURES["liquidation_intensity"],
    "mean_leverage": ("x", "notional-weighted mean leverage of open positions"),
    "share_near_call": ("1", "share of open notional with margin ratio >= 0.5"),
    "expected_liquidated_share": (
        "1",
        "sum of first-passage probabilities x notional over open notional",
    ),
    "cascade_first_passage": (
        "1",
        "analytic cascade baseline: P(mark reaches the level where cascade_level of open "
        "notional is liquidatable, within H), the larger side",
    ),
}


@dataclass(frozen=True, slots=True, kw_only=True)
class FeatureConfig:
    """What a :class:`FeatureRecorder` records.

    Parameters
    ----------
    horizon_s
        Label horizon ``H`` in seconds (also the scale of ``distance_sigma``).
    window_s
        Seconds of history for the realized volatility, open-interest change and liquidation
        intensity; sampling starts once one window has passed.
    sample_every_s
        Seconds between two samples.
    cascade_level
        Share of open notional whose liquidation makes a market cascade (the market label and
        ``cascade_first_passage``).
    """

    horizon_s: float = 300.0
    window_s: float = 300.0
    sample_every_s: float = 30.0
    cascade_level: float = 0.01

    def __post_init__(self) -> None:
        for name in ("horizon_s", "window_s", "sample_every_s"):
            value = getattr(self, name)
            if not (isinstance(value, int | float) and math.isfinite(value) and value > 0):
                raise ValidationError(name, value, "must be a finite number > 0 (seconds)")
        level = self.cascade_level
        if not (isinstance(level, int | float) and 0 < level < 1):
            raise ValidationError("cascade_level", level, "must be a share in (0, 1)")


@dataclass(slots=True)
class _MarketHistory:
    marks: deque[tuple[int, float]]
    open_interest: deque[tuple[int, float]]
    liquidated: deque[tuple[int, float]]
    opened_ns: FloatArray
    last_sign: FloatArray


class FeatureRecorder:
    """Record :data:`ACCOUNT_FEATURES` and :data:`MARKET_FEATURES` during a run.

    Pass the recorder as the runner's ``observer`` (``sim.run(observer=recorder)``), then read
    :meth:`account_frame` and :meth:`market_frame`. ``seed`` is written into every row (the
    scenario's seed: the key of splits by seed).
    """

    def __init__(self, sim: Simulation, config: FeatureConfig, *, seed: int) -> None:
        self.sim = sim
        self.config = config
        self.seed = seed
        self._dt_s = sim.scenario.dt_s
        self._every = max(1, round(config.sample_every_s / self._dt_s))
        self._warmup = max(2, math.ceil(config.window_s / self._dt_s))
        self._history: dict[int, _MarketHistory] = {}
        self._accounts: list[dict[str, npt.NDArray[np.generic]]] = []
        self._markets: list[dict[str, float | int | str]] = []
        #: The latest sample: market, accounts, their feature columns, the market row.
        self.last_sample: (
            tuple[int, IntArray, dict[str, FloatArray], dict[str, float | int | str]] | None
        ) = None

    def __call__(self, k: int, m: int, record: dict[str, float]) -> None:
        ts = int(record["ts_ns"])
        hist = self._market_history(m)
        window_ns = int(self.config.window_s * _NS)
        hist.marks.append((ts, record["mark"]))
        hist.open_interest.append((ts, record["open_interest"] * record["mark"]))
        hist.liquidated.append((ts, record["liquidated_notional"]))
        for series in (hist.marks, hist.open_interest, hist.liquidated):
            while series and series[0][0] < ts - window_ns:
                series.popleft()
        self._track_age(m, ts, hist)
        if k >= self._warmup and k % self._every == 0:
            self._sample(k, m, ts, record, hist)

    # ---------------------------------------------------------------- history
    def _market_history(self, m: int) -> _MarketHistory:
        hist = self._history.get(m)
        if hist is None:
            hist = _MarketHistory(deque(), deque(), deque(), np.zeros(0), np.zeros(0))
            self._history[m] = hist
        return hist

    def _track_age(self, m: int, ts: int, hist: _MarketHistory) -> None:
        ex = self.sim.ex
        sign = np.sign(ex.columns(m).size[: ex.n_accounts])
        if len(hist.last_sign) < len(sign):
            grow = len(sign) - len(hist.last_sign)
            hist.last_sign = np.concatenate([hist.last_sign, np.zeros(grow)])
            hist.opened_ns = np.concatenate([hist.opened_ns, np.full(grow, float(ts))])
        changed = sign != hist.last_sign
        hist.opened_ns[changed] = float(ts)
        hist.last_sign = sign

    # ---------------------------------------------------------------- one sample
    def _sample(
        self, k: int, m: int, ts: int, record: dict[str, float], hist: _MarketHistory
    ) -> None:
        ex = self.sim.ex
        cfg = self.config
        mark = float(record["mark"])
        vol = realized_volatility(list(hist.marks), ts_ns=ts, window_s=cfg.window_s)
        sigma = max(vol if vol is not None else 0.0, MIN_VOLATILITY)
        scale = sigma * math.sqrt(cfg.horizon_s / (365 * 24 * 3600))
        oi_now = hist.open_interest[-1][1]
        oi_then = hist.open_interest[0][1]
        oi_change = oi_now / oi_then - 1.0 if oi_then > 0 else 0.0
        window_liq = float(sum(v for _, v in hist.liquidated))
        intensity = window_liq / oi_now if oi_now > 0 else 0.0
        market_row: dict[str, float | int | str] = {
            "seed": self.seed, "step": k, "t_s": k * self._dt_s, "ts_ns": ts,
            "market": ex.markets[m].spec.symbol,
            "open_interest_notional": oi_now, "open_interest_change": oi_change,
            "funding_rate": float(self.sim.last_funding_rate[m]), "realized_volatility": sigma,
            "depth_multiplier": float(record["depth_multiplier"]),
            "liquidation_intensity": intensity,
        }  # fmt: skip
        n = ex.n_accounts
        cols = ex.columns(m)
        size = cols.size[:n]
        traders = np.asarray(ex.state_arrays()["kind"] == AccountKind.TRADER)
        accounts = np.flatnonzero(traders & (size != 0.0)).astype(np.int64)
        rows = self._account_rows(m, accounts, mark, scale, sigma, ts, hist)
        notional = rows["notional"]
        total = float(notional.sum())
        density = (
            float(notional[np.abs(rows["log_distance"]) <= scale].sum()) / total if total else 0.0
        )
        rows["liquidation_density"] = np.full(len(accounts), density)
        for name in _MARKET_WIDE:
            rows[name] = np.full(len(accounts), float(market_row[name]))
        keys: dict[str, npt.NDArray[np.generic]] = {
            "seed": np.full(len(accounts), self.seed, dtype=np.int64),
            "step": np.full(len(accounts), k, dtype=np.int64),
            "t_s": np.full(len(accounts), k * self._dt_s),
            "ts_ns": np.full(len(accounts), ts, dtype=np.int64),
            "market": np.full(len(accounts), ex.markets[m].spec.symbol, dtype=object),
            "account": accounts,
        }
        self._accounts.append({**keys, **{name: rows[name] for name in ACCOUNT_FEATURES}})
        lev = rows["leverage"]
        market_row["liquidation_density"] = density
        market_row["mean_leverage"] = float(np.sum(lev * notional) / total) if total else 0.0
        near = rows["margin_ratio"] >= 0.5
        market_row["share_near_call"] = float(notional[near].sum() / total) if total else 0.0
        p = rows["first_passage_probability"]
        market_row["expected_liquidated_share"] = (
            float(np.sum(p * notional) / total) if total else 0.0
        )
        market_row["cascade_first_passage"] = self._cascade_probability(
            mark, sigma, rows["side"], rows["log_distance"], notional, total
        )
        self._markets.append(market_row)
        self.last_sample = (m, accounts, rows, market_row)

    def _cascade_probability(
        self,
        mark: float,
        sigma: float,
        side: FloatArray,
        log_distance: FloatArray,
        notional: FloatArray,
        total: float,
    ) -> float:
        """The larger side's probability of reaching the price at which positions worth
        ``cascade_level`` of the open notional are liquidatable (docs/formulas.md)."""
        if total <= 0:
            return 0.0
        need = self.config.cascade_level * total
        best = 0.0
        for s in (1.0, -1.0):
            mine = side == s
            order = np.argsort(log_distance[mine], kind="stable")  # nearest first
            reach = np.cumsum(notional[mine][order])
            k = int(np.searchsorted(reach, need))
            if k >= len(reach):
                continue
            distance = max(float(log_distance[mine][order][k]), 0.0)
            barrier = mark * math.exp(-s * distance)
            p = discrete_hit_probability(
                mark, barrier, 0.0, sigma, self.config.horizon_s, dt_s=self._dt_s,
                direction="down" if s > 0 else "up",
            )  # fmt: skip
            best = max(best, float(p))
        return best

    def _account_rows(
        self,
        m: int,
        accounts: IntArray,
        mark: float,
        scale: float,
        sigma: float,
        ts: int,
        hist: _MarketHistory,
    ) -> dict[str, FloatArray]:
        ex = self.sim.ex
        cols = ex.columns(m)
        size = cols.size[accounts]
        side = np.sign(size)
        notional = np.abs(size) * mark
        isolated = cols.mode[accounts] == MarginMode.ISOLATED
        iso = ex.isolated_state(m)
        cross = ex.cached_margin_state()
        equity = np.where(isolated, iso["equity"][accounts], cross["cross_equity"][accounts])
        maint = np.where(
            isolated, iso["maintenance"][accounts], cross["cross_maintenance"][accounts]
        )
        with np.errstate(divide="ignore", invalid="ignore"):
            ratio = np.where(equity > 0, maint / equity, np.inf)
            leverage = np.where(equity > 0, notional / equity, np.inf)
        liq_price, _ = ex.liquidation_prices(m, accounts)
        has_level = np.isfinite(liq_price) & (liq_price > 0)
        log_dist = np.full(len(accounts), MAX_DISTANCE * scale)
        log_dist[has_level] = side[has_level] * pm.log(mark / liq_price[has_level])
        log_dist = np.minimum(log_dist, MAX_DISTANCE * scale)
        probability = np.zeros(len(accounts))
        if has_level.any():
            probability[has_level] = discrete_hit_probability(
                mark, liq_price[has_level], 0.0, sigma, self.config.horizon_s,
                dt_s=self._dt_s, direction=np.where(side[has_level] > 0, -1.0, 1.0),
            )  # fmt: skip
        tiers = ex.markets[m].tiers
        return {
            "side": side,
            "distance_sigma": np.clip(log_dist / scale, -MAX_DISTANCE, MAX_DISTANCE),
            "log_distance": log_dist,
            "leverage": np.minimum(leverage, 1e6),
            "margin_ratio": np.minimum(ratio, 1e6),
            "tier": mm.tier_index(notional, tiers).astype(np.float64),
            "position_age_s": (ts - hist.opened_ns[accounts]) / _NS,
            "notional": notional,
            "adl_rank_pct": self._adl_rank(m, accounts, side),
            "first_passage_probability": probability,
        }

    def _adl_rank(self, m: int, accounts: IntArray, side: FloatArray) -> FloatArray:
        out = np.ones(len(accounts))
        for s in (1, -1):
            queue = self.sim.ex.adl_queue(m, s)
            if queue.empty:
                continue
            rank = pd.Series(
                (queue["rank"].to_numpy() - 1.0) / max(len(queue), 1),
                index=queue["account"].to_numpy(),
            )
            mine = side == s
            out[mine] = rank.reindex(accounts[mine]).fillna(1.0).to_numpy()
        return out

    # ---------------------------------------------------------------- results
    def forget_account_rows(self) -> None:
        """Drop the account rows recorded so far (a live predictor needs only the latest)."""
        self._accounts.clear()

    def account_frame(self) -> pd.DataFrame:
        """Every account row recorded so far (:data:`KEY_COLUMNS` + :data:`ACCOUNT_FEATURES`)."""
        if not self._accounts:
            return empty_account_frame()
        data = {
            name: np.concatenate([chunk[name] for chunk in self._accounts])
            for name in (*KEY_COLUMNS, *ACCOUNT_FEATURES)
        }
        return pd.DataFrame(data)

    def market_frame(self) -> pd.DataFrame:
        """Every market row recorded so far (keys less ``account``, :data:`MARKET_FEATURES`)."""
        columns = [*(c for c in KEY_COLUMNS if c != "account"), *MARKET_FEATURES]
        return pd.DataFrame(self._markets, columns=columns)


def empty_account_frame() -> pd.DataFrame:
    """An account frame with no rows and the right columns."""
    return pd.DataFrame({name: [] for name in (*KEY_COLUMNS, *ACCOUNT_FEATURES)})
