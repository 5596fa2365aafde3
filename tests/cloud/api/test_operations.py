"""SLA escalation seen through the API and the live hub, dead letters, health, metrics, keys CLI."""

from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import yaml
from typer.testing import CliRunner

from cityops.cli import app as cli_app
from cloud.api.app import create_app
from cloud.db.ingest import DeadLetter
from cloud.ops.clock import ManualClock
from cloud.ops.live import LiveFilter, LiveType
from cloud.ops.roles import Principal, Role
from shared.events import EventKind
from tests.cloud.api.conftest import CIVIL, Api, add_keys, make_settings
from tests.cloud.ops.builders import event

T0 = datetime(2026, 5, 4, 8, 0, tzinfo=UTC)


async def test_sla_breach_reaches_queue_and_live_stream_at_deadline(tmp_path: Path) -> None:
    clock = ManualClock(T0)
    app = create_app(make_settings(tmp_path), clock=clock, background=False)
    keys = add_keys(app)
    await app.state.store.setup()
    supervisor = Principal("k", "sup", Role.SUPERVISOR, frozenset({CIVIL}))
    sub = app.state.live.subscribe(supervisor, LiveFilter(types=[LiveType.INCIDENT]))
    transport = httpx.ASGITransport(app=app)
    headers = {"Authorization": f"Bearer {keys[f'supervisor@{CIVIL}']}"}
    try:
        await app.state.ops.on_events([event(EventKind.ABANDONED_OBJECT, observed_at=T0)])
        assert sub.queue.get_nowait().data["type"] == "created"
        async with httpx.AsyncClient(transport=transport, base_url="http://api") as http:
            clock.set(T0 + timedelta(seconds=119))
            await app.state.ops.check_sla()
            late = await http.get("/api/v1/incidents?breached=true", headers=headers)
            assert late.json()["items"] == []
            clock.set(T0 + timedelta(minutes=2))
            await app.state.ops.check_sla()
            late = await http.get("/api/v1/incidents?breached=true", headers=headers)
            (incident,) = late.json()["items"]
            assert incident["ack_breached"] is True
            assert incident["severity"] == "critical"
            message = sub.queue.get_nowait()
            assert message.data["type"] == "sla_breached"
            assert message.data["notify"] == ["supervisor"]
            trail = await http.get(f"/api/v1/incidents/{incident['id']}/audit", headers=headers)
            assert trail.json()[0]["action"] == "incident.sla_breached"
            assert trail.json()[0]["source"] == "sla"
    finally:
        await app.state.store.close()


async def test_dead_letters_are_listed_newest_first(api: Api) -> None:
    with api.app.state.sessions() as session:
        for i, reason in enumerate(["schema", "invalid_json", "schema"]):
            session.add(
                DeadLetter(
                    received_at=T0 + timedelta(seconds=i),
                    topic="cityops/v1/dev-a/event",
                    device_id="dev-a",
                    reason=reason,
                    field="objects.0.score" if reason == "schema" else None,
                    detail="bad",
                    payload="{}",
                )
            )
        session.commit()
    response = await api.client.get(
        "/api/v1/dead-letters?reason=schema&limit=1", headers=api.auth("technician")
    )
    page = response.json()
    assert [d["field"] for d in page["items"]] == ["objects.0.score"]
    older = await api.client.get(
        f"/api/v1/dead-letters?reason=schema&cursor={page['next_cursor']}",
        headers=api.auth("technician"),
    )
    assert len(older.json()["items"]) == 1
    assert older.json()["items"][0]["id"] < page["items"][0]["id"]


async def test_health_ready_metrics_and_openapi(api: Api) -> None:
    assert (await api.client.get("/healthz")).json() == {"status": "ok"}
    ready = await api.client.get("/readyz")
    assert ready.status_code == 200
    assert ready.json()["checks"] == {"database": "ok", "store": "ok"}
    await api.client.get("/api/v1/incidents", headers=api.auth("viewer"))
    metrics = (await api.client.get("/metrics")).text
    assert 'cityops_api_requests_total{method="GET",route="/api/v1/incidents",status="200"}' in (
        metrics
    )
    spec = (await api.client.get("/openapi.json")).json()
    assert spec["components"]["securitySchemes"]["HTTPBearer"]["scheme"] == "bearer"
    upsert = spec["components"]["schemas"]["DeviceUpsert"]["properties"]
    assert upsert["site"]["examples"] == ["Praça do Comércio"]


def test_keys_cli_create_list_revoke(tmp_path: Path) -> None:
    config = tmp_path / "cloud.yaml"
    config.write_text(
        yaml.safe_dump(
            {"database_url": f"sqlite:///{tmp_path / 'state.sqlite'}", "api": {"port": 9000}}
        )
    )
    runner = CliRunner()
    created = runner.invoke(
        cli_app,
        [
            "cloud",
            "keys",
            "create",
            "--name",
            "desk",
            "--role",
            "operator",
            "-d",
            CIVIL,
            "--config",
            str(config),
        ],
    )
    assert created.exit_code == 0, created.output
    key = created.output.strip()
    assert key.startswith("cok_")
    listed = runner.invoke(cli_app, ["cloud", "keys", "list", "--config", str(config)])
    assert CIVIL in listed.output
    assert key.split("_", 2)[2] not in listed.output
    key_id = key.split("_")[1]
    revoked = runner.invoke(cli_app, ["cloud", "keys", "revoke", key_id, "--config", str(config)])
    assert revoked.exit_code == 0
    again = runner.invoke(cli_app, ["cloud", "keys", "revoke", key_id, "--config", str(config)])
    assert again.exit_code == 1
    bad = runner.invoke(
        cli_app,
        ["cloud", "keys", "create", "--name", "x", "--role", "boss", "--config", str(config)],
    )
    assert bad.exit_code == 2
    assert "role" in bad.output
