"""Request and response bodies of the risk service (pydantic; unknown fields rejected).

Every number is checked where it enters: finite, with the sign its unit needs, and inside
the bounds below; a bad field is answered with 422 and a body naming the field, the value and
the rule (``{"detail": [{"field": "body.price", "value": -5, "message": ...}]}``).

=============  ==========================================================================
quantity       bounds
=============  ==========================================================================
size           (0, 1e9] base units
price          (0, 1e12] quote per base
amount         (0, ``max_amount``] quote (a setting, default 1e9), checked by the routes
ts_ns          [0, 2**63 - 1] and within ``max_clock_skew_s`` of the server clock
account id     [0, 2**31 - 1]
seq (since)    [0, 2**63 - 1]
key expiry     (0, 10 years] seconds
=============  ==========================================================================
"""

from __future__ import annotations

import json
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator

__all__ = [
    "MAX_ACCOUNT",
    "MAX_INT64",
    "MAX_PRICE",
    "MAX_SIZE",
    "AccountBatchCreate",
    "AccountBatchCreated",
    "AccountCreate",
    "AccountCreated",
    "Amount",
    "KeyCreate",
    "KeyCreated",
    "KeyRotate",
    "MarkPost",
    "MarketCreate",
    "OperationResult",
    "TradeBatch",
    "TradePost",
]


def _utf8(value: str) -> str:
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError("must be valid UTF-8 text (no lone surrogates)") from None
    return value


Utf8 = AfterValidator(_utf8)
MAX_INT64 = 2**63 - 1
MAX_ACCOUNT = 2**31 - 1
MAX_SIZE = 1e9
MAX_PRICE = 1e12
MAX_QUOTE = 1e15  # the schema's ceiling; the service's max_amount is at most this

Price = Annotated[
    float, Field(gt=0, le=MAX_PRICE, allow_inf_nan=False, description="quote per base")
]
Size = Annotated[float, Field(gt=0, le=MAX_SIZE, allow_inf_nan=False, description="base units")]
Quote = Annotated[
    float, Field(gt=0, le=MAX_QUOTE, allow_inf_nan=False, description="quote currency")
]
AccountId = Annotated[int, Field(ge=0, le=MAX_ACCOUNT, description="account id")]
ExpirySeconds = Annotated[float, Field(gt=0, le=10 * 366 * 86_400, allow_inf_nan=False)]
TimestampNs = Annotated[
    int, Field(ge=0, le=MAX_INT64, description="ns since the epoch; default: now")
]


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class MarketCreate(_Body):
    """A market: a venue preset (``venue`` + ``symbol``) or a full ``spec`` (MarketSpec)."""

    venue: Annotated[str, Utf8] | None = Field(
        default=None, max_length=64, description="preset venue, e.g. 'binance'"
    )
    symbol: Annotated[str, Utf8] | None = Field(
        default=None, max_length=64, description="preset symbol"
    )
    spec: dict[str, Any] | None = Field(default=None, description="a MarketSpec as JSON")

    @model_validator(mode="after")
    def _one_source(self) -> MarketCreate:
        if (self.spec is None) == (self.venue is None):
            raise ValueError("give either `spec` or `venue` (with `symbol`), not both or neither")
        if self.spec is not None:
            _utf8(json.dumps(self.spec, ensure_ascii=False))
        return self


class AccountCreate(_Body):
    """A trader account, optionally funded at once."""

    margin_mode: Literal["cross", "isolated"] = "cross"
    label: Annotated[str, Utf8] = Field(default="", max_length=64)
    deposit: Quote | None = None


class AccountCreated(_Body):
    """The new account and its API key (shown once; null in a replayed idempotent answer)."""

    account: int
    key_id: int
    api_key: str | None


class AccountBatchCreate(_Body):
    """Many trader accounts at once, each funded with ``deposit`` (all or nothing)."""

    count: Annotated[int, Field(ge=1, le=10_000)]
    margin_mode: Literal["cross", "isolated"] = "cross"
    deposit: Quote | None = None


class AccountBatchCreated(_Body):
    """The new accounts and their API keys, in the same order."""

    accounts: list[int]
    key_ids: list[int]
    api_keys: list[str | None]


class Amount(_Body):
    """A deposit or withdrawal in quote."""

    amount: Quote


class PredictionAlertSet(_Body):
    """Alert when the predicted probability of liquidation within ``horizon_s`` reaches
    ``level`` (issue #19)."""

    market: Annotated[str, Utf8] = Field(min_length=1, max_length=64)
    level: float = Field(gt=0, lt=1, allow_inf_nan=False)
    horizon_s: float = Field(default=3600.0, gt=0, le=366 * 86_400, allow_inf_nan=False)


class TradePost(_Body):
    """A fill between two accounts (``taker`` pays the taker fee; null: both maker)."""

    market: Annotated[str, Utf8] = Field(min_length=1, max_length=64)
    buyer: AccountId
    seller: AccountId
    size: Size
    price: Price
    taker: Literal["buyer", "seller"] | None = "buyer"
    ts_ns: TimestampNs | None = None


class TradeBatch(_Body):
    """Up to 10,000 fills applied in order, all or nothing."""

    trades: Annotated[list[TradePost], Field(min_length=1, max_length=10_000)]


class MarkPost(_Body):
    """An oracle mark price; runs the risk step (margin calls, liquidations, ADL)."""

    market: Annotated[str, Utf8] = Field(min_length=1, max_length=64)
    price: Price
    ts_ns: TimestampNs | None = None


class KeyCreate(_Body):
    """A new API key: ``account`` is required for (and only for) the ``account`` role.

    ``expires_in_s``: the key stops working after this many seconds (default: never).
    ``replaces``: a key id revoked in the same transaction (rotation).
    """

    role: Literal["admin", "oracle", "feed", "depositor", "account"]
    account: AccountId | None = None
    expires_in_s: (
        Annotated[float, Field(gt=0, le=10 * 366 * 86_400, allow_inf_nan=False)] | None
    ) = None
    replaces: Annotated[int, Field(ge=1, le=MAX_ACCOUNT)] | None = None

    @model_validator(mode="after")
    def _account_role(self) -> KeyCreate:
        if (self.role == "account") != (self.account is not None):
            raise ValueError("`account` is required for role 'account' and only for it")
        return self


class KeyCreated(_Body):
    """The key (shown once; only its digest is stored; null in a replayed answer)."""

    key_id: int
    role: str
    account: int | None
    expires_ns: int | None = None
    revoked: int | None = None
    api_key: str | None


class KeyRotate(_Body):
    """Rotate the calling key: a new key with its role, account and expiry; the old one is
    revoked in the same transaction."""

    expires_in_s: (
        Annotated[float, Field(gt=0, le=10 * 366 * 86_400, allow_inf_nan=False)] | None
    ) = None


class OperationResult(_Body):
    """What a write did: journal rows appended and notifications sent."""

    events: int
    notifications: int
    first_notification_seq: int | None = None
    detail: dict[str, Any] = Field(default_factory=dict)
