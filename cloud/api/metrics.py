"""Prometheus metrics of the API, in a registry per app (no module-level collectors)."""

from collections.abc import Sequence

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from cloud.ops.live import LiveHub
from cloud.ops.models import IncidentChange


class ApiMetrics:
    def __init__(self, live: LiveHub, extra: Sequence[CollectorRegistry] = ()) -> None:
        self.registry = CollectorRegistry()
        self.extra = list(extra)
        self.requests = Counter(
            "cityops_api_requests",
            "HTTP requests by route template and status.",
            ["method", "route", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "cityops_api_request_seconds",
            "HTTP request latency by route template.",
            ["route"],
            registry=self.registry,
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5),
        )
        self.incident_changes = Counter(
            "cityops_incident_changes",
            "Incident changes by type (created, attached, sla_breached, ...).",
            ["type"],
            registry=self.registry,
        )
        live_subscribers = Gauge(
            "cityops_live_subscribers", "Open live-stream connections.", registry=self.registry
        )
        live_subscribers.set_function(lambda: float(live.subscriber_count))
        live_messages = Gauge(
            "cityops_live_messages", "Messages offered to the live stream.", registry=self.registry
        )
        live_messages.set_function(lambda: float(live.published))
        self.auth_failures = Counter(
            "cityops_api_auth_failures",
            "Refused authentications by reason (missing, invalid, ticket) and whether delayed.",
            ["reason", "delayed"],
            registry=self.registry,
        )
        self.throttled_addresses = Gauge(
            "cityops_api_auth_throttled_addresses",
            "Client addresses whose failed authentications are being slowed down.",
            registry=self.registry,
        )
        self.stream_closes = Counter(
            "cityops_live_closed_by_recheck",
            "Live streams closed because their credential was revoked, expired or narrowed.",
            ["reason"],
            registry=self.registry,
        )

    async def on_incident(self, change: IncidentChange) -> None:
        self.incident_changes.labels(change.type.value).inc()

    def render(self) -> bytes:
        return b"".join(generate_latest(r) for r in [self.registry, *self.extra])
