"""Notification fan-out of the risk service: one queue per WebSocket client.

A notification is a JSON object::

    {"seq": 42, "ts_ns": 1764000000000000000, "kind": "liquidation", "account": 7,
     "market": "BTCUSDT", "data": {...}}

``seq`` is global and increasing; notifications are stored (:mod:`deleverage.service.storage`)
before they are published, so a client that reconnects with the last ``seq`` it saw receives
what it missed from the database, then the live stream, with no gap and no repeat.

An account's stream carries its own notifications (``account`` equal to it) and the
market-wide ones (``account`` null: insurance-fund alerts, circuit breakers); an admin's stream
carries everything, or one account's when it asks for one. A client whose queue fills up (it
reads slower than notifications arrive) is dropped from the hub and its socket closed with
code 1013; nothing is lost, since it resumes from its last ``seq``.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Sequence
from typing import Any

__all__ = ["Hub", "Subscriber", "encode"]


def encode(notification: dict[str, Any]) -> str:
    """The JSON text sent for one notification."""
    return json.dumps(notification, separators=(",", ":"), allow_nan=False)


class Subscriber:
    """One client's queue of (seq, JSON text) pairs and what it subscribed to.

    ``account`` None with ``everything`` True: every notification (admin).
    """

    def __init__(self, *, account: int | None, everything: bool, maxsize: int) -> None:
        self.account = account
        self.everything = everything and account is None
        self.queue: asyncio.Queue[tuple[int, str]] = asyncio.Queue(maxsize=maxsize)
        self.overflowed = False
        self.closed: str | None = None

    def close(self, reason: str) -> None:
        """Ask the stream to close (its key was revoked): wakes a waiting reader."""
        self.closed = reason
        try:
            self.queue.put_nowait((-1, ""))
        except asyncio.QueueFull:
            self.overflowed = True

    def offer(self, seq: int, text: str) -> bool:
        """Queue one message; False (and ``overflowed``) when the queue is full."""
        try:
            self.queue.put_nowait((seq, text))
        except asyncio.QueueFull:
            self.overflowed = True
            return False
        return True


class Hub:
    """The live subscribers, indexed by account, and the fan-out of notifications."""

    def __init__(self) -> None:
        self._by_account: dict[int, set[Subscriber]] = {}
        self._everything: set[Subscriber] = set()
        self._all: set[Subscriber] = set()

    def __len__(self) -> int:
        return len(self._all)

    def subscribe(self, *, account: int | None, everything: bool, maxsize: int) -> Subscriber:
        """Register a client; it receives every notification published from now on."""
        sub = Subscriber(account=account, everything=everything, maxsize=maxsize)
        self._all.add(sub)
        if sub.account is not None:
            self._by_account.setdefault(sub.account, set()).add(sub)
        elif sub.everything:
            self._everything.add(sub)
        return sub

    def unsubscribe(self, sub: Subscriber) -> None:
        """Forget a client (idempotent)."""
        self._all.discard(sub)
        self._everything.discard(sub)
        if sub.account is not None:
            subs = self._by_account.get(sub.account)
            if subs is not None:
                subs.discard(sub)
                if not subs:
                    del self._by_account[sub.account]

    def publish(self, notifications: Sequence[dict[str, Any]]) -> int:
        """Queue each notification for every client that wants it; return messages queued."""
        queued = 0
        dropped: list[Subscriber] = []
        for note in notifications:
            account = note["account"]
            if account is None:
                targets: set[Subscriber] | list[Subscriber] = self._all
            else:
                targets = list(self._everything) + list(self._by_account.get(account, ()))
            if not targets:
                continue
            text = encode(note)  # only for notifications someone listens to
            for sub in targets:
                if sub.overflowed:
                    continue
                if sub.offer(note["seq"], text):
                    queued += 1
                else:
                    dropped.append(sub)
        for sub in dropped:
            self.unsubscribe(sub)
        return queued
