"""Ingestor fixtures: real Mosquitto, both stores (SQLite and the real InfluxDB), SQLite state."""

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from pydantic import SecretStr
from sqlalchemy import Engine

from cloud.db.base import make_engine
from cloud.ingest.service import Ingestor
from cloud.services.influxd import Influxd
from cloud.settings import (
    CloudSettings,
    InfluxSettings,
    IngestSettings,
    MqttClientSettings,
    StoreSettings,
)
from cloud.store import build_store
from cloud.store.base import EventQuery, EventStore
from shared.events import Event
from tests.cloud.ingest.publisher import Publisher
from tests.conftest import Broker


def test_name(request: pytest.FixtureRequest) -> str:
    return "".join(c if c.isalnum() else "-" for c in request.node.name)[-40:].strip("-")


@pytest.fixture(params=["sqlite", "influx"])
def store_settings(request: pytest.FixtureRequest, tmp_path: Path) -> StoreSettings:
    if request.param == "sqlite":
        return StoreSettings(kind="sqlite", sqlite_path=tmp_path / "ts.sqlite")
    influxd: Influxd = request.getfixturevalue("influxd")
    database: str = request.getfixturevalue("influx_db")
    return StoreSettings(kind="influx", influx=InfluxSettings(url=influxd.url, database=database))


def make_settings(
    broker: Broker, store: StoreSettings, tmp_path: Path, name: str, **ingest: object
) -> CloudSettings:
    # A fresh session and share group per settings object: a persistent session of an earlier
    # test (same name, other store) must not be resumed with whatever was queued for it since.
    name = f"{name[:40]}-{uuid.uuid4().hex[:8]}"
    options: dict[str, object] = {
        "batch_size": 500,
        "batch_interval_s": 0.05,
        "share_group": f"g-{name}"[:64],
        "session_expiry_s": 300,
        "retry_initial_s": 0.1,
        "retry_max_s": 1.0,
        **ingest,
    }
    return CloudSettings(
        database_url=f"sqlite:///{tmp_path / 'state.sqlite'}",
        mqtt=MqttClientSettings(
            host=broker.host,
            port=broker.service_port,
            username="cityops-ingest",
            password=SecretStr("ingest-pw"),
            client_id=f"ingest-{name}"[:64],
        ),
        store=store,
        ingest=IngestSettings.model_validate(options),
    )


@pytest.fixture
def cloud_settings(
    mosquitto: Broker, store_settings: StoreSettings, tmp_path: Path, request: pytest.FixtureRequest
) -> CloudSettings:
    return make_settings(mosquitto, store_settings, tmp_path, test_name(request))


@dataclass
class Running:
    ingestor: Ingestor
    store: EventStore
    engine: Engine
    hooked: list[list[Event]] = field(default_factory=list)

    async def stored(self) -> int:
        return sum(c.count for c in await self.store.count_events(EventQuery(), "device_id"))

    async def wait_stored(self, n: int, within_s: float = 20.0) -> None:
        try:
            await eventually(lambda: self._at_least(n), within_s, f"{n} events stored")
        except AssertionError as exc:  # say how far it got: slow, or something lost?
            counted = await self.stored()
            raise AssertionError(f"{exc}; {counted} counted, {self.ingestor.stats()}") from exc

    async def _at_least(self, n: int) -> bool:
        return await self.stored() >= n


async def eventually(
    check: Callable[[], Awaitable[bool]], within_s: float = 20.0, what: str = "condition"
) -> None:
    deadline = time.monotonic() + within_s
    while not await check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {within_s:.0f} s waiting for {what}")
        await asyncio.sleep(0.05)


@asynccontextmanager
async def run_ingestor(settings: CloudSettings) -> AsyncIterator[Running]:
    """An ``Ingestor`` task with a recording hook; stopped and awaited on exit."""
    store = build_store(settings.store)
    engine = make_engine(settings.database_url)
    ingestor = Ingestor(settings, store, engine)
    running = Running(ingestor=ingestor, store=store, engine=engine)

    async def record(events: Sequence[Event]) -> None:
        running.hooked.append(list(events))

    ingestor.add_hook(record)
    stop = asyncio.Event()
    task = asyncio.create_task(ingestor.run(stop))
    try:
        await asyncio.wait_for(ingestor.connected.wait(), 15)
        yield running
    finally:
        stop.set()
        await asyncio.wait_for(task, 15)
        await store.close()
        engine.dispose()


@pytest.fixture
async def running(cloud_settings: CloudSettings) -> AsyncIterator[Running]:
    async with run_ingestor(cloud_settings) as r:
        yield r


@pytest.fixture
def device(mosquitto: Broker) -> Iterator[Publisher]:
    """Publishes as the device ``dev-a`` (its own ACL applies)."""
    with Publisher(mosquitto.host, mosquitto.port, "dev-a", "dev-a-pw") as pub:
        yield pub


@pytest.fixture
def admin(mosquitto: Broker) -> Iterator[Publisher]:
    """Publishes anywhere, to fake misbehaving devices."""
    with Publisher(mosquitto.host, mosquitto.service_port, "cityops-admin", "admin-pw") as pub:
        yield pub
