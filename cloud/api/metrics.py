"""Prometheus metrics of the API, in a registry per app (no module-level collectors).

Names follow Prometheus conventions: counters end in ``_total``, durations are ``_seconds``.
The state gauges (devices, incidents, dead letters) are read at scrape time, see ``gauges.py``.
With ``cloud serve --workers N`` the counted metrics are added up over the workers, see
``multiproc.py``.
"""

import time
from collections.abc import Callable, Iterator, Sequence

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import Metric
from prometheus_client.registry import Collector
from sqlalchemy.orm import Session, sessionmaker
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from cloud.api.gauges import ConnectorCollector, StateCollector
from cloud.api.multiproc import all_workers, files_dir
from cloud.connectors.health import SourceHealthOut
from cloud.observability import register_build_info
from cloud.ops.clock import Clock
from cloud.ops.live import LiveHub
from cloud.ops.models import IncidentChange


class ApiMetrics:
    """What this process counts (``registry``) and what it reads at scrape time (``snapshot``).

    Counters, histograms and gauges go in ``registry``. With ``cloud serve --workers N``
    prometheus_client keeps their values in files shared by the workers and ``render`` adds
    them up; the gauges say how (``multiprocess_mode``). ``snapshot`` (build info, SQL state,
    connector health) is read from the answering process and rendered once.
    """

    def __init__(self, live: LiveHub, extra: Sequence[CollectorRegistry] = ()) -> None:
        self.registry = CollectorRegistry()
        self.snapshot = CollectorRegistry()
        self.extra = list(extra)
        self.files = files_dir()
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
        # Set by the hub as they change (set_function would not reach the other workers);
        # a worker that is gone has no connections left: livesum.
        live_subscribers = Gauge(
            "cityops_live_subscribers",
            "Open live-stream connections.",
            registry=self.registry,
            multiprocess_mode="livesum",
        )
        live_subscribers.set(live.subscriber_count)
        live.on_subscribers = live_subscribers.set
        live_messages = Counter(
            "cityops_live_messages", "Messages offered to the live stream.", registry=self.registry
        )
        live_messages.inc(live.published)
        live.on_offer = live_messages.inc
        register_build_info(self.snapshot, "api")
        self.auth_failures = Counter(
            "cityops_api_auth_failures",
            "Refused authentications by reason (missing, invalid, ticket) and whether delayed.",
            ["reason", "delayed"],
            registry=self.registry,
        )
        # Each worker throttles on its own; an address guessing at all of them is throttled in
        # each, so the largest count is the nearer one (a sum would count it once per worker).
        self.throttled_addresses = Gauge(
            "cityops_api_auth_throttled_addresses",
            "Client addresses whose failed authentications are being slowed down.",
            registry=self.registry,
            multiprocess_mode="livemax",
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
        self.snapshot.register(StateCollector(sessions, clock, silent_after_s))

    def watch_connectors(self, health: Callable[[], Sequence[SourceHealthOut]]) -> None:
        """Report the health of the integration hub's sources at each scrape."""
        self.snapshot.register(ConnectorCollector(health))

    async def on_incident(self, change: IncidentChange) -> None:
        self.incident_changes.labels(change.type.value, change.incident.department).inc()

    def render(self) -> bytes:
        counted = self.registry if self.files is None else all_workers(self.files)
        return generate_latest(_Merged([counted, self.snapshot, *self.extra]))


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


class RequestMetrics:
    """ASGI middleware: count and time every HTTP request by method, route template, status.

    Plain ASGI rather than ``@app.middleware("http")`` (Starlette's ``BaseHTTPMiddleware``),
    which wraps every response in a stream of its own: measurably slower on the hot reads.
    """

    def __init__(self, app: ASGIApp, metrics: ApiMetrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500  # unless the app starts a response

        async def send_and_note(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_and_note)
        finally:
            template = getattr(scope.get("route"), "path", "unmatched")
            self.metrics.requests.labels(scope["method"], template, str(status)).inc()
            self.metrics.latency.labels(template).observe(time.perf_counter() - started)
