"""Scrape-time gauges from the SQL state, the API's metric names, and their cardinality bound."""

import shutil
import subprocess
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import CollectorRegistry
from prometheus_client.parser import text_string_to_metric_families

from cloud.api.app import add_metrics_registry, create_app
from cloud.api.gauges import DEVICE_STATES, ConnectorCollector
from cloud.connectors.health import SourceHealth
from cloud.db.devices import Device
from cloud.db.ingest import DeadLetter
from cloud.ingest.metrics import IngestMetrics
from cloud.ops.clock import ManualClock
from shared.events import EventKind
from tests.cloud.api.conftest import make_settings
from tests.cloud.ops.builders import event
from tests.conftest import need

T0 = datetime(2026, 5, 4, 8, 0, tzinfo=UTC)
DOWN = {"outbox_depth": 42, "cameras": [{"camera_id": "c1", "state": "down"}]}


def samples(text: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def value(text: str, name: str, **labels: str) -> float | None:
    return samples(text).get((name, frozenset(labels.items())))


def add_devices(app: Any, now: datetime) -> None:
    seen = now - timedelta(seconds=10)
    with app.state.sessions() as session:
        session.add_all(
            [
                Device(id="cam-ok", site="baixa", device_type="rpi5", online=True, last_seen=seen),
                Device(
                    id="cam-down",
                    site="baixa",
                    device_type="rpi5",
                    online=True,
                    last_seen=seen,
                    last_telemetry=DOWN,
                    lat=38.71,
                    lon=-9.14,
                    department="civil-protection",
                ),
                Device(id="cam-off", site="cais", device_type="rpi5", online=False, last_seen=seen),
                Device(
                    id="cam-quiet",
                    site="cais",
                    device_type="rpi5",
                    online=True,
                    last_seen=now - timedelta(hours=1),
                ),
                Device(id="cam-new", site="cais", device_type="rpi5"),
                Device(id="cam-gone", site="cais", device_type="rpi5", revoked=True),
            ]
        )
        session.add(DeadLetter(received_at=now, topic="t", reason="schema", detail="", payload=""))
        session.commit()


async def test_devices_incidents_and_dead_letters_from_the_sql_state(tmp_path: Path) -> None:
    clock = ManualClock(T0)
    app = create_app(make_settings(tmp_path), clock=clock, background=False)
    ops = app.state.ops
    await ops.on_events([event(EventKind.ABANDONED_OBJECT, observed_at=T0)])
    await ops.on_events(
        [event(EventKind.ILLEGAL_PARKING, device_id="dev-b", zone_id="bay", observed_at=T0)]
    )
    clock.set(T0 + timedelta(minutes=3))  # past the 2-minute ack SLA of abandoned objects only
    await ops.check_sla()
    add_devices(app, clock.now())
    text = app.state.metrics.render().decode()

    assert value(text, "cityops_state_database_up") == 1
    by_state = {
        (site, state): value(text, "cityops_devices", site=site, state=state)
        for site in ("baixa", "cais")
        for state in DEVICE_STATES
    }
    assert by_state[("baixa", "ok")] == 1
    assert by_state[("baixa", "camera_down")] == 1
    assert by_state[("cais", "offline")] == 1
    assert by_state[("cais", "silent")] == 1
    assert by_state[("cais", "never_seen")] == 1
    assert by_state[("cais", "revoked")] == 1
    assert sum(v or 0 for v in by_state.values()) == 6

    def dev(name: str, device: str, site: str) -> float | None:
        return value(text, name, device=device, site=site)

    assert dev("cityops_device_online", "cam-off", "cais") == 0
    assert dev("cityops_device_online", "cam-down", "baixa") == 1
    assert dev("cityops_device_blind_spot", "cam-down", "baixa") == 1
    assert dev("cityops_device_blind_spot", "cam-quiet", "cais") == 1
    assert dev("cityops_device_blind_spot", "cam-ok", "baixa") == 0
    assert dev("cityops_device_cameras_down", "cam-down", "baixa") == 1
    assert dev("cityops_device_outbox_messages", "cam-down", "baixa") == 42
    seen = dev("cityops_device_last_seen_timestamp_seconds", "cam-ok", "baixa")
    assert seen == (clock.now() - timedelta(seconds=10)).timestamp()
    # never seen: only its info (for the map); revoked: nothing per device
    assert dev("cityops_device_online", "cam-new", "cais") is None
    assert not [k for k in samples(text) if ("device", "cam-gone") in k[1]]
    info = {
        "device": "cam-down",
        "site": "baixa",
        "device_type": "rpi5",
        "department": "civil-protection",
        "lat": "38.710000",
        "lon": "-9.140000",
    }
    assert value(text, "cityops_device_info", **info) == 1

    civil, police = "civil-protection", "traffic-enforcement"
    # the breach raised the abandoned object's severity one step (high → critical)
    open_civil = {"department": civil, "severity": "critical", "status": "open"}
    assert value(text, "cityops_incidents_open", **open_civil) == 1
    assert value(text, "cityops_incidents_sla_breached", department=civil, sla="ack") == 1
    assert value(text, "cityops_incidents_sla_breached", department=police, sla="ack") == 0
    opened = value(
        text,
        "cityops_incidents_oldest_open_timestamp_seconds",
        department=police,
        severity="medium",
    )
    assert opened == T0.timestamp()
    assert value(text, "cityops_incident_changes_total", type="sla_breached", department=civil) == 1
    assert value(text, "cityops_incident_changes_total", type="created", department=police) == 1
    assert value(text, "cityops_ingest_dead_letters", reason="schema") == 1
    assert value(text, "cityops_ingest_dead_letters", reason="replay") == 0
    assert value(text, "cityops_live_messages_total") is not None
    (build,) = [labels for name, labels in samples(text) if name == "cityops_build_info"]
    assert dict(build)["component"] == "api"
    assert set(dict(build)) == {"component", "version", "python_version"}


def test_connector_health_as_metrics() -> None:
    failing = SourceHealth("waste-partner", "rest_poll", "ext-waste")
    failing.records_total = 7
    failing.success(T0)
    failing.error("HTTP 503")
    failing.error("HTTP 503")
    fine = SourceHealth("citizen-app", "webhook", "ext-citizen")
    fine.success(T0)
    registry = CollectorRegistry()
    registry.register(ConnectorCollector(lambda: [failing.snapshot(T0), fine.snapshot(T0)]))

    def get(name: str, source: str, kind: str) -> float | None:
        return registry.get_sample_value(name, {"source": source, "type": kind})

    assert get("cityops_connector_up", "waste-partner", "rest_poll") == 0
    assert get("cityops_connector_up", "citizen-app", "webhook") == 1
    assert get("cityops_connector_consecutive_errors", "waste-partner", "rest_poll") == 2
    assert get("cityops_connector_errors_total", "waste-partner", "rest_poll") == 2
    assert get("cityops_connector_records_total", "waste-partner", "rest_poll") == 7
    assert get("cityops_connector_last_success_timestamp_seconds", "citizen-app", "webhook") == (
        T0.timestamp()
    )


def test_api_metrics_pass_promtool_check_metrics(tmp_path: Path) -> None:
    need(shutil.which("promtool") is not None, "promtool (apt-get install prometheus)")
    app = create_app(make_settings(tmp_path), background=False)
    add_devices(app, T0)
    # as `cityops cloud serve` without --no-ingest: the ingestor's registry on the same page
    add_metrics_registry(app, IngestMetrics().registry)
    text = app.state.metrics.render()
    result = subprocess.run(
        ["promtool", "check", "metrics"], input=text, capture_output=True, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr
    (build,) = [
        f for f in text_string_to_metric_families(text.decode()) if f.name == "cityops_build_info"
    ]
    assert sorted(s.labels["component"] for s in build.samples) == ["api", "ingest"]


@pytest.mark.parametrize("devices", [1000])
def test_per_device_series_stay_bounded(tmp_path: Path, devices: int) -> None:
    """Six series per device at most; the scrape of 1,000 devices is timed for the docs."""
    now = datetime.now(UTC)
    app = create_app(make_settings(tmp_path), background=False)
    with app.state.sessions() as session:
        session.add_all(
            Device(
                id=f"cam-{i:04d}",
                site=f"site-{i % 100}",
                device_type="rpi5",
                online=i % 10 != 0,
                last_seen=now,
                last_telemetry=DOWN if i % 25 == 0 else {"outbox_depth": 0, "cameras": []},
                lat=38.7,
                lon=-9.1,
            )
            for i in range(devices)
        )
        session.commit()
    started = time.perf_counter()
    text = app.state.metrics.render().decode()
    took = time.perf_counter() - started
    per_device = [k for k in samples(text) if any(label == "device" for label, _ in k[1])]
    assert len(per_device) <= 6 * devices
    assert len({k[0] for k in per_device}) == 6
    print(
        f"{devices} devices: {len(per_device)} per-device series, /metrics in {took * 1000:.0f} ms"
    )
