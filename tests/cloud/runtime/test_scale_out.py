"""The operations center as a deployment: 2 API + 2 ingest processes by the real CLI.

PostgreSQL + InfluxDB + Mosquitto from the harness. Three devices publish 5,000 events through
the broker; 300 of them belong to 3 abandoned-object situations, interleaved, so both ingest
processes update the incidents. One ingest process is killed (-9) mid-stream and restarted.
Every id is counted: stored once, exactly 3 incidents, every incident change on a WebSocket
of each API process, and each SLA escalation fired once, not once per API process. Every
change is dispatched from whichever process made it (dispatch.yaml in cloud.yaml): a signed
webhook gets each "created" and "sla_breached" once, and the MQTT incident topic every change
once, in order per incident (a repeat after the kill carries the same delivery id).
``cloud serve --workers 2``: two processes on one port, and one ``/metrics`` adding them up.
"""

import asyncio
import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import threading
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
import yaml
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session
from websockets.asyncio.client import connect

from cloud.db.base import make_engine
from cloud.db.devices import Device
from cloud.db.ingest import SeenEvent
from cloud.db.ops import AuditEntry, Incident, IncidentEvent
from cloud.db.schema import prepare_schema
from cloud.dispatch.tables import Delivery, DeliveryStatus
from cloud.ops.keys import create_api_key
from cloud.services.influxd import Influxd
from cloud.services.ports import free_port
from cloud.settings import InfluxSettings, StoreSettings
from cloud.store import build_store
from cloud.store.base import EventQuery
from shared.clock import utcnow
from shared.events import Event, EventKind
from shared.topics import Channel
from tests.cloud.ingest.conftest import eventually
from tests.cloud.ingest.publisher import Publisher
from tests.cloud.integrations.incident_readers import Reader, subscribe_incidents
from tests.cloud.integrations.servers import serve_in_thread
from tests.cloud.integrations.test_dispatch import SECRET, DepartmentSystem, make_department
from tests.cloud.ops.builders import delivery
from tests.cloud.ops.builders import event as situation_event
from tests.cloud.store.factories import make_event
from tests.conftest import DEVICES, DISPATCH_USER, INCIDENTS_USER, Broker

pytestmark = [pytest.mark.services, pytest.mark.slow]

TOTAL = 5000
PER_SITUATION = 100
REQUESTS = 200
HEALTHZ = {"method": "GET", "route": "/healthz", "status": "200"}
Samples = list[tuple[str, dict[str, str], float]]
RULES = """
departments: [{id: civil-protection, name: Civil protection}]
rules:
  - name: abandoned-object
    kinds: [abandoned_object]
    department: civil-protection
    severity: high
    sla: {ack_minutes: 0.1}
    dedup_window_s: 1800
"""


@dataclass
class Stack:
    config: Path
    logs: Path
    procs: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)

    def start(self, name: str, *args: str) -> None:
        with (self.logs / f"{name}.log").open("ab") as out:
            self.procs[name] = subprocess.Popen(
                [sys.executable, "-m", "cityops", "cloud", *args, "-c", str(self.config)],
                stdout=out,
                stderr=subprocess.STDOUT,
                env={**os.environ, "PYTHONUNBUFFERED": "1"},
            )

    def log(self, name: str) -> str:
        path = self.logs / f"{name}.log"
        return path.read_text() if path.exists() else ""

    def count(self, name: str, pattern: str) -> int:
        return len(re.findall(pattern, self.log(name)))

    def stop_all(self) -> None:
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in self.procs.values():
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(10)


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[Stack]:
    logs = tmp_path / "logs"
    logs.mkdir()
    running = Stack(config=tmp_path / "cloud.yaml", logs=logs)
    yield running
    running.stop_all()


def _stream() -> list[Event]:
    """5,000 events of 3 devices; every 16th belongs to one of 3 situations (one per device)."""
    events: list[Event] = []
    situation = 0
    for n in range(TOTAL):
        device = DEVICES[n % 3]
        if n % 16 == 0 and situation < 3 * PER_SITUATION:
            device = DEVICES[situation % 3]
            events.append(situation_event(EventKind.ABANDONED_OBJECT, device_id=device, track_id=7))
            situation += 1
        else:
            events.append(make_event(device))
    assert situation == 3 * PER_SITUATION
    return events


async def _watch(url: str, key: str, got: list[dict[str, object]], ready: asyncio.Event) -> None:
    async with connect(
        f"{url}/api/v1/live/ws?type=incident", additional_headers={"Authorization": f"Bearer {key}"}
    ) as ws:
        ready.set()
        async for frame in ws:
            got.append(json.loads(frame))  # noqa: PERF401 - read while it streams


def _publish(events: list[Event], broker: Broker, kill: Callable[[], None] | None = None) -> None:
    """Each device publishes its own events with its own credentials (ACL: only as itself)."""
    pubs = {d: Publisher(broker.host, broker.port, d, f"{d}-pw") for d in DEVICES}
    try:
        for n, e in enumerate(events):
            pubs[e.device_id].send(e, Channel.EVENT)
            if kill is not None and n == len(events) // 3:
                kill()
        for pub in pubs.values():
            pub.flush(60)
    finally:
        for pub in pubs.values():
            pub.close()


def _dispatch_yaml(path: Path, department_url: str, broker: Broker) -> Path:
    routes = [
        {  # default changes: created, dispatched, sla_breached, resolved, false_alarm
            "id": "civil-protection-orders",
            "departments": ["civil-protection"],
            "target": {
                "type": "webhook",
                "url": f"{department_url}/work-orders",
                "secret_env": "TEST_DEPT_SECRET",
                "timeout_s": 2,
            },
        },
        {
            "id": "home-assistant",
            "departments": ["*"],
            "changes": ["created", "attached", "sla_breached"],
            "target": {
                "type": "mqtt",
                "host": broker.host,
                "port": broker.service_port,
                "username": DISPATCH_USER,
                "password_env": "TEST_DISPATCH_PW",
                "timeout_s": 2,
            },
        },
    ]
    path.write_text(yaml.safe_dump({"poll_s": 0.5, "backoff_initial_s": 0.2, "routes": routes}))
    return path


@pytest.fixture
def department() -> Iterator[tuple[str, DepartmentSystem]]:
    app, state = make_department()
    with serve_in_thread(app) as url:
        yield url, state


@pytest.fixture
def home_assistant(mosquitto: Broker) -> Iterator[Reader]:
    reader = subscribe_incidents(mosquitto, INCIDENTS_USER)
    yield reader
    reader.close()


async def test_two_api_and_two_ingest_processes_lose_and_double_nothing(
    stack: Stack,
    mosquitto: Broker,
    *,
    influxd: Influxd,
    influx_db: str,
    postgres_db: str,
    tmp_path: Path,
    department: tuple[str, DepartmentSystem],
    home_assistant: Reader,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    rules = tmp_path / "rules.yaml"
    rules.write_text(RULES)
    monkeypatch.setenv("TEST_DEPT_SECRET", SECRET)
    monkeypatch.setenv("TEST_DISPATCH_PW", mosquitto.users[DISPATCH_USER])
    dispatch = _dispatch_yaml(tmp_path / "dispatch.yaml", department[0], mosquitto)
    influx = StoreSettings(
        kind="influx", influx=InfluxSettings(url=influxd.url, database=influx_db)
    )
    ports = [free_port(), free_port()]
    stack.config.write_text(
        yaml.safe_dump(
            {
                "database_url": postgres_db,
                "mqtt": {
                    "host": mosquitto.host,
                    "port": mosquitto.service_port,
                    "username": "cityops-ingest",
                    "password": "ingest-pw",
                    "client_id": f"ingest-{tmp_path.name}"[:40],
                },
                "store": influx.model_dump(mode="json"),
                "integrations": {"dispatch": str(dispatch)},
                "ingest": {
                    "batch_size": 500,
                    "batch_interval_s": 0.05,
                    "share_group": f"g-{tmp_path.name}"[:60],
                    "session_expiry_s": 300,
                    "retry_initial_s": 0.1,
                    "retry_max_s": 1.0,
                },
                "api": {
                    "rules_path": str(rules),
                    "sla_check_interval_s": 0.3,
                    "mqtt": {
                        "host": mosquitto.host,
                        "port": mosquitto.service_port,
                        "username": "cityops-api",
                        "password": "api-pw",
                    },
                },
            }
        )
    )
    engine = make_engine(postgres_db)
    prepare_schema(engine)
    with Session(engine) as session:
        for device in DEVICES:  # provisioned: in the registry, with broker credentials
            session.add(Device(id=device, site=f"site {device}", device_type="raspberrypi5"))
        session.commit()
        key = create_api_key(session, name="console", role="admin", departments=["*"])
    store = build_store(influx)
    try:
        for n in (0, 1):
            stack.start(f"ingest-{n}", "ingest", "--instance", str(n))
        for n, port in enumerate(ports):
            stack.start(f"api-{n}", "serve", "--no-ingest", "--port", str(port))

        async def up() -> bool:
            ingest = all(stack.count(f"ingest-{n}", "ingest subscribed") >= 1 for n in (0, 1))
            live = all(stack.count(f"api-{n}", "live fan-out: listening") >= 1 for n in (0, 1))
            return ingest and live

        await eventually(up, 90, "2 ingest processes subscribed, 2 API processes listening")
        # A second process with the same --instance is refused, naming the field.
        clash = await asyncio.to_thread(
            subprocess.run,
            [
                sys.executable,
                "-m",
                "cityops",
                "cloud",
                "ingest",
                "-i",
                "1",
                "-c",
                str(stack.config),
            ],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert clash.returncode == 2
        assert "mqtt.client_id" in clash.stderr
        assert "--instance" in clash.stderr

        got: list[list[dict[str, object]]] = [[], []]
        watchers = []
        for n, port in enumerate(ports):
            ready = asyncio.Event()
            watchers.append(
                asyncio.create_task(_watch(f"ws://127.0.0.1:{port}", key, got[n], ready))
            )
            await asyncio.wait_for(ready.wait(), 30)

        events = _stream()
        await asyncio.to_thread(_publish, events[:2000], mosquitto)

        async def stored() -> int:
            return sum(c.count for c in await store.count_events(EventQuery(), "device_id"))

        await eventually(lambda: _at_least(stored, 2000), 60, "the first 2,000 events stored")
        victim = stack.procs["ingest-0"]
        killed = threading.Event()

        def kill() -> None:
            victim.send_signal(signal.SIGKILL)
            killed.set()

        await asyncio.to_thread(_publish, events[2000:], mosquitto, kill)
        assert killed.is_set()
        victim.wait(10)
        stack.start("ingest-0", "ingest", "--instance", "0")  # same instance: its session back
        await eventually(lambda: _at_least(stored, TOTAL), 120, f"all {TOTAL} events stored")

        situation_ids = {e.id for e in events if e.kind is EventKind.ABANDONED_OBJECT}

        def changes_seen(n: int) -> set[str]:
            return {
                str(m["data"]["detail"]["event_id"])  # type: ignore[index]
                for m in got[n]
                if "event_id" in m["data"]["detail"]  # type: ignore[index]
            }

        async def all_changes() -> bool:
            return all(changes_seen(n) >= situation_ids for n in (0, 1))

        await eventually(all_changes, 60, "every incident change on both WebSockets")

        def breaches() -> int:
            with Session(engine) as session:
                return int(
                    session.scalar(
                        select(func.count()).where(AuditEntry.action == "incident.sla_breached")
                    )
                    or 0
                )

        async def three_breaches() -> bool:
            return breaches() >= 3

        await eventually(three_breaches, 60, "the 3 ack deadlines to pass")
        await asyncio.sleep(1.5)  # 5 more SLA rounds in each API process
        assert breaches() == 3  # once per incident, not once per API process

        assert await stored() == TOTAL
        with Session(engine) as session:
            assert session.scalar(select(func.count()).select_from(SeenEvent)) == TOTAL
            incidents = session.scalars(select(Incident)).all()
            assert len(incidents) == 3
            assert sorted(i.event_count for i in incidents) == [PER_SITUATION] * 3
            linked = session.scalars(select(IncidentEvent.event_id)).all()
            assert sorted(linked) == sorted(situation_ids)
        for n in (0, 1):
            incident_changes = [m for m in got[n] if m["type"] == "incident"]
            kinds = [m["data"]["type"] for m in incident_changes]  # type: ignore[index]
            assert kinds.count("created") == 3
            assert kinds.count("attached") == 3 * PER_SITUATION - 3
            assert kinds.count("sla_breached") == 3
            assert len(incident_changes) == 3 * PER_SITUATION + 3  # nothing twice
        await _check_dispatch(engine, department[1], home_assistant, stack)
        for name in stack.procs:
            assert "Traceback" not in stack.log(name)
            assert "ingest-pw" not in stack.log(name)  # the password never reaches a log
        for watcher in watchers:
            watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await watcher
    finally:
        await store.close()
        engine.dispose()
    stack.stop_all()
    for name, proc in stack.procs.items():
        # uvicorn re-raises SIGTERM after its graceful shutdown: -15 is its clean exit.
        assert proc.returncode in {0, -signal.SIGTERM}, (name, stack.log(name)[-2000:])
    for n in (0, 1):
        assert "Application shutdown complete" in stack.log(f"api-{n}")
        # Both ingest processes took a share of the stream (every 16th event is an incident's):
        # the restarted ingest-0 and ingest-1 each stored events and ran the incident step.
        stored_by = [int(x) for x in re.findall(r"stored_events=(\d+)", stack.log(f"ingest-{n}"))]
        assert stored_by, stack.log(f"ingest-{n}")[-2000:]
        assert stored_by[-1] > 200


async def _check_dispatch(
    engine: Engine, dept: DepartmentSystem, reader: Reader, stack: Stack
) -> None:
    """Every change dispatched once per route, from the processes that made them."""

    def settled() -> bool:
        with Session(engine) as session:
            rows = session.scalars(select(Delivery)).all()
        return len(rows) == 6 + 3 * PER_SITUATION + 3 and all(
            r.status == DeliveryStatus.DELIVERED.value for r in rows
        )

    await eventually(_sync(settled), 90, "every delivery delivered")
    with Session(engine) as session:
        rows = session.scalars(select(Delivery).order_by(Delivery.id)).all()
    by_route: dict[str, list[Delivery]] = {}
    for row in rows:
        by_route.setdefault(row.route_id, []).append(row)
    webhook = by_route["civil-protection-orders"]
    assert sorted(r.change_type for r in webhook) == ["created"] * 3 + ["sla_breached"] * 3
    assert len({(r.incident_id, r.change_type) for r in webhook}) == 6  # one per change
    assert {n["change"] for n in dept.received} == {"created", "sla_breached"}
    assert set(dept.delivery_ids) == {r.id for r in webhook}  # repeats: same id, dropped
    mqtt = by_route["home-assistant"]
    await eventually(_sync(lambda: set(reader.delivery_ids()) >= {r.id for r in mqtt}), 30)
    assert set(reader.delivery_ids()) == {r.id for r in mqtt}
    repeats = len(reader.delivery_ids()) - len(mqtt)
    assert repeats <= 2  # at most a send cut short by the kill, sent again under its own id
    for incident_id in {r.incident_id for r in mqtt}:
        seen = [n["change"] for _, n, _ in reader.messages if n["incident"]["id"] == incident_id]
        # In order per incident: nothing before it opened (strict order: test_dispatch.py).
        assert seen[0] == "created"
        assert seen.count("attached") >= PER_SITUATION - 1
    # The ingest processes dispatch what they change (no API process needed for it).
    delivered = r"delivery \S+ to \S+: delivered"
    assert sum(stack.count(f"ingest-{n}", delivered) for n in (0, 1)) > 0


def _sync(check: Callable[[], bool]) -> Callable[[], Awaitable[bool]]:
    async def run() -> bool:
        return check()

    return run


async def _at_least(count: Callable[[], Awaitable[int]], n: int) -> bool:
    return await count() >= n


async def _serve_workers(stack: Stack, postgres_db: str, tmp_path: Path) -> tuple[int, set[int]]:
    """``cloud serve --no-ingest --workers 2`` on PostgreSQL: its port and workers, once up."""
    port = free_port()
    stack.config.write_text(
        yaml.safe_dump(
            {
                "database_url": postgres_db,
                "store": {"kind": "sqlite", "sqlite_path": str(tmp_path / "ts.sqlite")},
                "api": {"mqtt_enabled": False, "port": port},
            }
        )
    )
    stack.start("api", "serve", "--no-ingest", "--workers", "2")
    await eventually(lambda: _started(stack, 2), 90, "2 API worker processes started")
    pids = {int(p) for p in re.findall(r"Started server process \[(\d+)\]", stack.log("api"))}
    assert len(pids) == 2
    return port, pids


async def _started(stack: Stack, workers: int) -> bool:
    return stack.count("api", "Application startup complete") >= workers


async def test_serve_workers_runs_several_api_processes_on_one_port(
    stack: Stack, postgres_db: str, tmp_path: Path
) -> None:
    port, pids = await _serve_workers(stack, postgres_db, tmp_path)
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as http:
        for _ in range(20):
            assert (await http.get("/healthz")).status_code == 200
    stack.stop_all()
    assert stack.procs["api"].returncode in {0, -signal.SIGTERM}
    assert "Traceback" not in stack.log("api")
    for pid in pids:
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)  # no worker left behind


def _samples(text: str) -> Samples:
    return [
        (s.name, s.labels, s.value)
        for family in text_string_to_metric_families(text)
        for s in family.samples
    ]


def _value(samples: Samples, name: str, **labels: str) -> float | None:
    found = [v for n, got, v in samples if n == name and got == labels]
    assert len(found) <= 1, (name, labels, found)
    return found[0] if found else None


def _metrics_dirs(tmp: Path) -> list[Path]:
    return list(tmp.glob("cityops-metrics-*"))


def _per_worker(files: Path, route: str) -> dict[int, float]:
    """Requests to *route* counted in each worker's own file."""
    counts: dict[int, float] = {}
    for file in files.glob("counter_*.db"):
        pid = int(file.stem.split("_")[1])
        merged = MultiProcessCollector.merge([str(file)])  # type: ignore[no-untyped-call]
        counts[pid] = sum(
            s.value
            for metric in merged
            for s in metric.samples
            if s.name == "cityops_api_requests_total" and s.labels.get("route") == route
        )
    return counts


async def _get(port: int, path: str) -> httpx.Response:
    """On a new connection, so that either worker may take it."""
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as http:
        return await http.get(path)


async def _scrape(port: int) -> Samples:
    response = await _get(port, "/metrics")
    assert response.status_code == 200
    return _samples(response.text)


async def test_serve_workers_metrics_add_up_over_workers(
    stack: Stack, postgres_db: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TMPDIR", str(tmp_path))  # the server's metrics directory lands here
    port, pids = await _serve_workers(stack, postgres_db, tmp_path)
    engine = make_engine(postgres_db)
    with Session(engine) as session:
        session.add(Device(id="cam-1", site="harbour", device_type="raspberrypi5"))
        queued = utcnow()
        session.add_all(  # no route configured here: they stay as they are
            delivery("civil-protection-orders", status, created_at=queued)
            for status in (DeliveryStatus.PENDING, DeliveryStatus.DEAD)
        )
        session.commit()
    engine.dispose()
    orders = {"route": "civil-protection-orders"}

    for _ in range(REQUESTS // 10):
        got = await asyncio.gather(*(_get(port, "/healthz") for _ in range(10)))
        assert all(r.status_code == 200 for r in got)
    (files,) = _metrics_dirs(tmp_path)
    healthz = _per_worker(files, "/healthz")
    assert set(healthz) == pids
    assert all(n > 0 for n in healthz.values()), healthz  # both workers took requests
    assert sum(healthz.values()) == REQUESTS

    seen: list[float | None] = []
    for _ in range(60):  # until both workers have answered scrapes, at least 8 of them
        samples = await _scrape(port)
        seen.append(_value(samples, "cityops_api_requests_total", **HEALTHZ))
        # read at scrape time from the database and the answering process: once, no pid label
        assert _value(samples, "cityops_state_database_up") == 1
        assert _value(samples, "cityops_devices", site="harbour", state="never_seen") == 1
        assert _value(samples, "cityops_ingest_dead_letters", reason="schema") == 0
        assert _value(samples, "cityops_dispatch_deliveries", **orders, status="dead") == 1
        assert _value(samples, "cityops_dispatch_deliveries", **orders, status="pending") == 1
        oldest = _value(samples, "cityops_dispatch_oldest_pending_timestamp_seconds", **orders)
        assert oldest == queued.timestamp()
        assert len([n for n, _, _ in samples if n == "cityops_build_info"]) == 1
        assert _value(samples, "cityops_live_subscribers") == 0
        scrapes = _per_worker(files, "/metrics")
        if len(seen) >= 8 and len(scrapes) == 2 and all(scrapes.values()):
            break
    assert seen == [REQUESTS] * len(seen), (seen, _per_worker(files, "/metrics"))
    assert all(_per_worker(files, "/metrics").values())  # both workers answered scrapes

    # uvicorn replaces a killed worker: its counts stay, its live gauges go at the next scrape.
    victim = min(pids)
    os.kill(victim, signal.SIGKILL)
    await eventually(lambda: _started(stack, 3), 90, "uvicorn to start a replacement worker")
    assert (files / f"gauge_livesum_{victim}.db").exists()
    samples = await _scrape(port)
    assert _value(samples, "cityops_api_requests_total", **HEALTHZ) == REQUESTS
    assert (files / f"counter_{victim}.db").exists()
    assert not (files / f"gauge_livesum_{victim}.db").exists()
    assert _value(samples, "cityops_live_subscribers") == 0

    stack.stop_all()
    assert stack.procs["api"].returncode in {0, -signal.SIGTERM}
    assert "Traceback" not in stack.log("api")
    assert not files.exists()  # removed when the server stops
