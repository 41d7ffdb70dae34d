"""Scores against hand-computed numbers and scipy's t table."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from deleverage.errors import ValidationError
from deleverage.predict.evaluate import compare_to_baseline, lead_time, score

S = 1_000_000_000


def test_brier_and_log_loss_match_the_hand_computed_values() -> None:
    # Oracle: Brier = ((0.9-1)^2 + (0.2-0)^2 + (0.4-1)^2 + (0.1-0)^2) / 4 = 0.105;
    # log loss = -(ln 0.9 + ln 0.8 + ln 0.4 + ln 0.9) / 4 = 0.3375...
    frame = pd.DataFrame({"y": [1, 0, 1, 0]})
    p = np.array([0.9, 0.2, 0.4, 0.1])

    out = score("m", frame, p, label="y")

    assert out.brier == pytest.approx(0.105)
    assert out.log_loss == pytest.approx(
        -(np.log(0.9) + np.log(0.8) + np.log(0.4) + np.log(0.9)) / 4
    )
    # Ranking 0.9 (pos), 0.4 (pos), 0.2, 0.1: both positives first -> average precision 1.
    assert out.average_precision == pytest.approx(1.0)
    assert out.positives == 2


def test_lead_time_is_the_longest_warning_before_each_liquidation() -> None:
    # Arrange: account 1 is liquidated at 100 s, sampled at 40, 60, 80 s with p 0.2, 0.7, 0.9
    # (first over 0.5 at 60 s: lead 40 s); account 2 is liquidated at 100 s, sampled at 80 s
    # with p 0.1 (not warned); account 3 never is.
    frame = pd.DataFrame(
        {
            "seed": 1, "market": "BTCUSDT",
            "account": [1, 1, 1, 2, 3],
            "ts_ns": [40 * S, 60 * S, 80 * S, 80 * S, 80 * S],
            "time_to_liquidation_s": [60.0, 40.0, 20.0, 20.0, np.nan],
        }
    )  # fmt: skip
    p = np.array([0.2, 0.7, 0.9, 0.1, 0.99])

    warned, median = lead_time(frame, p, level=0.5, horizon_s=60.0)

    assert warned == pytest.approx(0.5)
    assert median == pytest.approx(40.0)


def test_the_comparison_interval_is_students_t_over_seeds() -> None:
    # Arrange: three seeds, one row each pair; per-seed Brier differences d = model - baseline.
    frame = pd.DataFrame({"seed": [1, 1, 2, 2, 3, 3], "y": [1, 0, 1, 0, 1, 0]})
    model = np.array([0.9, 0.1, 0.8, 0.2, 0.5, 0.5])
    base = np.array([0.5, 0.5, 0.5, 0.5, 0.6, 0.4])
    # d1 = 0.01 - 0.25 = -0.24; d2 = 0.04 - 0.25 = -0.21; d3 = 0.25 - 0.16 = 0.09
    d = np.array([-0.24, -0.21, 0.09])
    t975_2 = 4.302652729911275  # t table, 2 degrees of freedom, 97.5%
    half = t975_2 * d.std(ddof=1) / np.sqrt(3)

    out = compare_to_baseline(frame, model, base, label="y", model="gbt")

    assert out.mean_difference == pytest.approx(d.mean())
    assert out.difference_low == pytest.approx(d.mean() - half)
    assert out.difference_high == pytest.approx(d.mean() + half)
    # Lower Brier overall, but the interval reaches zero: not a win, and it says so.
    assert out.brier_model < out.brier_baseline
    assert not out.beats_baseline
    assert "does NOT beat" in out.verdict


def test_a_model_better_on_every_seed_beats_the_baseline() -> None:
    frame = pd.DataFrame({"seed": [1, 1, 2, 2, 3, 3], "y": [1, 0, 1, 0, 1, 0]})
    model = np.array([0.9, 0.1, 0.8, 0.15, 0.85, 0.1])
    base = np.full(6, 0.5)

    out = compare_to_baseline(frame, model, base, label="y", model="gbt")

    assert out.beats_baseline
    assert "BEATS" in out.verdict


def test_probabilities_outside_the_unit_interval_are_refused() -> None:
    with pytest.raises(ValidationError, match="probability"):
        score("m", pd.DataFrame({"y": [0, 1]}), np.array([0.5, 1.5]), label="y")
