"""Settings of the risk service (``deleverage serve``): storage, keys, limits, alerts, webhooks.

One frozen pydantic model, built from the command line (:mod:`deleverage.cli.serve`) or in
tests; every field is validated and unknown fields are rejected.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

__all__ = ["ServiceSettings"]

PositiveFloat = Annotated[float, Field(gt=0, allow_inf_nan=False)]


class ServiceSettings(BaseModel):
    """How a :func:`deleverage.service.app.create_app` service stores, guards and alerts.

    Parameters
    ----------
    db_url
        SQLAlchemy URL of the database: ``sqlite:///path.db`` (embedded default) or
        ``postgresql+psycopg://user@host/db``.
    admin_key
        Bootstrap admin API key, stored (hashed) at start-up if not already there; a revoked
        bootstrap key stays revoked.
    margin_levels
        Margin-ratio levels (maintenance / equity, fractions in (0, 1]) that trigger a
        ``margin_warning`` notification when an account's ratio rises through them.
    rate_limit_per_s, rate_burst
        Per-key limit: at most ``rate_burst`` requests in any ``rate_burst / rate_limit_per_s``
        seconds (a moving window, at least one second).
    anonymous_rate_limit_per_s, anonymous_rate_burst
        The same per client address, for requests without a valid key (and the unauthenticated
        ``/health``, ``/ready``, ``/metrics``).
    max_streams_per_key
        Open WebSocket streams one key may hold at once.
    max_body_bytes
        Largest request body accepted (413 above it).
    subscriber_queue
        Notifications buffered per WebSocket client; a client that falls further behind is
        disconnected (close code 1013) and resumes with its last sequence number.
    default_volatility
        Annualized volatility used by the liquidation-probability endpoint when none is given.
    max_amount
        Largest deposit or withdrawal (quote) one request may move, per account.
    trade_price_band
        A client trade's price must lie within this fraction of the market's mark.
    max_clock_skew_s
        A client timestamp (``ts_ns``) must lie within this many seconds of the server clock.
    snapshot_every
        Journal rows between engine snapshots (start-up restores the latest snapshot and
        replays only the rows after it).
    webhook_urls, webhook_secret
        Where notifications are POSTed, signed with HMAC-SHA256 over the body and timestamp.
    webhook_max_attempts, webhook_backoff_s, webhook_timeout_s
        Delivery attempts per batch, the first retry's delay (doubling, capped at 30 s) and
        the timeout of one attempt.
    world_levels, world_venue
        The world around the service (:mod:`deleverage.service.world_view`): a world run's
        ``levels.parquet`` (the other venues' positions) and this service's venue name in it.
    world_depth_per_pct, world_alert_ratio, world_alert_shock
        Shared-book depth per asset (market symbol -> base units per 1%), and the
        ``world_criticality`` alert: the world's branching ratio at the shock (fraction of the
        price) reaching the ratio.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    db_url: Annotated[str, Field(min_length=1)] = "sqlite:///deleverage.db"
    admin_key: Annotated[str, Field(min_length=16, max_length=256)] | None = None
    margin_levels: tuple[Annotated[float, Field(gt=0, le=1, allow_inf_nan=False)], ...] = (
        0.5,
        0.8,
    )
    rate_limit_per_s: PositiveFloat = 100.0
    rate_burst: Annotated[int, Field(ge=1)] = 200
    anonymous_rate_limit_per_s: PositiveFloat = 5.0
    anonymous_rate_burst: Annotated[int, Field(ge=1)] = 20
    max_streams_per_key: Annotated[int, Field(ge=1, le=100_000)] = 10
    max_body_bytes: Annotated[int, Field(ge=256)] = 1_048_576
    subscriber_queue: Annotated[int, Field(ge=16)] = 10_000
    default_volatility: PositiveFloat = 0.8
    max_amount: Annotated[float, Field(gt=0, le=1e15, allow_inf_nan=False)] = 1e9
    trade_price_band: Annotated[float, Field(gt=0, le=10, allow_inf_nan=False)] = 0.1
    max_clock_skew_s: Annotated[float, Field(gt=0, le=86_400 * 366, allow_inf_nan=False)] = 300.0
    snapshot_every: Annotated[int, Field(ge=1)] = 50_000
    webhook_urls: tuple[Annotated[str, Field(pattern=r"^https?://[^\s]+$")], ...] = ()
    webhook_secret: Annotated[str, Field(min_length=16, max_length=256)] | None = None
    webhook_max_attempts: Annotated[int, Field(ge=1, le=20)] = 5
    webhook_backoff_s: Annotated[float, Field(gt=0, le=60, allow_inf_nan=False)] = 0.5
    webhook_timeout_s: Annotated[float, Field(gt=0, le=60, allow_inf_nan=False)] = 5.0
    world_levels: Annotated[str, Field(min_length=1)] | None = None
    world_venue: Annotated[str, Field(min_length=1, max_length=64)] = "service"
    world_depth_per_pct: dict[str, PositiveFloat] = Field(default_factory=dict)
    world_alert_ratio: Annotated[float, Field(gt=0, le=1, allow_inf_nan=False)] = 0.8
    world_alert_shock: Annotated[float, Field(gt=0, lt=1, allow_inf_nan=False)] = 0.02

    @field_validator("margin_levels")
    @classmethod
    def _sorted_levels(cls, value: tuple[float, ...]) -> tuple[float, ...]:
        if len(set(value)) != len(value):
            raise ValueError("margin_levels must not repeat a level")
        return tuple(sorted(value))

    @model_validator(mode="after")
    def _webhook_secret(self) -> ServiceSettings:
        if self.webhook_urls and self.webhook_secret is None:
            raise ValueError("webhook_secret is required when webhook_urls are given")
        return self
