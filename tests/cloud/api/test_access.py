"""Every API route: 401 without credentials, 403 outside the role and outside the department."""

import base64
import re
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute, APIWebSocketRoute
from starlette.routing import BaseRoute

from cloud.api.app import create_app
from cloud.api.deps import DeviceScope, IncidentScope, Require
from cloud.api.throttle import AuthThrottle
from cloud.ops.roles import ROLE_PERMISSIONS, Permission, Role
from cloud.ops.service import IncidentFilter
from cloud.services.ports import free_port
from cloud.settings import InfluxSettings, StoreSettings
from shared.events import EventKind
from tests.cloud.api.conftest import CIVIL, POLICE, Api, add_keys, make_settings
from tests.cloud.ops.builders import add_device, event

PUBLIC = {
    "/healthz",
    "/readyz",
    "/metrics",
    "/openapi.json",
    "/docs",
    "/docs/oauth2-redirect",
    "/redoc",
    "/login",  # the console's sign-in form and sign-out (docs/console.md): the way in
    "/logout",
}
CONSOLE_PAGES = {"/", "/map", "/devices", "/events", "/incidents/{incident_id}"}
"""Console pages: one permission each, but without a session they send the browser to /login."""
STREAMING = {"/api/v1/live/sse"}
"""Endless responses: only their refusals are checked here (served over uvicorn in test_live)."""
SCOPED_PARAMS = {"device_id", "incident_id", "event_id"}


def flat_routes(routes: Sequence[BaseRoute]) -> Iterator[BaseRoute]:
    """``app.routes``, with included routers opened (FastAPI keeps them as one entry each)."""
    for route in routes:
        inner = getattr(route, "original_router", None)
        if inner is not None:
            yield from flat_routes(inner.routes)
        else:
            yield route


def permissions_of(dependant: Dependant) -> set[Permission]:
    found: set[Permission] = set()
    for dep in dependant.dependencies:
        call: Any = dep.call
        if isinstance(call, Require):
            found.add(call.permission)
        elif isinstance(call, DeviceScope | IncidentScope):
            found.add(call.require.permission)
        found |= permissions_of(dep)
    return found


async def _fixtures(api: Api) -> dict[str, str]:
    """A civil-protection device, its stored event and an open incident from it."""
    add_device(api.app.state.sessions, "dev-civil", department=CIVIL)
    start = event(EventKind.ABANDONED_OBJECT, device_id="dev-civil")
    await api.app.state.store.write_events([start])
    await api.app.state.ops.on_events([start])
    incident = api.app.state.ops.list_incidents(IncidentFilter()).items[0]
    assert incident.department == CIVIL
    return {
        "device_id": "dev-civil",
        "incident_id": incident.id,
        "event_id": start.id,
        "index": "0",
        "command_id": "c-1",
    }


def _url(path: str, values: dict[str, str]) -> str:
    return re.sub(r"\{(\w+)\}", lambda m: values[m.group(1)], path)


async def test_every_route_requires_credentials_role_and_department(api: Api) -> None:
    values = await _fixtures(api)
    # Wrong keys on purpose, ~50 times from one address: not slowed down here (that is
    # test_auth_throttle's subject).
    api.app.state.ctx.auth_throttle = AuthThrottle(free=10_000)
    every = list(flat_routes(api.app.routes))
    routes = [r for r in every if isinstance(r, APIRoute)]
    documented = set(api.app.openapi()["paths"])
    assert documented <= {r.path for r in routes}
    assert [r.path for r in every if isinstance(r, APIWebSocketRoute)] == ["/api/v1/live/ws"]
    checked = 0
    for route in routes:
        if route.path in PUBLIC:
            assert not permissions_of(route.dependant), route.path
            continue
        perms = permissions_of(route.dependant)
        assert len(perms) == 1, f"{route.path} must declare exactly one permission, has {perms}"
        (perm,) = perms
        url = _url(route.path, values)
        if route.path in CONSOLE_PAGES:
            for headers in ({}, api.auth("admin")):  # a key is no session: pages are for people
                page = await api.client.get(url, headers=headers)
                assert page.status_code == 303, route.path
                assert page.headers["location"].startswith("/login?next="), route.path
            continue
        scoped = bool(SCOPED_PARAMS & set(re.findall(r"\{(\w+)\}", route.path)))
        for method in sorted(route.methods or ()):
            send: dict[str, Any] = {"json": {}} if method in {"POST", "PUT", "PATCH"} else {}
            anonymous = await api.client.request(method, url, **send)
            assert anonymous.status_code == 401, (method, route.path)
            assert anonymous.headers["content-type"] == "application/problem+json"
            assert anonymous.headers["www-authenticate"] == "Bearer"
            bad = await api.client.request(
                method, url, headers={"Authorization": "Bearer cok_nope_nope"}, **send
            )
            assert bad.status_code == 401, (method, route.path)
            for role in Role:
                allowed = perm in ROLE_PERMISSIONS[role]
                if allowed and route.path in STREAMING:
                    continue
                response = await api.client.request(method, url, headers=api.auth(role), **send)
                if allowed:
                    assert response.status_code not in {401, 403}, (method, route.path, role)
                else:
                    assert response.status_code == 403, (method, route.path, role)
                    assert response.json()["status"] == 403
                if allowed and scoped and role is not Role.ADMIN:
                    outsider = await api.client.request(
                        method, url, headers=api.auth(f"{role.value}@{POLICE}"), **send
                    )
                    assert outsider.status_code == 403, (method, route.path, role, "department")
                    insider = await api.client.request(
                        method, url, headers=api.auth(f"{role.value}@{CIVIL}"), **send
                    )
                    assert insider.status_code not in {401, 403}, (method, route.path, role)
            checked += 1
    assert checked >= 25  # every route of the API was seen


async def test_lists_show_only_the_callers_departments(api: Api) -> None:
    values = await _fixtures(api)
    add_device(api.app.state.sessions, "dev-police", department=POLICE)
    parking = event(EventKind.ILLEGAL_PARKING, device_id="dev-police", zone_id="bay-1")
    await api.app.state.store.write_events([parking])
    await api.app.state.ops.on_events([parking])

    async def ids(path: str, who: str, key: str = "id") -> set[str]:
        response = await api.client.get(path, headers=api.auth(who))
        assert response.status_code == 200, response.text
        return {item[key] for item in response.json()["items"]}

    assert await ids("/api/v1/incidents", f"operator@{POLICE}", "device_id") == {"dev-police"}
    assert await ids("/api/v1/incidents", f"operator@{CIVIL}", "device_id") == {"dev-civil"}
    assert await ids("/api/v1/incidents", "supervisor", "device_id") == {"dev-police", "dev-civil"}
    assert await ids("/api/v1/devices", f"viewer@{POLICE}") == {"dev-police"}
    assert await ids("/api/v1/events", f"viewer@{POLICE}") == {parking.id}
    assert await ids("/api/v1/events", "viewer") == {parking.id, values["event_id"]}
    # Asking for another department's queue explicitly yields nothing, not an error.
    asked = await ids(f"/api/v1/incidents?department={CIVIL}", f"operator@{POLICE}")
    assert asked == set()


@pytest.mark.parametrize(
    ("path", "field"),
    [
        ("/api/v1/events?bbox=1,2", "bbox"),
        ("/api/v1/events?start=2026-01-01T00:00:00", "start"),
        ("/api/v1/events?limit=0", "limit"),
        ("/api/v1/incidents?status=closed", "status.0"),
        ("/api/v1/devices/Bad%20Id", "device_id"),
    ],
)
async def test_errors_are_problem_json_naming_the_field(api: Api, path: str, field: str) -> None:
    response = await api.client.get(path, headers=api.auth("admin"))
    assert response.status_code == 422
    assert response.headers["content-type"] == "application/problem+json"
    body = response.json()
    assert body["status"] == 422
    assert body["errors"][0]["field"] == field
    assert body["title"]


def _cursor(text: str) -> str:
    return base64.urlsafe_b64encode(text.encode()).decode()


@pytest.mark.parametrize(
    ("path", "field"),
    [
        ("/api/v1/events?start=0001-01-01T00:00:00%2B14:00", "start"),
        ("/api/v1/events?end=9999-12-31T23:59:59-14:00", "end"),
        ("/api/v1/events?start=1900-01-01T00:00:00Z", "start"),
        ("/api/v1/events/counts?interval_s=3600&end=0001-01-01T00:00:00%2B01:00", "end"),
        ("/api/v1/events/hotspots?start=0001-01-01T00:30:00%2B01:00", "start"),
        (f"/api/v1/events?cursor={_cursor('99999999999999999999999:x')}", "cursor"),
        ("/api/v1/audit?before_id=99999999999999999999999", "before_id"),
        ("/api/v1/dead-letters?cursor=99999999999999999999999", "cursor"),
        ("/api/v1/incidents?limit=99999999999999999999999", "limit"),
        ("/api/v1/devices/dev-civil?telemetry=99999999999999999999999", "telemetry"),
    ],
)
async def test_out_of_range_input_is_a_422_naming_the_field(
    api: Api, path: str, field: str
) -> None:
    add_device(api.app.state.sessions, "dev-civil", department=CIVIL)
    response = await api.client.get(path, headers=api.auth("admin"))
    assert response.status_code == 422, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["errors"][0]["field"] == field


async def test_a_store_outage_is_a_503_problem_with_retry_after(tmp_path: Path) -> None:
    dead = StoreSettings(
        kind="influx", influx=InfluxSettings(url=f"http://127.0.0.1:{free_port()}")
    )
    app = create_app(make_settings(tmp_path, store=dead), background=False)
    keys = add_keys(app)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://api") as client:
        response = await client.get(
            "/api/v1/events", headers={"Authorization": f"Bearer {keys['viewer']}"}
        )
    assert response.status_code == 503
    assert response.headers["content-type"] == "application/problem+json"
    assert response.headers["retry-after"] == "5"
    operation = app.openapi()["paths"]["/api/v1/events"]["get"]
    assert "application/problem+json" in operation["responses"]["503"]["content"]
