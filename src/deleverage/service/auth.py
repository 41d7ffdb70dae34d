"""API keys, roles and per-key rate limits of the risk service.

A key is a random token (``dlv_`` + 32 random bytes, URL-safe base64) shown once when it is
created; the service stores only its SHA-256 digest. A presented key is hashed and looked up
by digest, and the digests are compared with :func:`hmac.compare_digest` (constant time).
SHA-256 without salt or stretching suffices because keys are 256-bit random tokens, not
passwords: there is nothing to guess.

Roles:

- ``admin``: everything (markets, accounts, keys, trades, marks, every account and stream);
- ``oracle``: post mark prices; read market data;
- ``feed``: submit trades (a venue's fill feed); read market data;
- ``account``: its own account only (reads, deposit, withdraw, its notification stream) and
  market data.

Rate limits are token buckets per key (:class:`RateLimiter`).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from dataclasses import dataclass
from enum import StrEnum

__all__ = ["KeyRing", "Principal", "RateLimiter", "Role", "hash_key", "new_key"]

KEY_PREFIX = "dlv_"


class Role(StrEnum):
    """What a key may do."""

    ADMIN = "admin"
    ORACLE = "oracle"
    FEED = "feed"
    ACCOUNT = "account"


@dataclass(frozen=True, slots=True)
class Principal:
    """The holder of a key: its role, its account (``account`` keys) and its digest."""

    role: Role
    account: int | None
    key_hash: str

    def may_read_account(self, account: int) -> bool:
        """Whether this key may read (and subscribe to) ``account``."""
        return self.role is Role.ADMIN or (self.role is Role.ACCOUNT and self.account == account)


def new_key() -> str:
    """A fresh random API key."""
    return KEY_PREFIX + secrets.token_urlsafe(32)


def hash_key(key: str) -> str:
    """Hex SHA-256 digest of a key (what the database stores)."""
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


class KeyRing:
    """The known keys' digests, in memory (loaded from and written to the storage)."""

    def __init__(self, entries: list[tuple[str, str, int | None]]) -> None:
        self._by_hash: dict[str, Principal] = {}
        for digest, role, account in entries:
            self.add(digest, Role(role), account)

    def add(self, digest: str, role: Role, account: int | None) -> Principal:
        """Remember a key digest."""
        principal = Principal(role=role, account=account, key_hash=digest)
        self._by_hash[digest] = principal
        return principal

    def __contains__(self, digest: str) -> bool:
        return digest in self._by_hash

    def has_role(self, role: Role) -> bool:
        """Whether any key has ``role``."""
        return any(p.role is role for p in self._by_hash.values())

    def authenticate(self, key: str | None) -> Principal | None:
        """The principal of a presented key, or None for a missing or unknown key."""
        if not key:
            return None
        digest = hash_key(key)
        found = self._by_hash.get(digest)
        if found is None or not hmac.compare_digest(found.key_hash, digest):
            return None
        return found


class RateLimiter:
    """Token buckets per key: ``rate`` tokens a second, at most ``burst`` saved up.

    Examples
    --------
    >>> limiter = RateLimiter(rate=1.0, burst=2)
    >>> [limiter.allow("k", now=0.0) for _ in range(3)]
    [True, True, False]
    >>> limiter.allow("k", now=1.0)
    True
    """

    def __init__(self, *, rate: float, burst: int) -> None:
        self.rate = float(rate)
        self.burst = float(burst)
        self._buckets: dict[str, tuple[float, float]] = {}

    def allow(self, key: str, *, now: float | None = None) -> bool:
        """Take one token from ``key``'s bucket; False when it is empty."""
        t = time.monotonic() if now is None else now
        tokens, last = self._buckets.get(key, (self.burst, t))
        tokens = min(self.burst, tokens + (t - last) * self.rate)
        if tokens < 1.0:
            self._buckets[key] = (tokens, t)
            return False
        self._buckets[key] = (tokens - 1.0, t)
        return True

    def retry_after(self, key: str) -> float:
        """Seconds until ``key``'s bucket holds a token again."""
        tokens, _ = self._buckets.get(key, (self.burst, 0.0))
        return max(0.0, (1.0 - tokens) / self.rate)
