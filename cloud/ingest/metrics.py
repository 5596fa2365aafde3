"""Prometheus metrics of one ingestor, on a registry of its own (no module-level state)."""

from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

BATCH_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)


@dataclass(frozen=True, slots=True)
class IngestStats:
    """Plain counts since start, for tests, logs and ``cityops cloud ingest`` output."""

    received: int
    stored_events: int
    stored_telemetry: int
    duplicates: int
    rejected: dict[str, int]
    batches: int
    store_retries: int
    hook_errors: int


@dataclass
class IngestMetrics:
    registry: CollectorRegistry = field(
        default_factory=lambda: CollectorRegistry(auto_describe=True)
    )

    def __post_init__(self) -> None:
        r = self.registry
        self.received = Counter(
            "cityops_ingest_received", "Messages taken off the broker.", ["channel"], registry=r
        )
        self.stored = Counter(
            "cityops_ingest_stored", "Items written to the store.", ["kind"], registry=r
        )
        self.rejected = Counter(
            "cityops_ingest_rejected", "Messages refused, by reason.", ["reason"], registry=r
        )
        self.duplicates = Counter(
            "cityops_ingest_duplicates", "Events whose id was already stored.", registry=r
        )
        self.batch_seconds = Histogram(
            "cityops_ingest_batch_seconds",
            "From the first message of a batch to its acknowledgement.",
            buckets=BATCH_BUCKETS,
            registry=r,
        )
        self.lag = Gauge(
            "cityops_ingest_lag_seconds",
            "Now minus observed_at of the newest event of the last stored batch.",
            registry=r,
        )
        self.pending = Gauge(
            "cityops_ingest_pending_messages", "Messages received and not yet stored.", registry=r
        )
        self.store_up = Gauge(
            "cityops_ingest_store_up", "1 when the last store write succeeded.", registry=r
        )
        self.store_retries = Counter(
            "cityops_ingest_store_retries", "Store writes retried after a failure.", registry=r
        )
        self.hook_errors = Counter(
            "cityops_ingest_hook_errors", "Hooks that raised (events stay stored).", registry=r
        )
        self.confirmed = Counter(
            "cityops_ingest_confirmed",
            "Event ids confirmed to their device after the batch was committed (EventAck).",
            registry=r,
        )
        self._counts: dict[str, int] = {}
        self._rejected: dict[str, int] = {}

    def _add(self, name: str, n: int) -> None:
        self._counts[name] = self._counts.get(name, 0) + n

    def count_received(self, channel: str, n: int) -> None:
        self.received.labels(channel).inc(n)
        self._add("received", n)

    def count_stored(self, kind: str, n: int) -> None:
        self.stored.labels(kind).inc(n)
        self._add(f"stored_{kind}", n)

    def count_rejected(self, reason: str, n: int = 1) -> None:
        self.rejected.labels(reason).inc(n)
        self._rejected[reason] = self._rejected.get(reason, 0) + n

    def count_duplicates(self, n: int) -> None:
        self.duplicates.inc(n)
        self._add("duplicates", n)

    def count_batch(self, seconds: float) -> None:
        self.batch_seconds.observe(seconds)
        self._add("batches", 1)

    def count_retry(self) -> None:
        self.store_retries.inc()
        self._add("store_retries", 1)

    def count_hook_error(self) -> None:
        self.hook_errors.inc()
        self._add("hook_errors", 1)

    def count_confirmed(self, n: int) -> None:
        self.confirmed.inc(n)

    def stats(self) -> IngestStats:
        c = self._counts
        return IngestStats(
            received=c.get("received", 0),
            stored_events=c.get("stored_event", 0),
            stored_telemetry=c.get("stored_telemetry", 0),
            duplicates=c.get("duplicates", 0),
            rejected=dict(self._rejected),
            batches=c.get("batches", 0),
            store_retries=c.get("store_retries", 0),
            hook_errors=c.get("hook_errors", 0),
        )
