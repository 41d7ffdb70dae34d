"""Webhooks: notifications POSTed to configured URLs, signed, retried with backoff.

Each committed batch of notifications is sent to every URL as one JSON body
``{"notifications": [...]}`` (the objects the WebSocket stream carries) with headers:

- ``X-Deleverage-Timestamp``: seconds since the epoch when the attempt was signed;
- ``X-Deleverage-Signature``: ``sha256=`` + hex HMAC-SHA256 of ``"{timestamp}.{body}"`` under
  the shared secret (:func:`sign`). A receiver recomputes it over the raw body, compares in
  constant time and refuses stale timestamps (replays).

A 2xx answer delivers the batch. A timeout, a connection error, a 5xx, 408 or 429 is retried
up to ``webhook_max_attempts`` attempts in all, waiting ``webhook_backoff_s`` and doubling
(capped at 30 s); any other 4xx is final. Batches wait in a bounded in-memory queue (10,000);
a batch that fails or overflows is logged and counted, never blocks a write: notifications
are stored, so a receiver catches up with ``GET /v1/notifications?since=``.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import json
import time
from collections.abc import Sequence
from typing import Any

import httpx

from deleverage.service.logs import logger
from deleverage.service.metrics import Metrics
from deleverage.service.settings import ServiceSettings

__all__ = ["WebhookSender", "sign"]

MAX_BACKOFF_S = 30.0
QUEUE_SIZE = 10_000
_RETRY_STATUS = {408, 429}


def sign(secret: str, timestamp: int, body: bytes) -> str:
    """``sha256=`` + hex HMAC-SHA256 of ``b"{timestamp}." + body`` under ``secret``.

    Examples
    --------
    >>> sign("secret-of-16-chars", 1700000000, b'{"notifications":[]}')[:39]
    'sha256=7f04abd43648040a6a1580cd23a95357'
    """
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    return "sha256=" + mac.hexdigest()


class WebhookSender:
    """A background task delivering notification batches to the configured URLs."""

    def __init__(self, settings: ServiceSettings, metrics: Metrics) -> None:
        self.settings = settings
        self.metrics = metrics
        self.queue: asyncio.Queue[list[dict[str, Any]]] = asyncio.Queue(QUEUE_SIZE)
        self._task: asyncio.Task[None] | None = None

    @property
    def enabled(self) -> bool:
        """Whether any URL is configured."""
        return bool(self.settings.webhook_urls)

    def start(self) -> None:
        """Start delivering (call from the running event loop)."""
        if self.enabled:
            self._task = asyncio.get_running_loop().create_task(self._run())

    async def stop(self) -> None:
        """Stop delivering; batches still queued are dropped (they are stored)."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    def submit(self, notifications: Sequence[dict[str, Any]]) -> None:
        """Queue a committed batch (never blocks)."""
        if not self.enabled or not notifications:
            return
        try:
            self.queue.put_nowait(list(notifications))
        except asyncio.QueueFull:
            self.metrics.webhooks.labels("dropped").inc()
            logger.warning(
                "webhook queue full: batch dropped",
                extra={"first_seq": notifications[0]["seq"], "count": len(notifications)},
            )

    async def _run(self) -> None:
        async with httpx.AsyncClient(timeout=self.settings.webhook_timeout_s) as client:
            while True:
                batch = await self.queue.get()
                body = json.dumps(
                    {"notifications": batch}, separators=(",", ":"), allow_nan=False
                ).encode()
                for url in self.settings.webhook_urls:
                    await self._deliver(client, url, body, batch[0]["seq"])

    async def _deliver(self, client: httpx.AsyncClient, url: str, body: bytes, seq: int) -> None:
        secret = self.settings.webhook_secret or ""
        delay = self.settings.webhook_backoff_s
        attempts = self.settings.webhook_max_attempts
        for attempt in range(1, attempts + 1):
            stamp = int(time.time())
            headers = {
                "Content-Type": "application/json",
                "X-Deleverage-Timestamp": str(stamp),
                "X-Deleverage-Signature": sign(secret, stamp, body),
            }
            reason = ""
            try:
                response = await client.post(url, content=body, headers=headers)
                if response.is_success:
                    self.metrics.webhooks.labels("delivered").inc()
                    return
                reason = f"HTTP {response.status_code}"
                final = response.status_code < 500 and response.status_code not in _RETRY_STATUS
            except httpx.HTTPError as exc:
                reason, final = f"{type(exc).__name__}: {exc}", False
            log = {"url": url, "attempt": attempt, "first_seq": seq, "reason": reason}
            if final or attempt == attempts:
                self.metrics.webhooks.labels("failed").inc()
                logger.error("webhook delivery failed", extra=log)
                return
            self.metrics.webhooks.labels("retried").inc()
            logger.warning("webhook delivery retried", extra=log)
            await asyncio.sleep(delay)
            delay = min(MAX_BACKOFF_S, delay * 2)
