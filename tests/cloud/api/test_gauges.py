"""Scrape-time gauges from the SQL state, the API's metric names, and their cardinality bound."""

import shutil
import subprocess
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import Engine, insert
from sqlalchemy import event as sa_event
from sqlalchemy.orm import sessionmaker

from cloud.api.app import add_metrics_registry, create_app
from cloud.api.gauges import DEVICE_STATES, ConnectorCollector, StateCollector
from cloud.connectors.health import SourceHealth
from cloud.db.base import make_engine
from cloud.db.devices import Device
from cloud.db.ingest import DeadLetter
from cloud.db.tables import create_all
from cloud.dispatch.config import DispatchConfig
from cloud.dispatch.tables import Delivery, DeliveryStatus
from cloud.ingest.metrics import IngestMetrics
from cloud.ops.clock import ManualClock
from cloud.services.ports import free_port
from shared.events import EventKind
from tests.cloud.api.conftest import make_settings
from tests.cloud.ops.builders import delivery, event
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


def webhook_route(route_id: str, department: str, url: str) -> dict[str, Any]:
    target = {"type": "webhook", "url": url, "secret_env": "GAUGES_DEPT_SECRET", "timeout_s": 2}
    return {"id": route_id, "departments": [department], "target": target}


async def test_dispatch_deliveries_not_delivered_by_route(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GAUGES_DEPT_SECRET", "department-secret")
    closed = f"http://127.0.0.1:{free_port()}/orders"  # nothing listens: every try fails
    dispatch = DispatchConfig.model_validate(
        {
            "max_attempts": 1,  # dead after the first failure
            "routes": [
                webhook_route("civil-orders", "civil-protection", closed),
                webhook_route("traffic-orders", "traffic-enforcement", closed),
            ],
        }
    )
    app = create_app(make_settings(tmp_path), dispatch=dispatch, background=False)
    ops, dispatcher = app.state.ops, app.state.ctx.runtime.dispatcher
    await ops.on_events([event(EventKind.ABANDONED_OBJECT, observed_at=T0)])
    assert await dispatcher.deliver_due() == 1  # refused by the closed port: dead
    for zone in ("bay", "bay-2"):  # two traffic incidents, not sent: pending
        parking = event(EventKind.ILLEGAL_PARKING, device_id="dev-b", zone_id=zone, observed_at=T0)
        await ops.on_events([parking])
    with app.state.sessions() as session:  # delivered long ago: the gauges leave it out
        session.add(delivery("archive", DeliveryStatus.DELIVERED, created_at=T0))
        session.commit()
    text = app.state.metrics.render().decode()

    def deliveries(route: str, status: str) -> float | None:
        return value(text, "cityops_dispatch_deliveries", route=route, status=status)

    assert deliveries("civil-orders", "dead") == 1
    assert deliveries("civil-orders", "pending") == 0
    assert deliveries("traffic-orders", "pending") == 2
    assert deliveries("traffic-orders", "dead") == 0
    dispatched = [k for k in samples(text) if k[0].startswith("cityops_dispatch_")]
    assert not [k for k in dispatched if ("route", "archive") in k[1]]
    assert {dict(k[1]).get("status") for k in dispatched} <= {"pending", "dead", None}
    pending = dispatcher.list_deliveries(DeliveryStatus.PENDING)
    assert [d.route_id for d in pending] == ["traffic-orders"] * 2
    oldest = "cityops_dispatch_oldest_pending_timestamp_seconds"
    assert (
        value(text, oldest, route="traffic-orders")
        == min(d.created_at for d in pending).timestamp()
    )
    assert value(text, oldest, route="civil-orders") is None  # nothing pending there


@pytest.mark.parametrize("database", ["sqlite", "postgresql"])
def test_dispatch_gauges_read_the_undelivered_through_the_due_index(
    database: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    """The delivered history grows for good; the scrape reads only pending and dead rows."""
    url = (
        f"sqlite:///{tmp_path / 'state.sqlite'}"
        if database == "sqlite"
        else request.getfixturevalue("postgres_db")
    )
    engine = make_engine(url)
    try:
        plan = _scrape_plan(engine, analyze=database == "postgresql")
    finally:
        engine.dispose()
    assert "ix_dispatch_due" in plan, plan
    assert "Seq Scan" not in plan, plan


def _scrape_plan(engine: Engine, *, analyze: bool) -> str:
    """Scrape 20,000 delivered and 2 undelivered deliveries; the plan of the dispatch query."""
    create_all(engine)
    row = {
        "target_type": "webhook",
        "incident_id": "i-1",
        "department": "civil-protection",
        "change_type": "created",
        "payload": "{}",
        "created_at": T0,
        "next_attempt_at": T0,
        "updated_at": T0,
    }
    with engine.begin() as conn:
        conn.execute(
            insert(Delivery),
            [
                {**row, "id": f"d-{i:06d}", "route_id": f"route-{i % 5}", "status": "delivered"}
                for i in range(20_000)
            ]
            + [
                {**row, "id": "p-1", "route_id": "route-1", "status": "pending"},
                {**row, "id": "x-1", "route_id": "route-2", "status": "dead"},
            ],
        )
        if analyze:  # PostgreSQL plans from statistics; autovacuum would gather them later
            conn.exec_driver_sql("ANALYZE dispatch_deliveries")
    statements: list[tuple[str, Any]] = []

    @sa_event.listens_for(engine, "before_cursor_execute")
    def keep(_c: Any, _cur: Any, statement: str, parameters: Any, _ctx: Any, _many: bool) -> None:
        if "dispatch_deliveries" in statement:
            statements.append((statement, parameters))

    registry = CollectorRegistry()
    registry.register(StateCollector(sessionmaker(engine), ManualClock(T0), 60))
    text = generate_latest(registry).decode()
    assert value(text, "cityops_dispatch_deliveries", route="route-1", status="pending") == 1
    assert value(text, "cityops_dispatch_deliveries", route="route-2", status="dead") == 1
    assert not [k for k in samples(text) if ("route", "route-3") in k[1]]  # delivered only
    ((statement, parameters),) = statements
    explain = "EXPLAIN QUERY PLAN " if engine.dialect.name == "sqlite" else "EXPLAIN "
    with engine.connect() as conn:
        return " ".join(str(r) for r in conn.exec_driver_sql(explain + statement, parameters))


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
