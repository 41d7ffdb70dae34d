"""Prometheus metrics of the risk service (``GET /metrics``, prometheus_client).

One registry per service (so several apps in one process do not collide):

- ``deleverage_http_requests_total{method,route,status}`` and
  ``deleverage_http_request_duration_seconds{method,route}``: every HTTP request, by route
  template (``/v1/accounts/{account}``), never by raw path;
- ``deleverage_writes_total{outcome}``: ``committed``, ``refused`` (4xx, nothing changed),
  ``rolled_back`` (the engine rebuilt), ``replayed`` (an idempotent retry answered from the
  database);
- ``deleverage_notifications_total``, ``deleverage_journal_events``,
  ``deleverage_websocket_streams``, ``deleverage_rate_limited_total{who}``;
- ``deleverage_webhook_deliveries_total{outcome}``: ``delivered``, ``retried``, ``failed``,
  ``dropped``;
- ``deleverage_ready``: 1 while ``/ready`` answers 200.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

__all__ = ["Metrics"]


class Metrics:
    """The service's collectors, in their own registry."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.requests = Counter(
            "deleverage_http_requests", "HTTP requests", ["method", "route", "status"], registry=r
        )
        self.latency = Histogram(
            "deleverage_http_request_duration_seconds", "HTTP request duration",
            ["method", "route"], registry=r,
        )  # fmt: skip
        self.writes = Counter("deleverage_writes", "Writes by outcome", ["outcome"], registry=r)
        self.notifications = Counter(
            "deleverage_notifications", "Notifications committed and published", registry=r
        )
        self.journal_events = Gauge("deleverage_journal_events", "Journal rows", registry=r)
        self.streams = Gauge("deleverage_websocket_streams", "Open WebSocket streams", registry=r)
        self.rate_limited = Counter(
            "deleverage_rate_limited", "Requests refused with 429", ["who"], registry=r
        )
        self.webhooks = Counter(
            "deleverage_webhook_deliveries", "Webhook deliveries", ["outcome"], registry=r
        )
        self.ready = Gauge("deleverage_ready", "1 while the service is ready", registry=r)

    def render(self) -> bytes:
        """The exposition text."""
        return generate_latest(self.registry)
