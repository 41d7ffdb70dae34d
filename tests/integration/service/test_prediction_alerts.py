"""Prediction alerts: an account chooses a level for its predicted probability of liquidation
within a horizon; the service notifies it when the probability rises through the level, once
per crossing, and keeps the choice across a restart.

Market as in test_crash_notifications.py: one tier, 10x, maintenance 5%, no fees. A is an
isolated long 10 at 100 with margin 100: LP = 900 / 9.5 = 94.7368... With two marks in its
window the service predicts with its default volatility 0.8 (the answer to the PUT, and the mark
96: P = 0.12 < 0.5); from three marks on with their realized volatility, which each alert
reports and the oracle below uses.

Oracle: the first-passage probability of a driftless GBM (mu = 0) below its start, by the
reflection principle for Brownian motion with drift nu = -sigma^2 / 2 in log space:
P = N((b - nu T) / (sigma sqrt T)) + exp(2 nu b / sigma^2) N((b + nu T) / (sigma sqrt T)),
b = ln(LP / mark), T in years (Shreve, Stochastic Calculus for Finance II, 7.2.1).
"""

from __future__ import annotations

import math
from typing import Any

import httpx
import pytest
from _service_server import Server
from scipy.stats import norm

SPEC = {
    "symbol": "BTCUSDT",
    "tiers": [{"notional_floor": 0, "max_leverage": 10, "maintenance_rate": 0.05}],
    "maker_fee_rate": 0.0,
    "taker_fee_rate": 0.0,
    "liquidation_fee_rate": 0.01,
}
LP = 900 / 9.5
YEAR_S = 365 * 86_400


def _p_down(mark: float, barrier: float, sigma: float, horizon_s: float) -> float:
    t = horizon_s / YEAR_S
    b = math.log(barrier / mark)
    nu = -0.5 * sigma**2
    s = sigma * math.sqrt(t)
    return float(
        norm.cdf((b - nu * t) / s) + math.exp(2 * nu * b / sigma**2) * norm.cdf((b + nu * t) / s)
    )


def _setup(http: httpx.Client) -> tuple[int, str]:
    assert http.post("/v1/markets", json={"spec": SPEC}).status_code == 201
    assert http.post("/v1/marks", json={"market": "BTCUSDT", "price": 100}).is_success
    a = http.post("/v1/accounts", json={"margin_mode": "isolated", "deposit": 100.0}).json()
    s = http.post("/v1/accounts", json={"margin_mode": "cross", "deposit": 10_000.0}).json()
    trade = {"market": "BTCUSDT", "buyer": a["account"], "seller": s["account"], "size": 10,
             "price": 100}  # fmt: skip
    assert http.post("/v1/trades", json=trade).status_code == 200
    return int(a["account"]), str(a["api_key"])


def _mark(http: httpx.Client, price: float) -> None:
    r = http.post("/v1/marks", json={"market": "BTCUSDT", "price": price})
    assert r.status_code == 200, r.text


def _alerts(http: httpx.Client, since: int) -> list[dict[str, Any]]:
    stored = http.get("/v1/notifications", params={"since": since}).json()
    return [n for n in stored if n["kind"] == "prediction_alert"]


def test_an_account_is_alerted_once_when_its_prediction_crosses_its_level(
    make_server: Any,
) -> None:
    server: Server = make_server()
    with server.client() as http:
        a, key_a = _setup(http)
        with server.client(key_a) as own:
            # Act: A chooses 50% within an hour, at the mark 100.
            r = own.put(
                f"/v1/accounts/{a}/prediction-alert",
                json={"market": "BTCUSDT", "level": 0.5, "horizon_s": 3600},
            )
        assert r.status_code == 200, r.text
        assert r.json()["probability"] == pytest.approx(_p_down(100, LP, 0.8, 3600), rel=1e-9)
        start = http.get("/v1/info").json()["last_notification_seq"]
        _mark(http, 96.0)  # P = 0.12: under the level
        quiet = _alerts(http, start)
        _mark(http, 95.2)  # P = 0.57: through it
        first = _alerts(http, start)

        # Assert
        assert quiet == []
        assert len(first) == 1
        alert = first[0]
        assert alert["account"] == a
        assert alert["market"] == "BTCUSDT"
        assert alert["data"]["level"] == 0.5
        assert alert["data"]["horizon_s"] == 3600
        sigma = alert["data"]["volatility"]
        assert alert["data"]["probability"] == pytest.approx(_p_down(95.2, LP, sigma, 3600))
        assert alert["data"]["probability"] >= 0.5
        _mark(http, 95.1)  # still above: no second alert
        assert len(_alerts(http, start)) == 1

    # A restart keeps the choice: back under the level, then through it again.
    server.stop()
    server.start()
    with server.client() as http:
        start = http.get("/v1/info").json()["last_notification_seq"]
        _mark(http, 100.0)
        _mark(http, 95.2)
        again = _alerts(http, start)
        assert [n["account"] for n in again] == [a]
        assert again[0]["data"]["probability"] == pytest.approx(
            _p_down(95.2, LP, again[0]["data"]["volatility"], 3600)
        )


def test_only_the_account_or_an_admin_may_set_it_and_bad_values_are_refused(
    make_server: Any,
) -> None:
    server: Server = make_server()
    with server.client() as http:
        a, _ = _setup(http)
        other = http.post("/v1/accounts", json={"margin_mode": "cross"}).json()
        with server.client(other["api_key"]) as stranger:
            r = stranger.put(
                f"/v1/accounts/{a}/prediction-alert", json={"market": "BTCUSDT", "level": 0.5}
            )
        assert r.status_code == 403
        bad = http.put(
            f"/v1/accounts/{a}/prediction-alert", json={"market": "BTCUSDT", "level": 1.5}
        )
        assert bad.status_code == 422
        assert "level" in bad.text
        unknown = http.put(
            f"/v1/accounts/{a}/prediction-alert", json={"market": "NOPE", "level": 0.5}
        )
        assert unknown.status_code == 404
        ok = http.put(
            f"/v1/accounts/{a}/prediction-alert", json={"market": "BTCUSDT", "level": 0.9}
        )
        assert ok.status_code == 200
        gone = http.delete(f"/v1/accounts/{a}/prediction-alert", params={"market": "BTCUSDT"})
        assert gone.json()["removed"] is True
        start = http.get("/v1/info").json()["last_notification_seq"]
        _mark(http, 95.0)
        assert _alerts(http, start) == []
