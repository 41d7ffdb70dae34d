"""Settings of the risk service (``deleverage serve``): storage, keys, alerts and limits.

One frozen pydantic model, built from the command line (:mod:`deleverage.cli.serve`) or in
tests; every field is validated and unknown fields are rejected.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, field_validator

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
        Bootstrap admin API key, stored (hashed) at start-up if not already there.
    margin_levels
        Margin-ratio levels (maintenance / equity, fractions in (0, 1]) that trigger a
        ``margin_warning`` notification when an account's ratio rises through them.
    rate_limit_per_s, rate_burst
        Per-key token bucket: sustained requests per second and the bucket size.
    max_body_bytes
        Largest request body accepted (413 above it).
    subscriber_queue
        Notifications buffered per WebSocket client; a client that falls further behind is
        disconnected (close code 1013) and resumes with its last sequence number.
    default_volatility
        Annualized volatility used by the liquidation-probability endpoint when none is given.
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
    max_body_bytes: Annotated[int, Field(ge=256)] = 1_048_576
    subscriber_queue: Annotated[int, Field(ge=16)] = 10_000
    default_volatility: PositiveFloat = 0.8

    @field_validator("margin_levels")
    @classmethod
    def _sorted_levels(cls, value: tuple[float, ...]) -> tuple[float, ...]:
        if len(set(value)) != len(value):
            raise ValueError("margin_levels must not repeat a level")
        return tuple(sorted(value))
