"""``cityops cloud ingest --workers N``: processes in one share group, restarted when they die."""

import asyncio
import os
import re
import signal
import subprocess
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest
import yaml

from cloud.ingest.workers import WorkersRefusedError, worker_specs
from cloud.services.influxd import Influxd
from cloud.settings import CloudSettings, InfluxSettings, StoreSettings
from cloud.store import build_store
from cloud.store.base import EventQuery
from shared.topics import Channel
from tests.cloud.ingest.conftest import eventually, make_settings
from tests.cloud.ingest.publisher import Publisher
from tests.cloud.store.factories import make_event
from tests.conftest import Broker


def test_each_worker_gets_its_own_client_id_and_metrics_port(tmp_path: Path) -> None:
    influx = StoreSettings(kind="influx")
    settings = CloudSettings(store=influx).model_copy(
        update={"mqtt": CloudSettings().mqtt.model_copy(update={"client_id": "ingest-a"})}
    )
    specs = worker_specs(settings, 3, "127.0.0.1", 9108, "INFO")
    assert [s.settings.mqtt.client_id for s in specs] == ["ingest-a-0", "ingest-a-1", "ingest-a-2"]
    assert [s.metrics_port for s in specs] == [9108, 9109, 9110]
    assert {s.settings.ingest.share_group for s in specs} == {settings.ingest.share_group}


def test_the_embedded_sqlite_store_is_refused_naming_the_setting(tmp_path: Path) -> None:
    sqlite = StoreSettings(kind="sqlite", sqlite_path=tmp_path / "ts.sqlite")
    with pytest.raises(WorkersRefusedError, match=r"store\.kind"):
        worker_specs(CloudSettings(store=sqlite), 2, "127.0.0.1", None, "INFO")


def _start(config: Path, log: Path) -> subprocess.Popen[bytes]:
    with log.open("ab") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "cityops", "cloud", "ingest", "-c", str(config), "-w", "2"],
            stdout=out,
            stderr=subprocess.STDOUT,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )


def _logged(log: Path, pattern: str) -> list[str]:
    return re.findall(pattern, log.read_text()) if log.exists() else []


async def test_two_workers_share_the_stream_and_a_killed_one_comes_back(
    mosquitto: Broker, influxd: Influxd, influx_db: str, tmp_path: Path
) -> None:
    store_settings = StoreSettings(
        kind="influx", influx=InfluxSettings(url=influxd.url, database=influx_db)
    )
    settings = make_settings(mosquitto, store_settings, tmp_path, "workers")
    config = tmp_path / "cloud.yaml"
    data = settings.model_dump(mode="json")
    assert settings.mqtt.password is not None
    data["mqtt"]["password"] = settings.mqtt.password.get_secret_value()
    config.write_text(yaml.safe_dump(data))
    log = tmp_path / "ingest.log"
    proc = _start(config, log)
    store = build_store(store_settings)

    async def stored() -> int:
        return sum(c.count for c in await store.count_events(EventQuery(), "device_id"))

    async def subscribed(n: int) -> bool:
        return len(_logged(log, r"worker-\d cloud\.ingest\.service: ingest subscribed")) >= n

    events = [make_event(f"dev-{'abc'[i % 3]}") for i in range(800)]
    try:
        await eventually(lambda: subscribed(2), 60, "both workers to subscribe")
        with Publisher(mosquitto.host, mosquitto.service_port, "cityops-admin", "admin-pw") as pub:
            for e in events[:600]:
                pub.send(e, Channel.EVENT)
            await asyncio.to_thread(pub.flush)
            await eventually(lambda: _at_least(stored, 600), 30, "600 events stored")

            pids = [int(p) for p in _logged(log, r"worker-\d started \(pid (\d+)")]
            assert len(pids) == 2
            os.kill(pids[0], signal.SIGKILL)
            await eventually(lambda: subscribed(3), 60, "the killed worker to come back")
            for e in events[600:]:
                pub.send(e, Channel.EVENT)
            await asyncio.to_thread(pub.flush)
        await eventually(lambda: _at_least(stored, 800), 30, "all 800 events stored")
        await asyncio.sleep(0.5)
        assert await stored() == 800
        assert _logged(log, r"worker-0 exited with -9; restarting")
        proc.send_signal(signal.SIGTERM)
        assert await asyncio.to_thread(proc.wait, 40) == 0
        for pid in [int(p) for p in _logged(log, r"worker-\d started \(pid (\d+)")]:
            with pytest.raises(ProcessLookupError):
                os.kill(pid, 0)  # no worker left behind
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
        await store.close()
    text = log.read_text()
    assert "Traceback" not in text
    assert "ingest-pw" not in text  # the password never reaches the log


async def _at_least(count: Callable[[], Awaitable[int]], n: int) -> bool:
    return await count() >= n
