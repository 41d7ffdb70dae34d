"""Calibrate scenario blocks to data: GARCH(1,1) and jumps to a price series, depth to an L2
snapshot series.

- **GARCH(1,1)** (Bollerslev 1986) by maximum likelihood with the ``arch`` package
  (``arch_model(r, mean="Constant", vol="GARCH", p=1, q=1)``) on log returns scaled by 100 and
  by ``arch``'s own rescaling (``c``, so the data's scale is in [1, 1000], its advice for
  numerical stability): ``omega`` scales back by ``c^2`` and the
  scenario's ``sigma`` is the unconditional volatility ``sqrt(omega / (1 - alpha - beta) / dt)``,
  annualized (the inverse of :func:`deleverage.prices.garch11_omega`).
- **Jumps** (Merton 1976) by thresholding: a return is a jump when it is more than ``k``
  robust standard deviations from the median (``k = 4``; the scale is the median absolute
  deviation times 1.4826, which the jumps themselves barely move). The intensity is jumps per
  year; the jump log size's mean and standard deviation are those of the flagged returns minus
  the diffusion's step mean; the diffusion's ``sigma`` comes from the other returns.
- **Depth** from Binance ``bookDepth`` snapshots: ``depth_per_pct`` is the median over snapshots
  of the mean of the bid and ask depth within 1%; the power law's exponent ``delta`` is the
  inverse slope of ``log(cumulative depth)`` on ``log(band)`` (cumulative depth within a move
  ``u`` grows as ``u^(1/delta)`` on the square-root-law book, docs/formulas.md §3.4), fitted by
  least squares over every snapshot's bands; the 5th and 95th percentiles of the 1% depth show
  how much it changed over the series.

:func:`scenario_blocks` writes the TOML blocks a scenario's ``[[markets]]`` table takes. Formulas:
docs/formulas.md §17.7.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd

from deleverage import portable_math as pm
from deleverage.errors import ValidationError
from deleverage.prices import SECONDS_PER_YEAR

FloatArray = npt.NDArray[np.float64]

#: Returns further than this many robust standard deviations from the median are jumps.
JUMP_THRESHOLD = 4.0
#: Median absolute deviation to standard deviation, for normal data.
MAD_TO_STD = 1.482602218505602
#: Scale of the returns handed to ``arch`` (percent).
_ARCH_SCALE = 100.0


@dataclass(frozen=True)
class GarchFit:
    """GARCH(1,1) on log returns: per-step ``omega``, ``alpha``, ``beta``, annual ``sigma``
    (unconditional) and annual drift ``mu``; ``n`` returns."""

    s0: float
    mu: float
    sigma: float
    alpha: float
    beta: float
    omega: float
    n: int
    #: False when the fit had ``alpha + beta >= MAX_PERSISTENCE`` (no unconditional variance):
    #: ``alpha`` and ``beta`` are then scaled down to that sum and ``sigma`` is the sample
    #: volatility, so the block still makes a stationary scenario.
    stationary: bool = True


#: Largest ``alpha + beta`` written to a scenario (the scenario needs ``alpha + beta < 1``).
MAX_PERSISTENCE = 0.999


@dataclass(frozen=True)
class JumpFit:
    """Merton jump diffusion: annual ``sigma``, ``jump_intensity`` per year, jump log size
    ``N(jump_mean, jump_std^2)``; ``jumps`` flagged among ``n`` returns."""

    s0: float
    sigma: float
    jump_intensity: float
    jump_mean: float
    jump_std: float
    jumps: int
    n: int


@dataclass(frozen=True)
class DepthFit:
    """Depth within 1% (base units, median over snapshots, and its 5th and 95th percentiles)
    and the power-law exponent ``delta`` of cumulative depth in the band."""

    depth_per_pct: float
    depth_per_pct_p5: float
    depth_per_pct_p95: float
    delta: float
    snapshots: int


def log_returns(prices: npt.ArrayLike) -> FloatArray:
    """``log(p_k / p_(k-1))``; raises on a non-finite or non-positive price."""
    p = np.asarray(prices, dtype=np.float64)
    if p.ndim != 1 or len(p) < 3:
        raise ValidationError("prices", p.shape, "must be a series of at least 3 prices")
    bad = np.flatnonzero(~(np.isfinite(p) & (p > 0)))
    if len(bad):
        raise ValidationError(f"prices[{bad[0]}]", float(p[bad[0]]), "must be finite and > 0")
    return np.diff(pm.log(p))


def fit_garch(prices: npt.ArrayLike, dt_s: float) -> GarchFit:
    """Fit GARCH(1,1) to the log returns of ``prices`` sampled every ``dt_s`` seconds."""
    from arch import arch_model

    r = log_returns(prices)
    model = arch_model(
        r * _ARCH_SCALE, mean="Constant", vol="GARCH", p=1, q=1, dist="normal", rescale=True
    )
    result = model.fit(disp="off", show_warning=False)
    params = result.params
    scale = _ARCH_SCALE * float(result.scale)  # arch rescales once more into [1, 1000]
    omega = float(params["omega"]) / scale**2
    alpha, beta = float(params["alpha[1]"]), float(params["beta[1]"])
    years = dt_s / SECONDS_PER_YEAR
    mu = float(params["mu"]) / scale / years
    stationary = alpha + beta < MAX_PERSISTENCE
    if stationary:
        sigma = math.sqrt(omega / (1.0 - alpha - beta) / years)
    else:
        shrink = MAX_PERSISTENCE / (alpha + beta)
        alpha, beta = alpha * shrink, beta * shrink
        sigma = float(np.std(r, ddof=1)) / math.sqrt(years)
    s0 = float(np.asarray(prices)[-1])
    return GarchFit(s0, mu, sigma, alpha, beta, omega, len(r), stationary)


def fit_jumps(prices: npt.ArrayLike, dt_s: float, threshold: float = JUMP_THRESHOLD) -> JumpFit:
    """Flag jumps by a robust threshold and estimate the Merton parameters (module docstring)."""
    r = log_returns(prices)
    center = float(np.median(r))
    scale = MAD_TO_STD * float(np.median(np.abs(r - center)))
    if scale <= 0.0:
        raise ValidationError("prices", "flat", "must move: the returns' spread is zero")
    is_jump = np.abs(r - center) > threshold * scale
    calm = r[~is_jump]
    years = dt_s / SECONDS_PER_YEAR
    sigma = float(np.std(calm, ddof=1)) / math.sqrt(years)
    sizes = r[is_jump] - float(np.mean(calm))
    count = int(is_jump.sum())
    return JumpFit(
        s0=float(np.asarray(prices)[-1]),
        sigma=sigma,
        jump_intensity=count / (len(r) * years),
        jump_mean=float(sizes.mean()) if count else 0.0,
        jump_std=float(sizes.std(ddof=1)) if count > 1 else 0.0,
        jumps=count,
        n=len(r),
    )


def fit_depth(book_depth: pd.DataFrame) -> DepthFit:
    """Depth parameters from a ``bookDepth`` table (:func:`deleverage.liquidity.
    read_binance_book_depth`: columns ``ts``, ``percentage``, ``depth``)."""
    for column in ("ts", "percentage", "depth"):
        if column not in book_depth:
            raise ValidationError("book_depth", sorted(book_depth.columns), f"needs `{column}`")
    frame = book_depth.assign(band=book_depth["percentage"].abs())
    one = frame[np.isclose(frame["band"], 1.0)].groupby("ts")["depth"].mean()
    if one.empty:
        raise ValidationError("book_depth", "bands", "must include the +-1% bands")
    positive = frame[(frame["depth"] > 0) & (frame["band"] > 0)]
    slope = np.polyfit(pm.log(positive["band"]), pm.log(positive["depth"]), 1)[0]
    return DepthFit(
        depth_per_pct=float(one.median()),
        depth_per_pct_p5=float(one.quantile(0.05)),
        depth_per_pct_p95=float(one.quantile(0.95)),
        delta=float(min(max(1.0 / slope, 1e-3), 1.0)) if slope > 0 else 1.0,
        snapshots=int(one.size),
    )


def _toml_table(values: dict[str, Any]) -> str:
    def literal(v: Any) -> str:
        if isinstance(v, str):
            return f'"{v}"'
        if isinstance(v, bool):
            return "true" if v else "false"
        if isinstance(v, dict):
            return _toml_table(v)
        return f"{float(v):.6g}"

    return "{ " + ", ".join(f"{k} = {literal(v)}" for k, v in values.items()) + " }"


def scenario_blocks(
    garch: GarchFit | None = None, jumps: JumpFit | None = None, depth: DepthFit | None = None
) -> str:
    """TOML lines for a scenario's ``[[markets]]`` table (``price``, and ``liquidity``), each
    with a comment saying what it was fitted to."""
    lines: list[str] = []
    if garch is not None:
        note = (
            ""
            if garch.stationary
            else (
                f"; alpha + beta reached {MAX_PERSISTENCE} (integrated): scaled to it, sigma is "
                "the sample volatility"
            )
        )
        lines.append(f"# GARCH(1,1) fitted to {garch.n} log returns (arch){note}")
        lines.append("price = " + _toml_table({
            "process": "garch", "s0": garch.s0, "mu": garch.mu, "sigma": garch.sigma,
            "alpha": garch.alpha, "beta": garch.beta,
        }))  # fmt: skip
    if jumps is not None:
        prefix = "# " if garch is not None else ""
        lines.append(f"# Merton: {jumps.jumps} jumps flagged among {jumps.n} log returns")
        lines.append(prefix + "price = " + _toml_table({
            "process": "merton", "s0": jumps.s0, "sigma": jumps.sigma,
            "jump_intensity": jumps.jump_intensity, "jump_mean": jumps.jump_mean,
            "jump_std": jumps.jump_std,
        }))  # fmt: skip
    if depth is not None:
        lines.append(
            f"# depth within 1% over {depth.snapshots} snapshots: median {depth.depth_per_pct:.6g}"
            f" (p5 {depth.depth_per_pct_p5:.6g}, p95 {depth.depth_per_pct_p95:.6g});"
            f" power-law delta {depth.delta:.3g}"
        )
        lines.append("liquidity = " + _toml_table({
            "model": "constant_depth", "depth_per_pct": depth.depth_per_pct,
        }))  # fmt: skip
    return "\n".join(lines) + "\n"


def fits_to_dict(*fits: GarchFit | JumpFit | DepthFit | None) -> dict[str, Any]:
    """The fits as plain data (for ``--json``)."""
    names = {GarchFit: "garch", JumpFit: "jumps", DepthFit: "depth"}
    return {names[type(f)]: asdict(f) for f in fits if f is not None}
