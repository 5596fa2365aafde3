"""Every store test runs on both stores: the embedded SQLite one and the real InfluxDB."""

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from cloud.services.influxd import Influxd
from cloud.settings import InfluxSettings, StoreSettings
from cloud.store import build_store
from cloud.store.base import EventStore


@pytest.fixture(params=["sqlite", "influx"])
def store_settings(request: pytest.FixtureRequest, tmp_path: Path) -> StoreSettings:
    if request.param == "sqlite":
        return StoreSettings(kind="sqlite", sqlite_path=tmp_path / "ts.sqlite")
    influxd: Influxd = request.getfixturevalue("influxd")
    database: str = request.getfixturevalue("influx_db")
    return StoreSettings(kind="influx", influx=InfluxSettings(url=influxd.url, database=database))


@pytest.fixture
async def store(store_settings: StoreSettings) -> AsyncIterator[EventStore]:
    s = build_store(store_settings)
    await s.setup()
    yield s
    await s.close()
