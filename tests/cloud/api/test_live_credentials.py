"""Live streams and credentials: keys stay out of URLs, and every open stream re-checks its key.

Revoking, expiring or narrowing a key closes or narrows its open WebSocket and SSE streams
within 5 s (``RECHECK_S`` is 2 s).
"""

import asyncio
import json
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy.orm import Session
from typer.testing import CliRunner
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed
from websockets.typing import Subprotocol

from cityops.cli import app as cli
from cloud.api.app import create_app
from cloud.db.base import make_engine
from cloud.db.schema import BASELINE, prepare_schema, upgrade
from cloud.ops.keys import authenticate, create_api_key, revoke_api_key, update_api_key
from shared.clock import utcnow
from shared.events import Event, EventKind
from tests.cloud.api.conftest import CIVIL, POLICE, Served, add_keys, make_settings, serve, stop
from tests.cloud.ops.builders import add_device, event

CLOSE_WITHIN_S = 5.0
runner = CliRunner()


@pytest.fixture
async def served(tmp_path: Path) -> AsyncIterator[Served]:
    app = create_app(make_settings(tmp_path), background=False)
    app.state.keys = add_keys(app)
    add_device(app.state.sessions, "dev-civil", department=CIVIL)
    add_device(app.state.sessions, "dev-police", department=POLICE)
    app.state.live.device_departments.update({"dev-civil": CIVIL, "dev-police": POLICE})
    running = await serve(app)
    yield running
    await stop(running)


def protocols(*names: str) -> list[Subprotocol]:
    return [Subprotocol(name) for name in names]


def ws_url(served: Served, query: str = "") -> str:
    return served.url.replace("http", "ws") + "/api/v1/live/ws" + query


def new_key(served: Served, role: str = "viewer", departments: tuple[str, ...] = ("*",)) -> str:
    with served.app.state.sessions() as session:
        return create_api_key(session, name="stream test", role=role, departments=departments)


async def publish(served: Served, *events: Event) -> None:
    await served.app.state.live.publish_events(list(events))


async def first_message(ws: ClientConnection, served: Served, *events: Event) -> dict[str, Any]:
    """Publish *events* (a civil-protection one by default) until *ws* gets a message.

    The server subscribes only after it has checked the credential, which is after the
    handshake the client waits for.
    """
    events = events or (event(EventKind.CROWDING, device_id="dev-civil"),)
    async with asyncio.timeout(5):
        while True:
            await publish(served, *events)
            try:
                message: dict[str, Any] = json.loads(await asyncio.wait_for(ws.recv(), 0.2))
            except TimeoutError:
                continue
            return message


async def until_closed(ws: ClientConnection, served: Served) -> int | None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + CLOSE_WITHIN_S
    while loop.time() < deadline:
        await publish(served, event(EventKind.CROWDING, device_id="dev-civil"))
        try:
            await asyncio.wait_for(ws.recv(), 0.25)
        except ConnectionClosed:
            return ws.close_code
        except TimeoutError:
            continue
    return None


async def test_revoked_key_closes_its_websocket_within_5_s(served: Served) -> None:
    key = new_key(served)
    async with connect(ws_url(served), additional_headers={"Authorization": f"Bearer {key}"}) as ws:
        assert (await first_message(ws, served))["device_id"] == "dev-civil"
        with served.app.state.sessions() as session:
            assert revoke_api_key(session, key)
        assert await until_closed(ws, served) == 4401
        assert "revoked" in (ws.close_reason or "")


async def test_expired_key_closes_its_websocket(served: Served) -> None:
    with served.app.state.sessions() as session:
        key = create_api_key(
            session, name="short", role="viewer", expires_at=utcnow() + timedelta(seconds=3)
        )
    async with connect(ws_url(served), additional_headers={"Authorization": f"Bearer {key}"}) as ws:
        assert (await first_message(ws, served))["type"] == "event"
        await asyncio.sleep(3)
        assert await until_closed(ws, served) == 4401
    async with httpx.AsyncClient(base_url=served.url) as client:
        response = await client.get("/api/v1/me", headers={"Authorization": f"Bearer {key}"})
    assert response.status_code == 401


async def test_narrowed_key_narrows_its_websocket_and_a_lost_role_closes_it(
    served: Served,
) -> None:
    key = new_key(served, departments=(CIVIL, POLICE))
    key_id = key.split("_")[1]
    async with connect(ws_url(served), additional_headers={"Authorization": f"Bearer {key}"}) as ws:
        assert (await first_message(ws, served))["device_id"] == "dev-civil"
        with served.app.state.sessions() as session:
            assert update_api_key(session, key_id, departments=[POLICE]) is not None
        await asyncio.sleep(CLOSE_WITHIN_S)
        await publish(
            served,
            event(EventKind.CROWDING, device_id="dev-civil"),
            event(EventKind.ILLEGAL_PARKING, device_id="dev-police"),
        )
        message = json.loads(await asyncio.wait_for(ws.recv(), 5))
        assert message["device_id"] == "dev-police"  # the civil event was not delivered
        with served.app.state.sessions() as session:
            assert update_api_key(session, key_id, role="technician") is not None
        assert await until_closed(ws, served) == 4403


async def test_revoked_key_ends_its_sse_stream_within_5_s(served: Served) -> None:
    key = new_key(served)
    headers = {"Authorization": f"Bearer {key}"}
    async with (
        httpx.AsyncClient(base_url=served.url, timeout=10) as client,
        client.stream("GET", "/api/v1/live/sse", headers=headers) as response,
    ):
        assert response.status_code == 200
        lines = response.aiter_lines()
        assert await anext(lines) == ": connected"
        await publish(served, event(EventKind.CROWDING, device_id="dev-civil"))
        async with asyncio.timeout(5):
            while not (await anext(lines)).startswith("data:"):
                pass
        with served.app.state.sessions() as session:
            assert revoke_api_key(session, key)
        async with asyncio.timeout(CLOSE_WITHIN_S):
            seen = [line async for line in lines]  # ends when the server closes the stream
        assert "event: closed" in seen


async def _refused(url: str, **kwargs: Any) -> int | None:
    async with connect(url, **kwargs) as ws:
        with pytest.raises(ConnectionClosed):
            await asyncio.wait_for(ws.recv(), 5)
        return ws.close_code


async def test_websocket_takes_no_key_in_the_url_but_a_header_subprotocol_or_ticket(
    served: Served,
) -> None:
    keys = served.app.state.keys
    viewer = keys["viewer"]
    # A key in the URL is refused even when valid: it would end up in logs and histories.
    assert await _refused(ws_url(served, f"?token={viewer}")) == 4401
    assert await _refused(ws_url(served)) == 4401
    assert (
        await _refused(
            ws_url(served), subprotocols=protocols("cityops.v1", "cityops.bearer.cok_x_y")
        )
        == 4401
    )
    tech = protocols("cityops.v1", f"cityops.bearer.{keys['technician']}")
    assert await _refused(ws_url(served), subprotocols=tech) == 4403

    async def receives(ws: ClientConnection) -> bool:
        return bool((await first_message(ws, served))["type"] == "event")

    bearer = protocols("cityops.v1", f"cityops.bearer.{viewer}")
    async with connect(ws_url(served), subprotocols=bearer) as ws:
        assert ws.subprotocol == "cityops.v1"
        assert await receives(ws)
    async with httpx.AsyncClient(base_url=served.url) as client:
        made = await client.post(
            "/api/v1/live/tickets", headers={"Authorization": f"Bearer {viewer}"}
        )
        assert made.status_code == 201
        ticket = made.json()["ticket"]
        assert made.json()["expires_in_s"] <= 60
        assert (await client.post("/api/v1/live/tickets")).status_code == 401
        tech_ticket = await client.post(
            "/api/v1/live/tickets", headers={"Authorization": f"Bearer {keys['technician']}"}
        )
        assert tech_ticket.status_code == 403
    by_ticket = protocols("cityops.v1", f"cityops.ticket.{ticket}")
    async with connect(ws_url(served), subprotocols=by_ticket) as ws:
        assert await receives(ws)
    # Single use: the same ticket again is refused.
    assert await _refused(ws_url(served), subprotocols=by_ticket) == 4401
    async with httpx.AsyncClient(base_url=served.url) as client:
        again = await client.post(
            "/api/v1/live/tickets", headers={"Authorization": f"Bearer {viewer}"}
        )
    async with connect(ws_url(served, f"?ticket={again.json()['ticket']}")) as ws:
        assert await receives(ws)


def test_keys_can_expire_and_be_narrowed_from_the_cli(tmp_path: Path) -> None:
    config = tmp_path / "cloud.yaml"
    config.write_text(f"database_url: sqlite:///{tmp_path / 'state.sqlite'}\n")
    made = runner.invoke(
        cli,
        ["cloud", "keys", "create", "--name", "desk", "--role", "operator", "-c", str(config)],
    )
    assert made.exit_code == 0, made.output
    key = made.output.strip()
    key_id = key.split("_")[1]
    narrowed = runner.invoke(
        cli,
        [
            "cloud", "keys", "update", key_id, "--role", "viewer", "-d", CIVIL,
            "--expires-in", "1", "-c", str(config),
        ],
    )  # fmt: skip
    assert narrowed.exit_code == 0, narrowed.output
    engine = make_engine(f"sqlite:///{tmp_path / 'state.sqlite'}")
    with Session(engine) as session:
        principal = authenticate(session, key)
    assert principal is not None
    assert (principal.role.value, principal.departments) == ("viewer", frozenset({CIVIL}))
    assert principal.expires_at is not None
    assert timedelta(minutes=59) < principal.expires_at - utcnow() <= timedelta(hours=1)
    listed = runner.invoke(cli, ["cloud", "keys", "list", "-c", str(config)])
    assert "expires" in listed.output
    unknown = runner.invoke(cli, ["cloud", "keys", "update", "nope", "-c", str(config)])
    assert unknown.exit_code == 1
    engine.dispose()


def test_an_older_database_gains_the_key_expiry_column(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'old.sqlite'}")
    upgrade(engine, BASELINE)  # the tables as the previous version's create_all made them
    with engine.begin() as conn:
        conn.exec_driver_sql("DROP TABLE alembic_version")  # ... before migrations existed
        columns = [row[1] for row in conn.exec_driver_sql("PRAGMA table_info(api_keys)")]
    assert "expires_at" not in columns
    prepare_schema(engine)  # what every start runs: migration 0002 adds the column
    with Session(engine, expire_on_commit=False) as session:
        key = create_api_key(session, name="after upgrade", role="viewer")
        assert authenticate(session, key) is not None
    engine.dispose()
