"""The ingestor's batch histogram exposes exactly what prometheus_client's Histogram would."""

from hypothesis import given
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry, Histogram, generate_latest

from cloud.ingest.metrics import LAG_BUCKETS, IngestMetrics

NAME = "cityops_ingest_event_lag_seconds"


def _lines(registry: CollectorRegistry) -> list[str]:
    return [
        line
        for line in generate_latest(registry).decode().splitlines()
        if line.startswith(NAME + "_") and "_created" not in line
    ]


@given(st.lists(st.floats(min_value=-5, max_value=10_000, allow_nan=False), max_size=200))
def test_batch_histogram_matches_prometheus_client(lags: list[float]) -> None:
    ours = IngestMetrics()
    ours.observe_lags(lags)
    reference = CollectorRegistry()
    histogram = Histogram(NAME, "x", buckets=LAG_BUCKETS, registry=reference)
    for lag in lags:
        histogram.observe(max(0.0, lag))
    assert _lines(ours.registry) == _lines(reference)
