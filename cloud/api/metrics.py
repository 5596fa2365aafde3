"""Prometheus metrics of the API, in a registry per app (no module-level collectors).

Names follow Prometheus conventions: counters end in ``_total``, durations are ``_seconds``.
The state gauges (devices, incidents, dead letters) are read at scrape time, see ``gauges.py``.
"""

from collections.abc import Callable, Iterator, Sequence

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, Metric
from prometheus_client.registry import Collector
from sqlalchemy.orm import Session, sessionmaker

from cloud.api.gauges import ConnectorCollector, StateCollector
from cloud.connectors.health import SourceHealthOut
from cloud.observability import register_build_info
from cloud.ops.clock import Clock
from cloud.ops.live import LiveHub
from cloud.ops.models import IncidentChange


class _LiveMessages(Collector):
    """The live hub's running count as a counter (it only rises)."""

    def __init__(self, live: LiveHub) -> None:
        self.live = live

    def collect(self) -> Iterator[Metric]:
        yield CounterMetricFamily(
            "cityops_live_messages",
            "Messages offered to the live stream.",
            value=float(self.live.published),
        )


class ApiMetrics:
    def __init__(self, live: LiveHub, extra: Sequence[CollectorRegistry] = ()) -> None:
        self.registry = CollectorRegistry()
        self.extra = list(extra)
        self.requests = Counter(
            "cityops_api_requests_total",
            "HTTP requests by route template and status.",
            ["method", "route", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "cityops_api_request_duration_seconds",
            "HTTP request latency by route template.",
            ["route"],
            registry=self.registry,
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5),
        )
        self.incident_changes = Counter(
            "cityops_incident_changes_total",
            "Incident changes by type (created, attached, sla_breached, ...) and department.",
            ["type", "department"],
            registry=self.registry,
        )
        live_subscribers = Gauge(
            "cityops_live_subscribers", "Open live-stream connections.", registry=self.registry
        )
        live_subscribers.set_function(lambda: float(live.subscriber_count))
        self.registry.register(_LiveMessages(live))
        register_build_info(self.registry, "api")
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

    def watch_state(
        self, sessions: sessionmaker[Session], clock: Clock, silent_after_s: float
    ) -> None:
        """Report devices, open incidents and dead letters from the SQL state at each scrape."""
        self.registry.register(StateCollector(sessions, clock, silent_after_s))

    def watch_connectors(self, health: Callable[[], Sequence[SourceHealthOut]]) -> None:
        """Report the health of the integration hub's sources at each scrape."""
        self.registry.register(ConnectorCollector(health))

    async def on_incident(self, change: IncidentChange) -> None:
        self.incident_changes.labels(change.type.value, change.incident.department).inc()

    def render(self) -> bytes:
        return generate_latest(_Merged([self.registry, *self.extra]))


class _Merged(Collector):
    """Several registries as one exposition: a family both have (build info) is listed once."""

    def __init__(self, registries: Sequence[CollectorRegistry]) -> None:
        self.registries = registries

    def collect(self) -> Iterator[Metric]:
        families: dict[str, Metric] = {}
        for registry in self.registries:
            for family in registry.collect():
                if family.name in families:
                    families[family.name].samples.extend(family.samples)
                else:
                    families[family.name] = family
        return iter(families.values())
