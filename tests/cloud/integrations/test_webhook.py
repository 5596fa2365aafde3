"""Inbound webhook: signed records become stored events and incidents; bad ones are refused."""

import json
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from cloud.connectors.config import SourcesConfig
from cloud.connectors.hub import ConnectorHub
from cloud.connectors.integration import Integrations, build_integration_routers
from cloud.connectors.routes import build_connector_router
from cloud.connectors.signing import signature_headers
from cloud.connectors.writer import StoreEventWriter
from cloud.ops.models import ChangeType
from cloud.services.influxd import Influxd
from cloud.settings import InfluxSettings
from cloud.store.influx import InfluxEventStore
from shared.events import EventKind
from tests.cloud.integrations.conftest import Pipeline

SECRET = "s3cret-webhook-key"
TOKEN = "partner-token-123"


def sources() -> SourcesConfig:
    mapping = {
        "id": "ticket",
        "time": "opened_at",
        "severity": {"path": "priority", "map": {"P1": "high", "P2": "medium"}, "default": "low"},
        "location": {"lat": "lat", "lon": "lon"},
        "summary": "{category}: {text}",
        "attributes": {"category": "category"},
    }
    return SourcesConfig.model_validate(
        {
            "sources": [
                {
                    "id": "citizen-app",
                    "type": "webhook",
                    "secret_env": "TEST_CITIZEN_SECRET",
                    "records_path": "tickets",
                    "rate_per_s": 1.0,
                    "burst": 5,
                    "mapping": mapping,
                },
                {
                    "id": "waste",
                    "type": "webhook",
                    "auth": "token",
                    "secret_env": "TEST_WASTE_TOKEN",
                    "mapping": mapping,
                },
            ]
        }
    )


@pytest.fixture
async def client(
    pipeline: Pipeline, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[tuple[httpx.AsyncClient, ConnectorHub]]:
    monkeypatch.setenv("TEST_CITIZEN_SECRET", SECRET)
    monkeypatch.setenv("TEST_WASTE_TOKEN", TOKEN)
    hub = ConnectorHub(sources(), pipeline.writer)
    app = FastAPI()
    app.include_router(build_connector_router(hub))
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
        yield http, hub


def ticket(number: int, **extra: Any) -> dict[str, Any]:
    opened = datetime.now(UTC) - timedelta(minutes=3)
    return {
        "ticket": f"LX-{number}",
        "opened_at": opened.isoformat(),
        "priority": "P1",
        "category": "pothole",
        "text": "deep hole on the cycle lane",
        "lat": 38.7139,
        "lon": -9.1334,
        **extra,
    }


def signed(body: bytes, secret: str = SECRET, now: float | None = None) -> dict[str, str]:
    return {
        "Content-Type": "application/json",
        **signature_headers(secret.encode(), body, now=now),
    }


async def test_signed_webhook_record_is_stored_and_opens_incident(
    client: tuple[httpx.AsyncClient, ConnectorHub], pipeline: Pipeline
) -> None:
    http, _hub = client
    record = ticket(1)
    body = json.dumps({"tickets": [record]}).encode()
    response = await http.post(
        "/api/v1/connectors/citizen-app/webhook", content=body, headers=signed(body)
    )
    assert response.status_code == 202, response.text
    result = response.json()
    assert result["accepted"] == 1
    stored = await pipeline.store.get_event(result["event_ids"][0])
    assert stored is not None
    assert stored.kind is EventKind.EXTERNAL
    assert stored.device_id == "ext-citizen-app"
    assert stored.summary == "pothole: deep hole on the cycle lane"
    created = [c for c in pipeline.changes if c.type is ChangeType.CREATED]
    assert len(created) == 1
    assert created[0].incident.department == "public-space"
    assert created[0].incident.first_event_id == stored.id

    # The partner re-sends the same ticket in a new, correctly signed request: no new incident.
    again = json.dumps({"tickets": [record]}, indent=1).encode()
    response = await http.post(
        "/api/v1/connectors/citizen-app/webhook",
        content=again,
        headers=signed(again, now=time.time() + 1),
    )
    assert response.status_code == 202
    assert response.json()["duplicates"] == 1
    assert len([c for c in pipeline.changes if c.type is ChangeType.CREATED]) == 1


@pytest.mark.parametrize(
    ("headers_of", "field"),
    [
        (lambda body: signed(body, secret="wrong-secret"), "X-CityOps-Signature"),
        (lambda body: signed(body + b" "), "X-CityOps-Signature"),
        (lambda body: signed(body, now=time.time() - 3600), "X-CityOps-Timestamp"),
        (lambda _body: {"Content-Type": "application/json"}, "X-CityOps-Timestamp"),
    ],
    ids=["wrong-secret", "body-changed", "stale", "unsigned"],
)
async def test_bad_signature_is_refused(
    client: tuple[httpx.AsyncClient, ConnectorHub],
    pipeline: Pipeline,
    headers_of: Any,
    field: str,
) -> None:
    http, hub = client
    body = json.dumps({"tickets": [ticket(2)]}).encode()
    response = await http.post(
        "/api/v1/connectors/citizen-app/webhook", content=body, headers=headers_of(body)
    )
    assert response.status_code == 401
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["errors"][0]["field"] == field
    assert pipeline.changes == []
    health = {h.source_id: h for h in hub.health()}["citizen-app"]
    assert health.state == "failing"
    assert health.events_total == 0


async def test_replayed_request_is_refused(
    client: tuple[httpx.AsyncClient, ConnectorHub],
) -> None:
    http, _hub = client
    body = json.dumps({"tickets": [ticket(3)]}).encode()
    headers = signed(body)
    first = await http.post("/api/v1/connectors/citizen-app/webhook", content=body, headers=headers)
    replay = await http.post(
        "/api/v1/connectors/citizen-app/webhook", content=body, headers=headers
    )
    assert first.status_code == 202
    assert replay.status_code == 409


async def test_rate_limit(client: tuple[httpx.AsyncClient, ConnectorHub]) -> None:
    http, _hub = client
    codes = []
    for number in range(8):
        body = json.dumps({"tickets": [ticket(100 + number)]}).encode()
        response = await http.post(
            "/api/v1/connectors/citizen-app/webhook", content=body, headers=signed(body)
        )
        codes.append(response.status_code)
    assert codes[:5] == [202] * 5
    assert 429 in codes[5:]


async def test_token_webhook_and_source_health(
    client: tuple[httpx.AsyncClient, ConnectorHub], pipeline: Pipeline
) -> None:
    http, _hub = client
    body = json.dumps(ticket(7, priority="P2")).encode()
    refused = await http.post(
        "/api/v1/connectors/waste/webhook",
        content=body,
        headers={"Authorization": "Bearer nope"},
    )
    assert refused.status_code == 401
    ok = await http.post(
        "/api/v1/connectors/waste/webhook",
        content=body,
        headers={"Authorization": f"Bearer {TOKEN}"},
    )
    assert ok.status_code == 202, ok.text
    unmappable = await http.post(
        "/api/v1/connectors/waste/webhook",
        content=json.dumps({"ticket": "x", "opened_at": "soon"}).encode(),
        headers={"Authorization": f"Bearer {TOKEN}"},
    )
    assert unmappable.status_code == 422
    assert unmappable.json()["errors"][0]["field"] == "time"
    unknown = await http.post("/api/v1/connectors/nobody/webhook", content=b"{}")
    assert unknown.status_code == 404

    health = {h["source_id"]: h for h in (await http.get("/api/v1/connectors/sources")).json()}
    waste = health["waste"]
    assert waste["events_total"] == 1
    assert waste["rejected_total"] == 1
    assert waste["errors_total"] == 2  # the refused token and the unmappable record
    assert waste["state"] == "failing"
    assert 170 <= waste["lag_s"] <= 400
    assert health["citizen-app"]["state"] == "idle"


async def test_webhook_into_influxdb_store_opens_incident(
    influxd: Influxd, influx_db: str, pipeline: Pipeline, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The same intake on the real InfluxDB store (the ops service as in the other tests)."""
    monkeypatch.setenv("TEST_CITIZEN_SECRET", SECRET)
    monkeypatch.setenv("TEST_WASTE_TOKEN", TOKEN)
    store = InfluxEventStore(InfluxSettings(url=influxd.url, database=influx_db))
    await store.setup()
    try:
        hub = ConnectorHub(sources(), StoreEventWriter(store, [pipeline.ops.on_events]))
        result = await hub.intakes["citizen-app"].ingest([ticket(11), ticket(11)])
        assert (result.accepted, result.duplicates) == (1, 1)
        stored = await store.get_event(result.event_ids[0])
        assert stored is not None
        assert stored.summary == "pothole: deep hole on the cycle lane"
        [created] = [c for c in pipeline.changes if c.type is ChangeType.CREATED]
        assert created.incident.first_event_id == stored.id
    finally:
        await store.close()


async def test_telemetry_source_writes_readings(
    pipeline: Pipeline, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TEST_NOISE_TOKEN", TOKEN)
    config = SourcesConfig.model_validate(
        {
            "sources": [
                {
                    "id": "noise-net",
                    "type": "webhook",
                    "auth": "token",
                    "secret_env": "TEST_NOISE_TOKEN",
                    "mapping": {
                        "output": "telemetry",
                        "time": {"path": "t", "format": "epoch_s"},
                        "device": "sensor",
                        "readings": {"noise_dba": "laeq"},
                    },
                }
            ]
        }
    )
    hub = ConnectorHub(config, pipeline.writer)
    app = FastAPI()
    app.include_router(build_connector_router(hub))
    now = time.time()
    body = [{"t": now - 60, "sensor": "N1", "laeq": 61.5}, {"t": now, "sensor": "N1", "laeq": 64}]
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://test"
    ) as http:
        response = await http.post(
            "/api/v1/connectors/noise-net/webhook",
            json=body,
            headers={"Authorization": f"Bearer {TOKEN}"},
        )
    assert response.status_code == 202, response.text
    assert response.json()["accepted"] == 2
    readings = await pipeline.store.recent_telemetry("ext-noise-net-n1")
    assert sorted(t.readings["noise_dba"] for t in readings) == [61.5, 64.0]
    assert pipeline.changes == []


async def test_oversized_body_is_refused(client: tuple[httpx.AsyncClient, ConnectorHub]) -> None:
    http, _hub = client
    body = b"[" + b'{"a": 1},' * 120_000 + b"{}]"
    response = await http.post(
        "/api/v1/connectors/citizen-app/webhook", content=body, headers=signed(body)
    )
    assert response.status_code == 413


async def test_store_unavailable_is_503_and_the_retry_is_taken(
    pipeline: Pipeline, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Before ``attach`` the store is unreachable: 503, nothing counted as seen, retry works."""
    monkeypatch.setenv("TEST_CITIZEN_SECRET", SECRET)
    monkeypatch.setenv("TEST_WASTE_TOKEN", TOKEN)
    integrations = Integrations(sources())
    app = FastAPI()
    for router in build_integration_routers(integrations, protect=False):
        app.include_router(router)
    record = ticket(21)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://test"
    ) as http:
        body = json.dumps({"tickets": [record]}).encode()
        down = await http.post(
            "/api/v1/connectors/citizen-app/webhook", content=body, headers=signed(body)
        )
        assert down.status_code == 503
        assert down.headers["retry-after"] == "5"
        integrations.writer.target = pipeline.writer  # the store is back
        # The partner resends the very same signed request: not a replay, it was not taken in.
        up = await http.post(
            "/api/v1/connectors/citizen-app/webhook", content=body, headers=down.request.headers
        )
    assert up.status_code == 202
    assert up.json()["accepted"] == 1
    health = {h.source_id: h for h in integrations.hub.health()}["citizen-app"]
    assert health.errors_total == 1
    assert health.state == "ok"
