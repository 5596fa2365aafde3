"""Sign-in, sessions and CSRF over HTTP (in-process app, no browser)."""

import asyncio
import re
import time
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI

from cloud.api.app import create_app
from cloud.console.auth import LOGIN_CSRF_COOKIE, SESSION_COOKIE, LoginThrottle
from cloud.ops.sessions import SessionLimits, open_session, resolve_session
from cloud.ops.users import (
    UserError,
    check_login,
    create_user,
    disable_user,
    list_users,
    set_password,
)
from shared.clock import utcnow
from shared.events import EventKind
from tests.cloud.api.conftest import CIVIL, POLICE, add_keys, make_settings
from tests.cloud.console.conftest import PASSWORD, add_users, login_http
from tests.cloud.ops.builders import add_device, event, ops_database


@pytest.fixture
async def app(tmp_path: Path) -> AsyncIterator[FastAPI]:
    app = create_app(make_settings(tmp_path), background=False)
    await app.state.store.setup()
    app.state.keys = add_keys(app)
    add_users(app)
    add_device(app.state.sessions, "dev-a", department=CIVIL)
    add_device(app.state.sessions, "dev-b", department=POLICE)
    yield app
    await app.state.store.close()


def client(app: FastAPI, base_url: str = "http://console") -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=app, client=("10.9.8.7", 4444))
    return httpx.AsyncClient(transport=transport, base_url=base_url)


async def csrf_of(http: httpx.AsyncClient) -> str:
    page = await http.get("/")
    found = re.search(r'<meta name="csrf-token" content="([^"]+)">', page.text)
    assert found is not None
    return found.group(1)


async def open_incidents(app: FastAPI) -> dict[str, str]:
    await app.state.ops.on_events(
        [
            event(device_id="dev-a"),
            event(EventKind.ILLEGAL_PARKING, device_id="dev-b", zone_id="bay", track_id=9),
        ]
    )
    with app.state.sessions() as session:
        from cloud.db.ops import Incident

        return {row.department: row.id for row in session.query(Incident)}


async def test_pages_need_a_session_and_login_sets_a_strict_cookie(app: FastAPI) -> None:
    async with client(app) as http:
        first = await http.get("/devices?x=1")
        assert first.status_code == 303
        assert first.headers["location"] == "/login?next=%2Fdevices%3Fx%3D1"
        assert (await http.get("/console/api/queue")).status_code == 401
        await login_http(http, "ana")
        cookie = next(c for c in http.cookies.jar if c.name == SESSION_COOKIE)
        assert cookie.has_nonstandard_attr("HttpOnly")
        assert not cookie.secure  # plain http: a Secure cookie would never come back
        page = await http.get("/")
        assert page.status_code == 200
        assert "default-src 'self'" in page.headers["content-security-policy"]
        assert "Ana Silva" in page.text


async def test_pages_follow_the_role(app: FastAPI) -> None:
    ids = await open_incidents(app)
    async with client(app) as tech:
        await login_http(tech, "tomas", landing="/devices")  # no queue for a technician
        assert (await tech.get("/")).status_code == 403
        assert (await tech.get(f"/incidents/{ids[CIVIL]}")).status_code == 403
        devices = await tech.get("/devices")
        assert devices.status_code == 200
        assert 'href="/events"' in devices.text
        assert '<a href="/" ' not in devices.text
    async with client(app) as viewer:
        await login_http(viewer, "vera")
        assert (await viewer.get(f"/incidents/{ids[CIVIL]}")).status_code == 200
        # Another department's incident: the same answer as an unknown one.
        other = await viewer.get(f"/incidents/{ids[POLICE]}")
        assert other.status_code == 404
        assert ids[POLICE] not in other.text


async def test_cookie_is_secure_over_tls(app: FastAPI) -> None:
    async with client(app, "https://console") as http:
        page = await http.get("/login")
        token = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
        assert token is not None
        answer = await http.post(
            "/login",
            data={"username": "ana", "password": PASSWORD, "csrf_token": token.group(1)},
        )
        assert answer.status_code == 303
        set_cookie = answer.headers["set-cookie"]
        assert "cityops_session=" in set_cookie
        assert "HttpOnly" in set_cookie
        assert "Secure" in set_cookie
        assert "SameSite=lax" in set_cookie


async def test_login_form_needs_its_csrf_token_and_never_redirects_off_site(
    app: FastAPI,
) -> None:
    async with client(app) as http:
        refused = await http.post("/login", data={"username": "ana", "password": PASSWORD})
        assert refused.status_code == 403
        assert SESSION_COOKIE not in refused.cookies
        page = await http.get("/login")
        token = http.cookies[LOGIN_CSRF_COOKIE]
        assert token in page.text
        answer = await http.post(
            "/login",
            data={
                "username": "ana",
                "password": PASSWORD,
                "csrf_token": token,
                "next": "//evil.example/x",
            },
        )
        assert answer.status_code == 303
        assert answer.headers["location"] == "/"


async def test_session_acts_as_the_user_with_csrf_and_audit(app: FastAPI) -> None:
    ids = await open_incidents(app)
    async with client(app) as http:
        await login_http(http, "ana")
        queue = (await http.get("/console/api/queue")).json()
        assert [i["department"] for i in queue["items"]] == [CIVIL]
        forged = await http.get("/console/api/queue", params={"cursor": "x"})
        assert forged.status_code == 422
        assert forged.json()["errors"] == [
            {"field": "cursor", "message": "cursor: not a cursor of this queue"}
        ]
        path = f"/api/v1/incidents/{ids[CIVIL]}/acknowledge"
        assert (await http.post(path, json={})).status_code == 403  # no token
        token = await csrf_of(http)
        assert (
            await http.post(path, json={}, headers={"X-CSRF-Token": "x" + token})
        ).status_code == 403
        cross = await http.post(
            path, json={}, headers={"X-CSRF-Token": token, "Origin": "http://evil.example"}
        )
        assert cross.status_code == 403
        assert "cross-site" in cross.json()["detail"]
        other = f"/api/v1/incidents/{ids[POLICE]}/acknowledge"
        assert (await http.post(other, json={}, headers={"X-CSRF-Token": token})).status_code == 403
        done = await http.post(
            path,
            json={"note": "seen"},
            headers={"X-CSRF-Token": token, "Origin": "http://console", "User-Agent": "t/1"},
        )
        assert done.status_code == 200, done.text
        trail = (await http.get(f"/api/v1/incidents/{ids[CIVIL]}/audit")).json()
        assert trail[0]["action"] == "incident.acknowledged"
        assert trail[0]["actor"] == "Ana Silva (user:ana)"
        assert trail[0]["role"] == "operator"
        assert trail[0]["source"] == "10.9.8.7"
        # The same rules and errors as with a key: a second acknowledge is a 409 naming status.
        again = await http.post(path, json={}, headers={"X-CSRF-Token": token})
        assert again.status_code == 409
        assert again.json()["errors"][0]["field"] == "status"
        # A key in the same request wins over the cookie (and needs no CSRF token).
        keyed = await http.get(
            "/api/v1/me", headers={"Authorization": f"Bearer {app.state.keys['viewer']}"}
        )
        assert keyed.json()["role"] == "viewer"

        logout = await http.post("/logout", data={"csrf_token": token})
        assert logout.status_code == 303
        assert (await http.get("/console/api/queue")).status_code == 401
    with app.state.sessions() as session:
        from cloud.ops.audit import list_audit

        actions = [a.action for a in list_audit(session, target_type="user")]
    assert actions == ["user.logout", "user.login"]


async def test_failed_logins_are_slowed_counted_and_audited(app: FastAPI) -> None:
    async with client(app) as http:
        took = []
        for _ in range(3):
            page = await http.get("/login")
            started = time.perf_counter()
            answer = await http.post(
                "/login",
                data={
                    "username": "ana",
                    "password": "wrong password!",
                    "csrf_token": http.cookies[LOGIN_CSRF_COOKIE],
                },
            )
            took.append(time.perf_counter() - started)
            assert answer.status_code == 401
            assert "Wrong user name or password" in answer.text
            assert page.status_code == 200
        # Attempts 2 and 3 waited 0.25 s and 0.5 s before being checked.
        assert took[1] >= 0.25
        assert took[2] >= 0.5
        assert app.state.login_throttle.failed_total == 3
        metrics = (await http.get("/metrics")).text
        assert "cityops_console_login_failures_total 3.0" in metrics
        with app.state.sessions() as session:
            ana = next(u for u in list_users(session) if u.username == "ana")
            assert ana.failed_logins == 3
            from cloud.ops.audit import list_audit

            failed = list_audit(session, target_type="user", target_id="ana")
            assert [a.action for a in failed] == ["user.login_failed"] * 3
            assert failed[0].source == "10.9.8.7"
        await login_http(http, "ana")  # still works (slowed, not locked)
        with app.state.sessions() as session:
            ana = next(u for u in list_users(session) if u.username == "ana")
            assert ana.failed_logins == 0


async def test_parallel_attempts_queue_behind_the_delay() -> None:
    throttle = LoginThrottle(base_s=0.2)
    throttle.failed("user:x")
    throttle.failed("user:x")
    assert throttle.delay_s("user:x", "addr:1") == pytest.approx(0.4)
    assert throttle.delay_s("user:y", "addr:1") == 0.0

    async def attempt() -> float:
        async with throttle.lock("x"):
            await asyncio.sleep(throttle.delay_s("user:x"))
            return time.perf_counter()

    started = time.perf_counter()
    ends = await asyncio.gather(attempt(), attempt())
    assert max(ends) - started >= 0.8  # one after the other, not both at once


def test_sessions_expire_idle_and_absolute(tmp_path: Path) -> None:
    app = create_app(make_settings(tmp_path), background=False)
    add_users(app)
    limits = SessionLimits(idle=timedelta(minutes=30), max_age=timedelta(hours=8))
    with app.state.sessions() as session:
        principal = check_login(session, "ana", PASSWORD)
        assert principal is not None
        opened = open_session(session, principal, "ana", limits)
        now = utcnow()
        assert resolve_session(session, opened.token, limits, now=now) is not None
        assert (
            resolve_session(session, opened.token, limits, now=now + timedelta(minutes=31)) is None
        )
        # Gone for good once seen expired.
        assert resolve_session(session, opened.token, limits, now=now) is None
        busy = open_session(session, principal, "ana", limits)
        at = now
        for _ in range(20):  # used every 25 minutes: never idle, but a shift ends
            at += timedelta(minutes=25)
            if resolve_session(session, busy.token, limits, now=at) is None:
                break
        assert at - now == timedelta(hours=8, minutes=20)


def test_disable_and_new_password_end_sessions(tmp_path: Path) -> None:
    app = create_app(make_settings(tmp_path), background=False)
    add_users(app)
    limits = SessionLimits()
    with app.state.sessions() as session:
        principal = check_login(session, "rui", PASSWORD)
        assert principal is not None
        assert principal.key_id == "user:rui"
        assert principal.departments == frozenset({POLICE})
        opened = open_session(session, principal, "rui", limits)
        set_password(session, "rui", "another long password")
        assert resolve_session(session, opened.token, limits) is None
        assert check_login(session, "rui", PASSWORD) is None
        principal = check_login(session, "rui", "another long password")
        assert principal is not None
        opened = open_session(session, principal, "rui", limits)
        disable_user(session, "rui")
        assert resolve_session(session, opened.token, limits) is None
        assert check_login(session, "rui", "another long password") is None


@pytest.mark.parametrize(
    ("username", "password", "role", "departments", "field"),
    [
        ("Ana", PASSWORD, "operator", ["*"], "username"),
        ("new", "short", "operator", ["*"], "password"),
        ("new", PASSWORD, "boss", ["*"], "role"),
        ("new", PASSWORD, "operator", ["Bad Dept"], "departments"),
        ("ana", PASSWORD, "operator", ["*"], "username"),
    ],
)
def test_create_user_names_the_bad_field(  # noqa: PLR0917 - one per parametrized column
    tmp_path: Path,
    username: str,
    password: str,
    role: str,
    departments: list[str],
    field: str,
) -> None:
    sessions = ops_database(tmp_path / "state.sqlite")
    with sessions() as session:
        create_user(session, "ana", PASSWORD, "operator")
        with pytest.raises(UserError, match=f"^{field}:"):
            create_user(session, username, password, role, departments)


def test_open_streams_of_a_disabled_user_are_cut(app: FastAPI) -> None:
    """``revalidate`` (the live streams' re-check) knows console users."""
    from cloud.api.deps import revalidate

    ctx = app.state.ctx
    with app.state.sessions() as session:
        principal = check_login(session, "ana", PASSWORD)
    assert principal is not None
    again = revalidate(ctx, principal)
    assert again is not None
    assert again.departments == frozenset({CIVIL})
    with app.state.sessions() as session:
        disable_user(session, "ana")
    assert revalidate(ctx, principal) is None
