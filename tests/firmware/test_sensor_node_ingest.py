"""A simulated sensor node through the real broker and the real ingest into the SQLite store."""

import asyncio
from collections.abc import Callable
from pathlib import Path

import pytest

from cloud.settings import StoreSettings
from cloud.store.base import EventQuery
from firmware.sensor_node.host.board import Scene
from shared.events import EventKind, Phase
from tests.cloud.ingest.conftest import eventually, make_settings, run_ingestor
from tests.conftest import Broker
from tests.firmware.nodes import sim_node

pytestmark = pytest.mark.services

SERIES = [12, 18, 41, 60, 33, 38, 22, 15]
"""pm2.5: one episode (41 .. 22) although four readings are above the clear level."""


async def test_sensor_readings_and_threshold_event_are_stored(
    broker_factory: Callable[[], Broker], tmp_path: Path
) -> None:
    broker = broker_factory()
    store = StoreSettings(kind="sqlite", sqlite_path=tmp_path / "ts.sqlite")
    settings = make_settings(broker, store, tmp_path, "sensor-node")
    sim = sim_node(broker, "node-ingest", lambda n: Scene(pm25_ugm3=SERIES[n], car_in_bay=n > 4))
    async with run_ingestor(settings) as running:
        await asyncio.to_thread(sim.cycles, 3)
        broker.server.stop()  # the node keeps reading into its flash ring
        ingest_online = running.ingestor.connected

        async def ingest_gone() -> bool:
            return not ingest_online.is_set()

        await eventually(ingest_gone, 10, "the ingestor to notice the broker is gone")
        await asyncio.to_thread(sim.cycles, 3)
        assert len(sim.node.buffer) == 3  # the episode started online and goes on offline
        broker.server.start()
        # The harness broker keeps no sessions across a restart, so the ingestor must be back
        # before the node drains (a production broker persists the ingestor's session).
        await asyncio.wait_for(ingest_online.wait(), 15)
        await asyncio.to_thread(sim.cycles, len(SERIES) - 6)

        async def all_telemetry() -> bool:
            got = await running.store.recent_telemetry("node-ingest", limit=50)
            return len(got) >= len(SERIES)

        await eventually(all_telemetry, 30, "every reading stored")
        await running.wait_stored(2, 30)
        telemetry = await running.store.recent_telemetry("node-ingest", limit=50)
        page = await running.store.query_events(EventQuery(device_ids=["node-ingest"]))
    sim.mqtt.disconnect()
    telemetry.sort(key=lambda t: t.ts)
    assert [t.readings["pm25_ugm3"] for t in telemetry] == [float(v) for v in SERIES]
    assert [t.readings["bay_occupied"] for t in telemetry] == [0.0] * 5 + [1.0] * 3
    assert {t.battery_pct for t in telemetry} == {87.0}
    events = sorted(page.items, key=lambda e: e.observed_at)
    assert [(e.kind, e.phase, e.zone_id) for e in events] == [
        (EventKind.SENSOR_THRESHOLD, Phase.START, "pm25"),
        (EventKind.SENSOR_THRESHOLD, Phase.END, "pm25"),
    ]
    assert events[1].attributes["start_id"] == events[0].id
    hooked = {e.id for batch in running.hooked for e in batch}
    assert hooked == {e.id for e in events}
