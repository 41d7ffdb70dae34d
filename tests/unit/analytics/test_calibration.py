"""Calibration recovers the parameters of series simulated with known ones.

- GARCH(1,1): 20,000 one-minute returns of :func:`deleverage.prices.garch11` with alpha 0.08,
  beta 0.90, sigma 80%/year; maximum likelihood (arch) is consistent, with standard errors of
  about 0.01-0.02 at this length (Bollerslev 1986; Francq and Zakoian 2010, ch. 7).
- Jumps: a Merton path with rare large jumps (-5% +- 1%) on a small diffusion; the robust
  threshold finds them all.
- Depth: a synthetic bookDepth series whose cumulative depth is ``D (band)^(1/delta)`` gives back
  ``D`` and ``delta`` exactly.
"""

from __future__ import annotations

import json
import tomllib
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from deleverage.analytics.calibration import fit_depth, fit_garch, fit_jumps, scenario_blocks
from deleverage.cli.app import app
from deleverage.errors import ValidationError
from deleverage.prices import garch11, garch11_omega, merton_jump_diffusion
from deleverage.sim.scenario import Scenario

DT = 60.0


def test_garch_fit_recovers_alpha_beta_and_sigma() -> None:
    # Arrange
    pytest.importorskip("arch")
    omega = garch11_omega(0.8, 0.08, 0.90, DT)
    path = garch11(60_000.0, omega, 0.08, 0.90, DT, 20_000, np.random.default_rng(7))

    # Act
    fit = fit_garch(path, DT)

    # Assert
    assert fit.stationary
    assert fit.alpha == pytest.approx(0.08, abs=0.03)
    assert fit.beta == pytest.approx(0.90, abs=0.04)
    assert fit.sigma == pytest.approx(0.8, rel=0.15)


def test_jump_fit_finds_rare_large_jumps() -> None:
    # Arrange: 20,000 minutes (about 0.038 years), 1,000 jumps a year -> about 38 jumps
    path = merton_jump_diffusion(
        100.0, 0.0, 0.3, 1_000.0, -0.05, 0.01, DT, 20_000, np.random.default_rng(3)
    )

    # Act
    fit = fit_jumps(path, DT)

    # Assert
    years = 20_000 * DT / (365 * 86_400)
    assert fit.jumps == pytest.approx(1_000.0 * years, rel=0.35)
    assert fit.jump_mean == pytest.approx(-0.05, abs=0.005)
    assert fit.jump_std == pytest.approx(0.01, abs=0.004)
    assert fit.sigma == pytest.approx(0.3, rel=0.1)


def test_depth_fit_recovers_depth_and_power_law_exponent() -> None:
    # Arrange: cumulative depth 500 band^(1/0.5) = 500 band^2 on both sides, two snapshots
    rows = []
    for ts, scale in (("2025-10-10 00:00:00", 1.0), ("2025-10-10 01:00:00", 1.0)):
        for band in (1, 2, 3, 4, 5):
            for side in (-1, 1):
                rows.append({"ts": pd.Timestamp(ts), "percentage": side * band,
                             "depth": 500.0 * scale * band**2, "notional": 0.0})  # fmt: skip
    fit = fit_depth(pd.DataFrame(rows))
    assert fit.depth_per_pct == pytest.approx(500.0)
    assert fit.delta == pytest.approx(0.5)
    assert fit.snapshots == 2


def test_blocks_are_scenario_tables() -> None:
    pytest.importorskip("arch")
    omega = garch11_omega(0.8, 0.08, 0.90, DT)
    path = garch11(60_000.0, omega, 0.08, 0.90, DT, 5_000, np.random.default_rng(1))
    text = scenario_blocks(fit_garch(path, DT), fit_jumps(path, DT))
    market = tomllib.loads(text)
    scenario = Scenario.from_mapping(
        {"duration_s": 600, "markets": [{"symbol": "BTCUSDT", **market}]}
    )
    assert scenario.markets[0].price.process == "garch"


def test_flat_prices_are_rejected() -> None:
    with pytest.raises(ValidationError, match="prices"):
        fit_jumps(np.full(100, 5.0), DT)


def test_cli_calibrate_writes_depth_blocks_from_the_bundled_sample(tmp_path: Path) -> None:
    out = tmp_path / "blocks.toml"
    result = CliRunner().invoke(app, ["calibrate", "--book-depth", "bundled", "--out", str(out),
                                      "--json"])  # fmt: skip
    assert result.exit_code == 0, result.output
    depth = json.loads(result.stdout)["depth"]
    assert depth["snapshots"] == 5  # the sample's five snapshots
    block = tomllib.loads(out.read_text())
    assert block["liquidity"]["depth_per_pct"] == pytest.approx(depth["depth_per_pct"], rel=1e-5)


def test_cli_calibrate_fits_the_bundled_crash_window() -> None:
    pytest.importorskip("arch")
    result = CliRunner().invoke(app, ["calibrate", "btcusdt-1m-2025-10-10"])
    assert result.exit_code == 0, result.output
    market = tomllib.loads(result.stdout)
    assert market["price"]["process"] == "garch"
    assert market["price"]["alpha"] + market["price"]["beta"] < 1.0
