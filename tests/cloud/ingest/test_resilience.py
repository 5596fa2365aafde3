"""Nothing lost: InfluxDB down for 30 s mid-stream, and the ingestor process killed mid-batch."""

import asyncio
import contextlib
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import yaml

from cloud.db.base import make_engine
from cloud.ingest.service import Ingestor
from cloud.services.influxd import Influxd
from cloud.settings import CloudSettings, InfluxSettings, StoreSettings
from cloud.store import build_store
from cloud.store.base import EventQuery, EventStore
from shared.events import Event
from shared.topics import Channel
from tests.cloud.ingest.conftest import eventually, make_settings, run_ingestor
from tests.cloud.ingest.publisher import Publisher
from tests.cloud.store.factories import make_event
from tests.conftest import Broker

OUTAGE_S = 30.0
DEVICES = ("dev-a", "dev-b", "dev-c")


def _events(n: int) -> list[Event]:
    return [make_event(DEVICES[i % 3], zone_id=f"z{i % 7}") for i in range(n)]


def _influx_count(server: Influxd, db: str) -> int:
    data = server.query('SELECT count("id") FROM "events"', db=db)
    series = data["results"][0].get("series")  # type: ignore[index]
    return 0 if not series else int(series[0]["values"][0][1])


async def test_influx_stopped_30s_during_5000_events(
    mosquitto: Broker, influx_factory: Callable[[], Influxd], tmp_path: Path
) -> None:
    server = influx_factory()
    store = StoreSettings(kind="influx", influx=InfluxSettings(url=server.url, database="city"))
    # A small receive window so that most of the outage is queued by the broker, not in memory.
    settings = make_settings(
        mosquitto, store, tmp_path, "influx-down", batch_size=500, receive_maximum=1000
    )
    events = _events(5000)
    async with run_ingestor(settings) as running:
        with Publisher(mosquitto.host, mosquitto.service_port, "cityops-admin", "admin-pw") as pub:
            for e in events[:1000]:
                pub.send(e, Channel.EVENT)
            await asyncio.to_thread(pub.flush)
            await running.wait_stored(1000)

            await asyncio.to_thread(server.stop)
            down_at = time.monotonic()
            for start in range(1000, 5000, 500):  # the stream goes on during the outage
                for e in events[start : start + 500]:
                    pub.send(e, Channel.EVENT)
                await asyncio.to_thread(pub.flush)
                await asyncio.sleep(2.0)
            await asyncio.sleep(max(0.0, OUTAGE_S - (time.monotonic() - down_at)))
            assert running.ingestor.stats().stored_events < 5000
            await asyncio.to_thread(server.start)
            # Generous: one clean-clone run missed 60 s here and the cause was not found (runs
            # alone, under load and in two full suites passed); a failure says how far it got.
            await running.wait_stored(5000, within_s=120)

        assert _influx_count(server, "city") == 5000
        page = await running.store.query_events(EventQuery(limit=1000))
        assert len({e.id for e in page.items}) == 1000
        hooked = [e.id for batch in running.hooked for e in batch]
        assert len(hooked) == len(set(hooked)) == 5000
        assert set(hooked) == {e.id for e in events}
        stats = running.ingestor.stats()
        assert stats.store_retries > 0
        assert stats.stored_events == 5000
        assert running.ingestor.registry.get_sample_value("cityops_ingest_store_up") == 1


def _write_config(settings: CloudSettings, path: Path) -> None:
    data = settings.model_dump(mode="json")
    assert settings.mqtt.password is not None
    data["mqtt"]["password"] = settings.mqtt.password.get_secret_value()
    path.write_text(yaml.safe_dump(data))


def _start(config: Path, log: Path) -> subprocess.Popen[bytes]:
    out = log.open("ab")
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    return subprocess.Popen(
        [sys.executable, "-m", "cityops", "cloud", "ingest", "--config", str(config)],
        stdout=out,
        stderr=subprocess.STDOUT,
        env=env,
    )


async def _count(store: EventStore) -> int:
    return sum(c.count for c in await store.count_events(EventQuery(), "device_id"))


async def test_killed_mid_batch_and_restarted_loses_nothing(
    mosquitto: Broker, store_settings: StoreSettings, tmp_path: Path
) -> None:
    settings = make_settings(
        mosquitto, store_settings, tmp_path, "killed", batch_size=400, batch_interval_s=0.3
    )
    config = tmp_path / "cloud.yaml"
    _write_config(settings, config)
    log = tmp_path / "ingest.log"
    store = build_store(store_settings)
    await store.setup()
    events = _events(3000)
    proc = _start(config, log)
    try:
        await eventually(lambda: _logged(log, "ingest subscribed"), 30, "the ingestor to subscribe")
        with Publisher(mosquitto.host, mosquitto.service_port, "cityops-admin", "admin-pw") as pub:
            for e in events[:2000]:
                pub.send(e, Channel.EVENT)

            async def some_stored() -> bool:
                return await _count(store) > 0

            await eventually(some_stored, 30, "the first batch")
            proc.kill()  # SIGKILL right after a batch reached the store, before all acks
            proc.wait(10)
            at_kill = await _count(store)
            assert 0 < at_kill < 3000
            for e in events[2000:]:
                pub.send(e, Channel.EVENT)
            await asyncio.to_thread(pub.flush)

        proc = _start(config, log)

        async def all_stored() -> bool:
            return await _count(store) >= 3000

        await eventually(all_stored, 60, "all 3000 events after the restart")
        await asyncio.sleep(0.5)  # a doubled write would show up now
        assert await _count(store) == 3000
        for e in events[::500]:
            assert await store.get_event(e.id) == e
    finally:
        proc.terminate()
        proc.wait(15)
        await store.close()
    assert "Traceback" not in log.read_text()


async def _logged(log: Path, text: str) -> bool:
    return await asyncio.to_thread(lambda: log.exists() and text in log.read_text())


async def test_crash_after_store_before_ack_is_redelivered_not_doubled(
    mosquitto: Broker, store_settings: StoreSettings, tmp_path: Path
) -> None:
    """A hook that never returns holds the batch between its store write and its MQTT acks."""
    settings = make_settings(mosquitto, store_settings, tmp_path, "crash-before-ack")
    events = _events(200)
    store = build_store(settings.store)
    engine = make_engine(settings.database_url)
    first = Ingestor(settings, store, engine)
    stuck = asyncio.Event()

    async def hang(_: object) -> None:
        stuck.set()
        await asyncio.Event().wait()

    first.add_hook(hang)
    task = asyncio.create_task(first.run())
    await asyncio.wait_for(first.connected.wait(), 15)
    with Publisher(mosquitto.host, mosquitto.service_port, "cityops-admin", "admin-pw") as pub:
        for e in events:
            pub.send(e, Channel.EVENT)
        await asyncio.to_thread(pub.flush)
    await asyncio.wait_for(stuck.wait(), 15)
    stored_before_crash = await _count(store)
    assert stored_before_crash > 0
    task.cancel()  # the process "dies": connection dropped, nothing of the batch acknowledged
    with contextlib.suppress(asyncio.CancelledError):
        await task
    await store.close()
    engine.dispose()

    async with run_ingestor(settings) as running:
        await running.wait_stored(200)

        async def redelivered() -> bool:
            return running.ingestor.stats().received >= len(events)

        # Nothing was acknowledged, so every message comes back, the stored ones included.
        await eventually(redelivered, 15, "redelivery")
        assert await _count(running.store) == 200
        assert sorted(e.id for b in running.hooked for e in b) == sorted(e.id for e in events)
