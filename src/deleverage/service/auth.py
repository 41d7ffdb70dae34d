"""API keys, roles, expiry, revocation and rate limits of the risk service.

A key is a random token (``dlv_`` + 32 random bytes, URL-safe base64) shown once when it is
created; the service stores only its SHA-256 digest. A presented key is hashed and looked up
by digest, and the digests are compared with :func:`hmac.compare_digest` (constant time).
SHA-256 without salt or stretching suffices because keys are 256-bit random tokens, not
passwords: there is nothing to guess.

Roles:

- ``admin``: everything (markets, accounts, keys, trades, marks, deposits, every account and
  stream);
- ``oracle``: post mark prices; read market data;
- ``feed``: submit trades between trader accounts (a venue's fill feed); read market data;
- ``depositor``: deposit into accounts (a venue's treasury or payment gateway); read market
  data;
- ``account``: its own account only (reads, withdraw, its notification stream) and market
  data. An account key cannot deposit: money comes in through a depositor.

A key may expire (``expires_ns``) and may be revoked (``revoked_ns``); either makes it unknown
at once, open WebSocket streams included. Rate limits are moving windows per key, and per
client address for requests without a valid key (:class:`RateLimiter`, the ``limits``
library).
"""

from __future__ import annotations

import hashlib
import hmac
import math
import secrets
import time
from dataclasses import dataclass
from enum import StrEnum

from limits import RateLimitItemPerSecond
from limits.storage import MemoryStorage
from limits.strategies import MovingWindowRateLimiter

__all__ = ["KeyRecord", "KeyRing", "Principal", "RateLimiter", "Role", "hash_key", "new_key"]

KEY_PREFIX = "dlv_"


class Role(StrEnum):
    """What a key may do."""

    ADMIN = "admin"
    ORACLE = "oracle"
    FEED = "feed"
    DEPOSITOR = "depositor"
    ACCOUNT = "account"


@dataclass(frozen=True, slots=True)
class Principal:
    """The holder of a key: its role, its account (``account`` keys), digest and id."""

    role: Role
    account: int | None
    key_hash: str
    key_id: int = 0

    def may_read_account(self, account: int) -> bool:
        """Whether this key may read (and subscribe to) ``account``."""
        return self.role is Role.ADMIN or (self.role is Role.ACCOUNT and self.account == account)


@dataclass(frozen=True, slots=True)
class KeyRecord:
    """A stored key: id, digest, role, account, creation, expiry and revocation (ns)."""

    key_id: int
    key_hash: str
    role: Role
    account: int | None
    created_ns: int
    expires_ns: int | None
    revoked_ns: int | None

    def state(self, now_ns: int) -> str:
        """``active``, ``revoked`` or ``expired`` at ``now_ns``."""
        if self.revoked_ns is not None:
            return "revoked"
        if self.expires_ns is not None and now_ns >= self.expires_ns:
            return "expired"
        return "active"

    def public(self, now_ns: int) -> dict[str, object]:
        """What ``GET /v1/keys`` shows (never the digest)."""
        return {
            "key_id": self.key_id, "role": self.role.value, "account": self.account,
            "created_ns": self.created_ns, "expires_ns": self.expires_ns,
            "revoked_ns": self.revoked_ns, "state": self.state(now_ns),
        }  # fmt: skip


def new_key() -> str:
    """A fresh random API key."""
    return KEY_PREFIX + secrets.token_urlsafe(32)


def hash_key(key: str) -> str:
    """Hex SHA-256 digest of a key (what the database stores)."""
    return hashlib.sha256(key.encode("utf-8", "surrogatepass")).hexdigest()


class KeyRing:
    """The known keys, in memory (loaded from and written to the storage)."""

    def __init__(self, records: list[KeyRecord]) -> None:
        self._by_hash: dict[str, KeyRecord] = {}
        self._by_id: dict[int, KeyRecord] = {}
        for record in records:
            self.put(record)

    def put(self, record: KeyRecord) -> None:
        """Remember (or replace) a key record."""
        self._by_hash[record.key_hash] = record
        self._by_id[record.key_id] = record

    def __contains__(self, digest: str) -> bool:
        return digest in self._by_hash

    def get(self, key_id: int) -> KeyRecord | None:
        """The record of a key id, or None."""
        return self._by_id.get(key_id)

    def by_hash(self, digest: str) -> KeyRecord | None:
        """The record of a digest, or None."""
        return self._by_hash.get(digest)

    def records(self) -> list[KeyRecord]:
        """Every key, by id."""
        return [self._by_id[k] for k in sorted(self._by_id)]

    def has_active(self, role: Role, now_ns: int) -> bool:
        """Whether any active key has ``role``."""
        return any(r.role is role and r.state(now_ns) == "active" for r in self._by_id.values())

    def authenticate(self, key: str | None, now_ns: int) -> Principal | None:
        """The principal of a presented active key; None for a missing, unknown, revoked or
        expired key."""
        if not key or len(key) > 512:
            return None
        digest = hash_key(key)
        found = self._by_hash.get(digest)
        if found is None or not hmac.compare_digest(found.key_hash, digest):
            return None
        if found.state(now_ns) != "active":
            return None
        return Principal(found.role, found.account, found.key_hash, found.key_id)


class RateLimiter:
    """At most ``burst`` hits per identity in any ``burst / rate`` seconds (moving window).

    A thin wrapper of the ``limits`` library's moving-window strategy (in memory): the window
    is ``max(1, ceil(burst / rate))`` seconds, so the sustained rate is at most ``rate`` and
    a quiet client may burst ``burst`` requests at once.

    Examples
    --------
    >>> limiter = RateLimiter(rate=1.0, burst=2)
    >>> [limiter.allow("k") for _ in range(3)]
    [True, True, False]
    >>> limiter.allow("other")
    True
    """

    def __init__(self, *, rate: float, burst: int) -> None:
        self.rate = float(rate)
        self.burst = int(burst)
        seconds = max(1, math.ceil(self.burst / self.rate))
        self.item = RateLimitItemPerSecond(self.burst, seconds)
        self._limiter = MovingWindowRateLimiter(MemoryStorage())

    def allow(self, key: str) -> bool:
        """Count one hit for ``key``; False when it is over its limit."""
        return bool(self._limiter.hit(self.item, key))

    def retry_after(self, key: str) -> float:
        """Seconds until ``key`` may send again."""
        stats = self._limiter.get_window_stats(self.item, key)
        return max(0.0, float(stats.reset_time) - time.time())
