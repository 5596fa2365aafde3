"""No data across departments: every data route, every role, keys of two departments.

Each department has a device, a stored event, an incident (with its audit rows and dispatch
delivery), a dead letter, audit rows of its device and a connector source whose virtual device
it owns. A civil-protection key must never see a trace of traffic enforcement (and the other
way round), whatever the route; it must see its own where its role allows.
"""

import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from cloud.api.app import create_app
from cloud.api.deps import authenticate_token
from cloud.api.openapi import api_routes
from cloud.connectors.config import SourcesConfig
from cloud.connectors.integration import Integrations, build_integration_routers
from cloud.db.ingest import DeadLetter
from cloud.dispatch.config import DispatchConfig
from cloud.ops.live import LiveFilter
from cloud.ops.roles import ROLE_PERMISSIONS, Permission, Role
from cloud.ops.service import IncidentFilter
from shared.clock import utcnow
from shared.events import EventKind
from tests.cloud.api.conftest import CIVIL, POLICE, add_keys, make_settings
from tests.cloud.ops.builders import event

DEPARTMENTS = (CIVIL, POLICE)
_KIND = {CIVIL: EventKind.ABANDONED_OBJECT, POLICE: EventKind.ILLEGAL_PARKING}
"""The default rules route these kinds to these departments."""
QUERY_VARIANTS = {
    "/api/v1/events/counts": ["", "?group_by=device_id", "?group_by=zone_id"],
    "/ngsi-ld/v1/entities": ["?type=Alert", "?type=Device", "?type=Alert&options=keyValues"],
    "/api/v1/audit": ["", "?target_type=device", "?target_type=incident"],
    "/api/v1/dispatch/deliveries": ["", "?status=pending"],
}
NOT_DATA = {"/healthz", "/readyz", "/metrics", "/api/v1/me", "/api/v1/live/sse"}
"""Routes without department data (the SSE stream is checked through its hub below)."""
MUST_SHOW_OWN = {
    "/api/v1/devices",
    "/api/v1/events",
    "/api/v1/events/hotspots",
    "/api/v1/incidents",
    "/api/v1/departments",
    "/api/v1/dead-letters",
    "/api/v1/audit",
    "/api/v1/dispatch/deliveries",
    "/api/v1/connectors/sources",
    "/ngsi-ld/v1/entities",
}


@dataclass
class Department:
    id: str
    device: str
    source: str
    event_id: str
    incident_id: str
    delivery_id: str

    @property
    def markers(self) -> list[str]:
        """Strings that only this department's data contains."""
        return [self.id, self.device, self.source, self.event_id, self.incident_id]

    def path_values(self) -> dict[str, str]:
        return {
            "device_id": self.device,
            "event_id": self.event_id,
            "incident_id": self.incident_id,
            "delivery_id": self.delivery_id,
            "entity_id": f"urn:ngsi-ld:Alert:{self.event_id}",
            "command_id": "c-1",
        }


@dataclass
class World:
    app: FastAPI
    client: httpx.AsyncClient
    keys: dict[str, str]
    departments: dict[str, Department]


def _short(dept: str) -> str:
    return dept.split("-", maxsplit=1)[0]


@pytest.fixture
async def world(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[World]:
    monkeypatch.setenv("MATRIX_SECRET", "s" * 32)
    sources = SourcesConfig.model_validate(
        {
            "sources": [
                {
                    "id": f"{_short(d)}-feed",
                    "type": "webhook",
                    "secret_env": "MATRIX_SECRET",
                    "device_id": f"ext-{_short(d)}-feed",
                    "mapping": {"time": "t"},
                }
                for d in DEPARTMENTS
            ]
        }
    )
    dispatch = DispatchConfig.model_validate(
        {
            "routes": [
                {
                    "id": "all",
                    "departments": ["*"],
                    "target": {
                        "type": "webhook",
                        "url": "http://127.0.0.1:9/",
                        "secret_env": "MATRIX_SECRET",
                    },
                }
            ]
        }
    )
    integrations = Integrations(sources)
    app = create_app(
        make_settings(tmp_path),
        background=False,
        dispatch=dispatch,
        extra_routers=build_integration_routers(integrations),
    )
    integrations.attach(app)
    await app.state.store.setup()
    transport = httpx.ASGITransport(app=app, client=("10.1.2.3", 5555))
    async with httpx.AsyncClient(transport=transport, base_url="http://api") as client:
        keys = add_keys(app)
        admin = {"Authorization": f"Bearer {keys['admin']}"}
        departments: dict[str, Department] = {}
        for dept in DEPARTMENTS:
            short = _short(dept)
            for device in (f"dev-{short}", f"ext-{short}-feed"):
                registered = await client.put(
                    f"/api/v1/devices/{device}",
                    headers=admin,
                    json={
                        "site": f"site of {short}",
                        "lat": 38.7,
                        "lon": -9.1,
                        "device_type": "raspberrypi5",
                        "department": dept,
                    },
                )
                assert registered.status_code == 201, registered.text
            sent = event(_KIND[dept], device_id=f"dev-{short}", zone_id=f"zone-{short}")
            await app.state.store.write_events([sent])
            await app.state.ops.on_events([sent])
            (incident,) = app.state.ops.list_incidents(
                IncidentFilter(device_id=f"dev-{short}")
            ).items
            assert incident.department == dept
            (delivery,) = integrations.current_dispatcher().list_deliveries(incident_id=incident.id)
            with app.state.sessions() as session:
                session.add(
                    DeadLetter(
                        received_at=utcnow(),
                        topic=f"cityops/v1/dev-{short}/event",
                        device_id=f"dev-{short}",
                        reason="schema",
                        detail="bad",
                        payload=f'{{"from": "dev-{short}"}}',
                    )
                )
                session.commit()
            departments[dept] = Department(
                id=dept,
                device=f"dev-{short}",
                source=f"{short}-feed",
                event_id=sent.id,
                incident_id=incident.id,
                delivery_id=delivery.id,
            )
        yield World(app=app, client=client, keys=keys, departments=departments)
    await app.state.store.close()


def _other(dept: str) -> str:
    return POLICE if dept == CIVIL else CIVIL


def _url(path: str, values: dict[str, str]) -> str:
    return re.sub(r"\{(\w+)\}", lambda m: values[m.group(1)], path)


def _leaks(body: str, markers: list[str]) -> list[str]:
    return [m for m in markers if m in body]


async def test_no_route_shows_another_departments_data_to_any_role(world: World) -> None:
    routes = [r for r in api_routes(world.app.routes) if "GET" in (r.methods or set())]
    data_routes = [r for r in routes if r.path not in NOT_DATA and r.include_in_schema]
    assert len(data_routes) >= 20
    checked: set[str] = set()
    shown_own: set[tuple[str, str]] = set()
    for route in data_routes:
        params = re.findall(r"\{(\w+)\}", route.path)
        for role in Role:
            if role is Role.ADMIN:  # admins see every department by design
                continue
            for dept in DEPARTMENTS:
                me, other = world.departments[dept], world.departments[_other(dept)]
                headers = {"Authorization": f"Bearer {world.keys[f'{role.value}@{dept}']}"}
                if params:
                    theirs = await world.client.get(
                        _url(route.path, other.path_values()), headers=headers
                    )
                    assert theirs.status_code in {403, 404}, (route.path, role, dept)
                    mine = await world.client.get(
                        _url(route.path, me.path_values()), headers=headers
                    )
                    if mine.status_code == 200:
                        assert not _leaks(mine.text, other.markers), (route.path, role, dept)
                    checked.add(route.path)
                    continue
                for query in QUERY_VARIANTS.get(route.path, [""]):
                    response = await world.client.get(route.path + query, headers=headers)
                    if response.status_code == 403:
                        continue
                    assert response.status_code == 200, (route.path, query, role, response.text)
                    leaked = _leaks(response.text, other.markers)
                    assert not leaked, (route.path + query, role.value, dept, leaked)
                    if _leaks(response.text, me.markers):
                        shown_own.add((route.path, dept))
                    checked.add(route.path)
    assert {r.path for r in data_routes} <= checked
    for path in MUST_SHOW_OWN:
        for dept in DEPARTMENTS:
            assert (path, dept) in shown_own, f"{path} showed {dept} nothing of its own"


async def test_live_stream_shows_each_department_only_its_own(world: World) -> None:
    hub = world.app.state.live
    for role in Role:
        if role is Role.ADMIN or Permission.LIVE not in ROLE_PERMISSIONS[role]:
            continue
        for dept in DEPARTMENTS:
            principal = await authenticate_token(
                world.app.state.ctx, world.keys[f"{role.value}@{dept}"], "10.1.2.3"
            )
            sub = hub.subscribe(principal, LiveFilter())
            try:
                for source in DEPARTMENTS:
                    short = _short(source)
                    sent = event(_KIND[source], device_id=f"dev-{short}", zone_id=f"z-{short}")
                    await hub.publish_events([sent])
                    await world.app.state.ops.on_events([sent])  # an incident change
                # A device the registry does not know: its department is unknown.
                await hub.publish_events([event(EventKind.CROWDING, device_id="dev-unknown")])
                seen: list[dict[str, Any]] = []
                while not sub.queue.empty():
                    seen.append(sub.queue.get_nowait().model_dump(mode="json"))
            finally:
                hub.unsubscribe(sub)
            me = world.departments[dept]
            assert {m["device_id"] for m in seen} == {me.device}, (role, dept)
            assert {m["type"] for m in seen} == {"event", "incident"}
