"""Fixtures of the API tests: a real app over SQLite (or InfluxDB), keys per role, servers."""

import asyncio
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
import uvicorn
from fastapi import FastAPI

from cloud.api.app import create_app
from cloud.api.settings import ApiOptions, ApiSettings
from cloud.ops.clock import Clock
from cloud.ops.keys import create_api_key
from cloud.ops.roles import Role
from cloud.services.ports import free_port
from cloud.settings import CloudSettings, IngestSettings, MqttClientSettings, StoreSettings
from tests.conftest import Broker

CIVIL = "civil-protection"
POLICE = "traffic-enforcement"


@dataclass
class Api:
    app: FastAPI
    client: httpx.AsyncClient
    keys: dict[str, str] = field(default_factory=dict)
    """``<role>`` (all departments), ``<role>@<department>`` (scoped)."""

    def auth(self, who: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.keys[who]}"}


def make_settings(
    tmp_path: Path,
    *,
    store: StoreSettings | None = None,
    broker: Broker | None = None,
    name: str = "t",
) -> ApiSettings:
    mqtt = MqttClientSettings()
    api_mqtt = None
    if broker is not None:
        mqtt = MqttClientSettings(
            host=broker.host,
            port=broker.port,
            username="cityops-ingest",
            password="ingest-pw",
            client_id=f"ingest-{name}",
        )
        api_mqtt = MqttClientSettings(
            host=broker.host,
            port=broker.port,
            username="cityops-api",
            password="api-pw",
            client_id=f"api-{name}",
        )
    return ApiSettings(
        cloud=CloudSettings(
            database_url=f"sqlite:///{tmp_path / 'state.sqlite'}",
            mqtt=mqtt,
            store=store or StoreSettings(kind="sqlite", sqlite_path=tmp_path / "ts.sqlite"),
            ingest=IngestSettings(
                share_group=f"g-{name}", session_expiry_s=0, batch_interval_s=0.05
            ),
        ),
        api=ApiOptions(mqtt_enabled=broker is not None, mqtt=api_mqtt, sla_check_interval_s=0.5),
    )


def add_keys(app: FastAPI) -> dict[str, str]:
    keys: dict[str, str] = {}
    with app.state.sessions() as session:
        for role in Role:
            keys[role.value] = create_api_key(session, name=f"{role.value} key", role=role)
            for dept in (CIVIL, POLICE):
                keys[f"{role.value}@{dept}"] = create_api_key(
                    session, name=f"{role.value} of {dept}", role=role, departments=[dept]
                )
    return keys


@pytest.fixture
def api_factory(tmp_path: Path) -> Callable[..., FastAPI]:
    def make(*, store: StoreSettings | None = None, clock: Clock | None = None) -> FastAPI:
        return create_app(make_settings(tmp_path, store=store), clock=clock, background=False)

    return make


@pytest.fixture
async def api(tmp_path: Path) -> AsyncIterator[Api]:
    """In-process app (no MQTT, no background tasks) over SQLite, via ASGITransport."""
    app = create_app(make_settings(tmp_path), background=False)
    await app.state.store.setup()
    transport = httpx.ASGITransport(app=app, client=("10.1.2.3", 5555))
    async with httpx.AsyncClient(transport=transport, base_url="http://api") as client:
        yield Api(app=app, client=client, keys=add_keys(app))
    await app.state.store.close()


@dataclass
class Served:
    app: FastAPI
    url: str
    server: uvicorn.Server
    task: "asyncio.Task[None]"


async def serve(app: FastAPI) -> Served:
    """Run *app* with uvicorn on a free port in this event loop (lifespan included)."""
    port = free_port()
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", ws="auto")
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    async with asyncio.timeout(10):
        while not server.started:  # noqa: ASYNC110 - uvicorn offers no started event
            await asyncio.sleep(0.02)
    return Served(app=app, url=f"http://127.0.0.1:{port}", server=server, task=task)


async def stop(served: Served) -> None:
    served.server.should_exit = True
    async with asyncio.timeout(20):
        await served.task
