"""End to end in the real operations API: partner records in, incidents out, API keys enforced.

``create_app`` with ``build_integration_routers`` and ``Integrations.attach``, as ``cloud serve``
wires it: a signed webhook and a file drop become stored events that open incidents; the
incidents reach the department system (real uvicorn); health, dead letters and NGSI-LD
entities are served behind the API's roles.
"""

import json
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI

from cloud.api.app import create_app
from cloud.api.settings import ApiOptions, ApiSettings
from cloud.connectors.config import SourcesConfig
from cloud.connectors.integration import Integrations, build_integration_routers
from cloud.connectors.signing import signature_headers
from cloud.db.devices import Device
from cloud.dispatch.config import DispatchConfig
from cloud.ngsi.forms import to_key_values
from cloud.ops.keys import create_api_key
from cloud.settings import CloudSettings, StoreSettings
from shared.events import Event, EventKind
from shared.ids import new_id
from tests.cloud.integrations import sdm_upstream
from tests.cloud.integrations.servers import serve_in_thread
from tests.cloud.integrations.test_dispatch import SECRET, DepartmentSystem, make_department
from tests.cloud.integrations.waits import eventually, eventually_async

WEBHOOK_SECRET = "citizen-app-secret"


@pytest.fixture
def department() -> Iterator[tuple[str, DepartmentSystem]]:
    app, state = make_department()
    with serve_in_thread(app) as url:
        yield url, state


def integrations(tmp_path: Path, department_url: str) -> tuple[Integrations, DispatchConfig]:
    mapping = {
        "id": "ticket",
        "time": "opened_at",
        "kind": {"path": "category", "map": {"parking": "illegal_parking"}},
        "location": {"lat": "lat", "lon": "lon"},
        "zone_id": "street",
        "summary": "{category}: {text}",
    }
    sources = SourcesConfig.model_validate(
        {
            "sources": [
                {
                    "id": "citizen-app",
                    "type": "webhook",
                    "secret_env": "TEST_CITIZEN_SECRET",
                    "mapping": mapping,
                },
                {
                    "id": "fines-export",
                    "type": "file_drop",
                    "directory": str(tmp_path / "drop"),
                    "poll_s": 0.05,
                    "mapping": mapping,
                },
            ]
        }
    )
    dispatch = DispatchConfig.model_validate(
        {
            "backoff_initial_s": 0.05,
            "poll_s": 0.05,
            "routes": [
                {
                    "id": "police-orders",
                    "departments": ["traffic-enforcement"],
                    "target": {
                        "type": "webhook",
                        "url": f"{department_url}/work-orders",
                        "secret_env": "TEST_DEPT_SECRET",
                    },
                }
            ],
        }
    )
    return Integrations(sources), dispatch


@pytest.fixture
async def running(
    tmp_path: Path, department: tuple[str, DepartmentSystem], monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[tuple[FastAPI, httpx.AsyncClient, dict[str, str]]]:
    monkeypatch.setenv("TEST_CITIZEN_SECRET", WEBHOOK_SECRET)
    monkeypatch.setenv("TEST_DEPT_SECRET", SECRET)
    settings = ApiSettings(
        cloud=CloudSettings(
            database_url=f"sqlite:///{tmp_path / 'state.sqlite'}",
            store=StoreSettings(kind="sqlite", sqlite_path=tmp_path / "ts.sqlite"),
        ),
        api=ApiOptions(mqtt_enabled=False),
    )
    hub, dispatch = integrations(tmp_path, department[0])
    app = create_app(
        settings,
        extra_routers=build_integration_routers(hub),
        background=False,
        dispatch=dispatch,
    )
    hub.attach(app)
    with app.state.sessions() as session:
        keys = {
            role: create_api_key(session, name=f"{role} key", role=role)
            for role in ("integration", "operator", "viewer")
        }
        for dept in ("traffic-enforcement", "civil-protection"):
            keys[f"viewer@{dept}"] = create_api_key(
                session, name=f"viewer of {dept}", role="viewer", departments=[dept]
            )
        session.add(Device(id="dev-a", site="Baixa", department="traffic-enforcement"))
        session.commit()
    transport = httpx.ASGITransport(app=app)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=transport, base_url="http://api") as client,
    ):
        yield app, client, keys


def ticket(number: int, street: str) -> dict[str, object]:
    return {
        "ticket": f"LX-{number}",
        "opened_at": (datetime.now(UTC) - timedelta(minutes=2)).isoformat(),
        "category": "parking",
        "text": "van on the pavement",
        "lat": 38.7101,
        "lon": -9.1412,
        "street": street,
    }


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


async def test_partner_records_open_incidents_that_reach_the_department(
    running: tuple[FastAPI, httpx.AsyncClient, dict[str, str]],
    department: tuple[str, DepartmentSystem],
    tmp_path: Path,
) -> None:
    _app, client, keys = running
    _url, dept = department

    # 1. Signed webhook from the citizen app; a bad signature is refused.
    body = json.dumps(ticket(1, "Rua-da-Prata")).encode()
    forged = await client.post(
        "/api/v1/connectors/citizen-app/webhook",
        content=body,
        headers=signature_headers(b"guess", body),
    )
    assert forged.status_code == 401
    accepted = await client.post(
        "/api/v1/connectors/citizen-app/webhook",
        content=body,
        headers=signature_headers(WEBHOOK_SECRET.encode(), body),
    )
    assert accepted.status_code == 202, accepted.text

    # 2. A file exported by the fines system.
    (tmp_path / "drop").mkdir(exist_ok=True)
    (tmp_path / "drop" / "fines.jsonl").write_text(json.dumps(ticket(2, "Rua-do-Ouro")) + "\n")

    async def incident_streets() -> set[str]:
        response = await client.get("/api/v1/incidents", headers=bearer(keys["operator"]))
        assert response.status_code == 200, response.text
        return {i["zone_id"] for i in response.json()["items"]}

    streets: set[str] = set()

    async def both_open() -> bool:
        streets.update(await incident_streets())
        return streets == {"Rua-da-Prata", "Rua-do-Ouro"}

    await eventually_async(both_open)

    # 3. Both incidents are delivered, signed, to the traffic department's system.
    await eventually(lambda: len(dept.received) == 2)
    assert {n["incident"]["zone_id"] for n in dept.received} == streets
    assert {n["incident"]["department"] for n in dept.received} == {"traffic-enforcement"}
    assert dept.refused == []

    # 4. Health, deliveries and NGSI-LD, behind API keys.
    assert (await client.get("/api/v1/connectors/sources")).status_code == 401
    viewer = await client.get("/api/v1/dispatch/deliveries", headers=bearer(keys["viewer"]))
    assert viewer.status_code == 403
    health = await client.get("/api/v1/connectors/sources", headers=bearer(keys["integration"]))
    by_id = {h["source_id"]: h for h in health.json()}
    assert by_id["citizen-app"]["events_total"] == 1
    assert by_id["citizen-app"]["errors_total"] == 1  # the forged request
    assert by_id["fines-export"]["events_total"] == 1
    assert by_id["fines-export"]["state"] == "ok"
    deliveries = await client.get(
        "/api/v1/dispatch/deliveries", headers=bearer(keys["integration"])
    )
    assert [d["status"] for d in deliveries.json()] == ["delivered", "delivered"]
    alerts = await client.get(
        "/ngsi-ld/v1/entities", params={"type": "Alert"}, headers=bearer(keys["viewer"])
    )
    assert alerts.status_code == 200
    assert len(alerts.json()) == 2
    for alert in alerts.json():
        sdm_upstream.alert().validate(to_key_values(alert))
    assert (await client.get("/ngsi-ld/v1/entities", params={"type": "Alert"})).status_code == 401


async def test_ngsi_entities_follow_department_scope(
    running: tuple[FastAPI, httpx.AsyncClient, dict[str, str]],
) -> None:
    app, client, keys = running
    now = datetime.now(UTC)
    event = Event(
        id=new_id(),
        device_id="dev-a",
        kind=EventKind.ILLEGAL_PARKING,
        started_at=now,
        observed_at=now,
    )
    await app.state.store.write_events([event])
    urn = f"/ngsi-ld/v1/entities/urn:ngsi-ld:Alert:{event.id}"

    async def seen(who: str) -> tuple[set[str], set[str], int]:
        alerts = await client.get(
            "/ngsi-ld/v1/entities", params={"type": "Alert"}, headers=bearer(keys[who])
        )
        devices = await client.get(
            "/ngsi-ld/v1/entities", params={"type": "Device"}, headers=bearer(keys[who])
        )
        one = await client.get(urn, headers=bearer(keys[who]))
        return (
            {a["id"] for a in alerts.json()},
            {d["id"] for d in devices.json()},
            one.status_code,
        )

    everything = await seen("viewer")
    assert f"urn:ngsi-ld:Alert:{event.id}" in everything[0]
    assert everything[1] == {"urn:ngsi-ld:Device:dev-a"}
    assert await seen("viewer@traffic-enforcement") == (
        {f"urn:ngsi-ld:Alert:{event.id}"},
        {"urn:ngsi-ld:Device:dev-a"},
        200,
    )
    assert await seen("viewer@civil-protection") == (set(), set(), 404)
