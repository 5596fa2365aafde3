"""REST polling (a real uvicorn partner API), the MQTT bridge (the real Mosquitto) and file drop."""

import asyncio
import contextlib
import json
import shutil
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiomqtt
import pytest
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from cloud.broker.certs import issue_cert, make_ca
from cloud.connectors.config import (
    FileDropSource,
    MqttBridgeSource,
    RestPollSource,
    SourcesConfig,
)
from cloud.connectors.file_drop import FileDrop
from cloud.connectors.hub import ConnectorHub
from cloud.connectors.mqtt_bridge import MqttBridge
from cloud.connectors.poller import PollError, RestPoller
from cloud.connectors.writer import StoreEventWriter
from cloud.ops.models import ChangeType
from cloud.services.mosquitto import TlsListener
from cloud.services.ports import free_port
from cloud.store.base import StoreUnavailableError
from shared.events import Event, EventKind, Severity
from shared.telemetry import Telemetry
from tests.cloud.integrations.conftest import PartnerBroker, Pipeline
from tests.cloud.integrations.servers import serve_in_thread
from tests.cloud.integrations.waits import eventually
from tests.conftest import need

BASE = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=1)
AIR_MAPPING = {
    "id": "reading_id",
    "time": "measured_at",
    "kind": {"const": "sensor_threshold"},
    "severity": {"path": "band", "map": {"poor": "medium", "very_poor": "high"}},
    "device": "station",
    "location": {"lat": "lat", "lon": "lon"},
    "summary": "PM2.5 {pm25} µg/m³ at {station}",
    "attributes": {"pm25_ugm3": "pm25"},
}


@dataclass
class PartnerApi:
    """An air-quality partner: 7 readings, 3 per page, a ``since`` cursor; fails the first call."""

    readings: list[dict[str, Any]]
    calls: list[dict[str, str]] = field(default_factory=list)
    fail_first: int = 1


def make_partner() -> tuple[FastAPI, PartnerApi]:
    state = PartnerApi(
        readings=[
            {
                "reading_id": f"r{n}",
                "measured_at": (BASE + timedelta(minutes=n)).isoformat(),
                "station": "Avenida" if n % 2 else "Olivais",
                "band": "very_poor" if n == 6 else "poor",
                "pm25": 40 + n,
                "lat": 38.72,
                "lon": -9.14,
            }
            for n in range(7)
        ]
    )
    app = FastAPI()

    @app.get("/v2/readings")
    async def readings(request: Request) -> JSONResponse:
        params = dict(request.query_params)
        state.calls.append(params)
        if state.fail_first > 0:
            state.fail_first -= 1
            return JSONResponse({"error": "maintenance"}, status_code=500)
        since = params.get("since")
        rows = [r for r in state.readings if since is None or r["measured_at"] > since]
        page = int(params.get("page", "1"))
        chunk = rows[(page - 1) * 3 : page * 3]
        return JSONResponse({"data": {"items": chunk}, "page": page})

    return app, state


@pytest.fixture
def partner() -> Iterator[tuple[str, PartnerApi]]:
    app, state = make_partner()
    with serve_in_thread(app) as url:
        yield url, state


def poll_source(url: str, tmp_path: Path) -> RestPollSource:
    source = SourcesConfig.model_validate(
        {
            "sources": [
                {
                    "id": "lisbon-air",
                    "type": "rest_poll",
                    "url": f"{url}/v2/readings?format=json",
                    "interval_s": 0.05,
                    "backoff_initial_s": 0.05,
                    "backoff_max_s": 0.2,
                    "records_path": "data.items",
                    "pagination": {"page_param": "page"},
                    "since_param": "since",
                    "cursor_path": "measured_at",
                    "state_dir": str(tmp_path / "state"),
                    "mapping": AIR_MAPPING,
                }
            ]
        }
    ).sources[0]
    assert isinstance(source, RestPollSource)
    return source


async def test_rest_poll_pages_cursor_backoff_and_incident(
    partner: tuple[str, PartnerApi], pipeline: Pipeline, tmp_path: Path
) -> None:
    url, state = partner
    source = poll_source(url, tmp_path)
    hub = ConnectorHub(SourcesConfig(sources=[source]), pipeline.writer)
    intake = hub.intakes["lisbon-air"]
    poller = RestPoller(source, intake)

    with pytest.raises(PollError, match="HTTP 500"):
        await poller.poll_once()
    assert intake.health.snapshot().state == "failing"

    assert await poller.poll_once() == 7
    assert [c.get("page") for c in state.calls[1:]] == ["1", "2", "3", "4"]
    assert {c.get("format") for c in state.calls} == {"json"}  # the URL's own query is kept
    assert poller.cursor == state.readings[-1]["measured_at"]
    health = intake.health.snapshot()
    assert health.state == "ok"
    assert health.events_total == 7
    assert health.lag_s is not None
    assert health.lag_s >= 3000

    # The cursor survives a restart: a new poller asks only for what is newer.
    state.readings.append(
        {**state.readings[-1], "reading_id": "r7", "measured_at": BASE.isoformat()}
    )
    restarted = RestPoller(source, intake)
    assert restarted.cursor == poller.cursor
    assert await restarted.poll_once() == 0
    assert state.calls[-1]["since"] == poller.cursor

    created = [c for c in pipeline.changes if c.type is ChangeType.CREATED]
    assert {c.incident.device_id for c in created} == {
        "ext-lisbon-air-avenida",
        "ext-lisbon-air-olivais",
    }
    assert {c.incident.department for c in created} == {"environment"}
    assert created[0].incident.kind is EventKind.SENSOR_THRESHOLD


async def test_rest_poll_run_backs_off_then_recovers(
    partner: tuple[str, PartnerApi], pipeline: Pipeline, tmp_path: Path
) -> None:
    url, state = partner
    state.fail_first = 2
    source = poll_source(url, tmp_path)
    hub = ConnectorHub(SourcesConfig(sources=[source]), pipeline.writer)
    await hub.start()
    try:
        await eventually(lambda: hub.intakes["lisbon-air"].health.events_total >= 7)
    finally:
        await hub.stop()
    health = hub.health()[0]
    assert health.errors_total == 2
    assert health.state == "ok"


# ------------------------------------------------------------------------------ MQTT bridge


@contextlib.asynccontextmanager
async def running(bridge: MqttBridge) -> AsyncIterator[None]:
    task = asyncio.create_task(bridge.run())
    try:
        async with asyncio.timeout(10):
            await bridge.connected.wait()
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def test_mqtt_bridge_partner_topic_tree(
    partner_broker: PartnerBroker,
    pipeline: Pipeline,
    monkeypatch: pytest.MonkeyPatch,
    request: pytest.FixtureRequest,
) -> None:
    root = f"partner/{request.node.name[:40]}"
    mosquitto = partner_broker
    monkeypatch.setenv("TEST_PARTNER_MQTT_PW", mosquitto.users["bridge"])
    source = MqttBridgeSource.model_validate(
        {
            "id": "carris",
            "type": "mqtt_bridge",
            "host": mosquitto.host,
            "port": mosquitto.port,
            "username": "bridge",
            "password_env": "TEST_PARTNER_MQTT_PW",
            "topics": [f"{root}/+/alerts"],
            "mapping": {
                "id": "alert_id",
                "time": {"path": "ts", "format": "epoch_ms"},
                "kind": {"path": "code", "map": {"BLOCKED_STOP": "illegal_parking"}},
                "severity": {"path": "code", "map": {"BLOCKED_STOP": "high"}},
                "zone_id": "_topic_parts.2",
                "summary": "bus stop blocked on line {line}",
            },
        }
    )
    hub = ConnectorHub(SourcesConfig(sources=[source]), pipeline.writer)
    intake = hub.intakes["carris"]
    bridge = MqttBridge(source, intake)
    ts = int((datetime.now(UTC) - timedelta(seconds=30)).timestamp() * 1000)
    alert = {"alert_id": "A-77", "ts": ts, "code": "BLOCKED_STOP", "line": "728"}
    async with (
        running(bridge),
        aiomqtt.Client(
            mosquitto.host,
            mosquitto.port,
            username="partner",
            password=mosquitto.users["partner"],
        ) as partner,
    ):
        await partner.publish(f"{root}/stop-4021/alerts", json.dumps(alert), qos=1)
        await partner.publish(f"{root}/stop-4021/alerts", b"not json", qos=1)
        await partner.publish(f"{root}/stop-4021/alerts", json.dumps(alert), qos=1)
        await partner.publish(f"{root}/stop-4021/other", json.dumps(alert), qos=1)
        await eventually(lambda: intake.health.records_total >= 3)
    health = intake.health.snapshot()
    assert (health.events_total, health.duplicates_total, health.rejected_total) == (1, 1, 1)
    created = [c for c in pipeline.changes if c.type is ChangeType.CREATED]
    assert len(created) == 1
    incident = created[0].incident
    assert incident.department == "traffic-enforcement"
    assert incident.zone_id == "stop-4021"
    assert incident.severity is Severity.HIGH
    stored = await pipeline.store.get_event(incident.first_event_id)
    assert stored is not None
    assert stored.summary == "bus stop blocked on line 728"


async def test_mqtt_bridge_reconnects_after_broker_restart(
    partner_broker_factory: Callable[[], PartnerBroker],
    pipeline: Pipeline,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    broker = partner_broker_factory()
    monkeypatch.setenv("TEST_PARTNER_MQTT_PW", broker.users["bridge"])
    source = MqttBridgeSource.model_validate(
        {
            "id": "partner",
            "type": "mqtt_bridge",
            "host": broker.host,
            "port": broker.port,
            "username": "bridge",
            "password_env": "TEST_PARTNER_MQTT_PW",
            "topics": ["partner/#"],
            "reconnect_initial_s": 0.1,
            "reconnect_max_s": 0.5,
            "mapping": {"time": "t"},
        }
    )
    hub = ConnectorHub(SourcesConfig(sources=[source]), pipeline.writer)
    bridge = MqttBridge(source, hub.intakes["partner"])
    async with running(bridge):
        broker.server.stop()
        await eventually(lambda: not bridge.connected.is_set())
        broker.server.start()
        async with asyncio.timeout(15):
            await bridge.connected.wait()
        async with aiomqtt.Client(
            broker.host, broker.port, username="partner", password=broker.users["partner"]
        ) as partner:
            now = datetime.now(UTC).isoformat()
            await partner.publish("partner/x", json.dumps({"t": now}), qos=1)
            await eventually(lambda: hub.intakes["partner"].health.events_total >= 1)
    assert hub.health()[0].errors_total >= 1


# -------------------------------------------------------------------------------- file drop


async def test_file_drop_csv_and_jsonl(tmp_path: Path, pipeline: Pipeline) -> None:
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    source = FileDropSource.model_validate(
        {
            "id": "parking-fines",
            "type": "file_drop",
            "directory": str(inbox),
            "csv_delimiter": ";",
            "mapping": {
                "id": "fine_no",
                "time": {"path": "issued", "format": "%d/%m/%Y %H:%M", "timezone": "Europe/Lisbon"},
                "kind": {"const": "illegal_parking"},
                "location": {"lat": "lat", "lon": "lon"},
                "zone_id": "street",
                "attributes": {"plate_hash": "plate_hash"},
            },
        }
    )
    hub = ConnectorHub(SourcesConfig(sources=[source]), pipeline.writer)
    drop = FileDrop(source, hub.intakes["parking-fines"])
    issued = (datetime.now(UTC) - timedelta(days=1)).strftime("%d/%m/%Y %H:%M")
    (inbox / "fines-1.csv").write_text(
        "fine_no;issued;lat;lon;street;plate_hash\n"
        f"F1;{issued};38.71;-9.13;Rua-do-Ouro;ab12\n"
        f"F2;{issued};38.72;-9.14;Rua-Augusta;cd34\n"
        "F3;not a date;38.72;-9.14;Rua-Augusta;ef56\n"
    )
    (inbox / "fines-2.jsonl").write_text(
        json.dumps(
            {"fine_no": "F1", "issued": issued, "lat": 38.71, "lon": -9.13, "street": "Rua-do-Ouro"}
        )
        + "\n\n"
    )
    (inbox / "broken.jsonl").write_text("{not json\n")
    (inbox / "notes.txt").write_text("ignored")

    assert await drop.scan_once() == 3
    assert sorted(p.name for p in (inbox / "done").iterdir()) == ["fines-1.csv", "fines-2.jsonl"]
    assert [p.name for p in (inbox / "failed").iterdir()] == ["broken.jsonl"]
    assert (inbox / "notes.txt").exists()
    health = hub.health()[0]
    assert (health.events_total, health.duplicates_total, health.rejected_total) == (2, 1, 1)
    created = [c for c in pipeline.changes if c.type is ChangeType.CREATED]
    assert sorted(c.incident.zone_id or "" for c in created) == ["Rua-Augusta", "Rua-do-Ouro"]
    page = await pipeline.store.get_event(created[0].incident.first_event_id)
    assert page is not None
    assert page.attributes["source"] == "parking-fines"
    assert await drop.scan_once() == 0


async def test_rest_poll_follows_next_links(pipeline: Pipeline) -> None:
    """A traffic partner that pages by ``next`` links (relative URLs) and needs an API key."""
    app = FastAPI()
    seen_keys: list[str | None] = []
    start = datetime.now(UTC) - timedelta(minutes=30)

    @app.get("/v1/closures")
    async def closures(request: Request) -> JSONResponse:
        seen_keys.append(request.headers.get("x-api-key"))
        page = int(request.query_params.get("cursor", "0"))
        items = [
            {
                "closure": f"c{page}-{n}",
                "from": (start + timedelta(minutes=page * 2 + n)).isoformat(),
                "road": f"road-{page}",
            }
            for n in range(2)
        ]
        nxt = f"/v1/closures?cursor={page + 1}" if page < 2 else None
        return JSONResponse({"results": items, "links": {"next": nxt}})

    source = RestPollSource.model_validate(
        {
            "id": "traffic-closures",
            "type": "rest_poll",
            "url": "http://placeholder/v1/closures",
            "header_env": {"X-Api-Key": "TEST_TRAFFIC_KEY"},
            "records_path": "results",
            "pagination": {"next_path": "links.next"},
            "mapping": {
                "id": "closure",
                "time": "from",
                "kind": {"const": "external"},
                "zone_id": "road",
            },
        }
    )
    with serve_in_thread(app) as url, pytest.MonkeyPatch.context() as patch:
        patch.setenv("TEST_TRAFFIC_KEY", "k-123")
        source = source.model_copy(update={"url": f"{url}/v1/closures"})
        hub = ConnectorHub(SourcesConfig(sources=[source]), pipeline.writer)
        poller = RestPoller(source, hub.intakes["traffic-closures"])
        assert await poller.poll_once() == 6
    assert seen_keys == ["k-123"] * 3
    created = [c for c in pipeline.changes if c.type is ChangeType.CREATED]
    assert sorted(c.incident.zone_id or "" for c in created) == ["road-0", "road-1", "road-2"]


class FlakyStoreWriter:
    """The real writer behind a store outage: the first *failures* writes raise."""

    def __init__(self, inner: StoreEventWriter, failures: int) -> None:
        self.inner = inner
        self.failures = failures

    async def write_events(self, events: Sequence[Event]) -> None:
        if events and self.failures > 0:
            self.failures -= 1
            raise StoreUnavailableError("influxd is restarting")
        await self.inner.write_events(events)

    async def write_telemetry(self, items: Sequence[Telemetry]) -> None:
        await self.inner.write_telemetry(items)


async def test_mqtt_bridge_holds_messages_while_the_store_is_down(
    partner_broker: PartnerBroker, pipeline: Pipeline, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TEST_PARTNER_MQTT_PW", partner_broker.users["bridge"])
    source = MqttBridgeSource.model_validate(
        {
            "id": "emel",
            "type": "mqtt_bridge",
            "host": partner_broker.host,
            "port": partner_broker.port,
            "username": "bridge",
            "password_env": "TEST_PARTNER_MQTT_PW",
            "topics": ["partner/emel/#"],
            "reconnect_initial_s": 0.05,
            "mapping": {"id": "n", "time": "t"},
        }
    )
    writer = FlakyStoreWriter(pipeline.writer, failures=2)
    hub = ConnectorHub(SourcesConfig(sources=[source]), writer)
    intake = hub.intakes["emel"]
    bridge = MqttBridge(source, intake)
    now = datetime.now(UTC).isoformat()
    async with (
        running(bridge),
        aiomqtt.Client(
            partner_broker.host,
            partner_broker.port,
            username="partner",
            password=partner_broker.users["partner"],
        ) as partner,
    ):
        for n in range(3):
            await partner.publish("partner/emel/x", json.dumps({"n": n, "t": now}), qos=1)
        await eventually(lambda: intake.health.events_total == 3)
        assert bridge.connected.is_set()
    assert writer.failures == 0
    assert intake.health.errors_total == 2
    assert len([c for c in pipeline.changes if c.type is ChangeType.CREATED]) == 1


async def test_mqtt_bridge_mutual_tls(
    tmp_path: Path, pipeline: Pipeline, partner_broker_factory: Callable[..., PartnerBroker]
) -> None:
    """The partner's broker only takes clients with a certificate from its CA (CN = user)."""
    need(shutil.which("openssl") is not None, "openssl")
    ca = make_ca(tmp_path / "partner-ca", name="Partner CA")
    server = issue_cert(ca, tmp_path / "server", "localhost", server_names=["127.0.0.1"])
    client = issue_cert(ca, tmp_path / "client", "bridge")
    tls_port = free_port()
    broker = partner_broker_factory(
        tls=TlsListener(port=tls_port, cafile=ca.cert, certfile=server.cert, keyfile=server.key)
    )
    source = MqttBridgeSource.model_validate(
        {
            "id": "tls-partner",
            "type": "mqtt_bridge",
            "host": "127.0.0.1",
            "port": tls_port,
            "tls_ca": str(ca.cert),
            "tls_cert": str(client.cert),
            "tls_key": str(client.key),
            "topics": ["partner/#"],
            "mapping": {"time": "t"},
        }
    )
    hub = ConnectorHub(SourcesConfig(sources=[source]), pipeline.writer)
    bridge = MqttBridge(source, hub.intakes["tls-partner"])
    async with (
        running(bridge),
        aiomqtt.Client(
            broker.host, broker.port, username="partner", password=broker.users["partner"]
        ) as partner,
    ):
        now = datetime.now(UTC).isoformat()
        await partner.publish("partner/a", json.dumps({"t": now}), qos=1)
        await eventually(lambda: hub.intakes["tls-partner"].health.events_total == 1)
