"""``cloud serve --workers 2``: every ``/metrics`` answer is the sum over the workers.

The real CLI on PostgreSQL from the harness. Requests spread over both workers (a new
connection each); whichever worker answers a scrape reports all of them, the SQL state once,
and a worker killed and replaced by uvicorn leaves its counts behind, not its live gauges.
"""

import asyncio
import os
import re
import signal
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import yaml
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy.orm import Session

from cloud.db.base import make_engine
from cloud.db.devices import Device
from cloud.db.schema import prepare_schema
from cloud.services.ports import free_port
from tests.cloud.ingest.conftest import eventually
from tests.cloud.runtime.test_scale_out import Stack

pytestmark = [pytest.mark.services]

REQUESTS = 200
HEALTHZ = {"method": "GET", "route": "/healthz", "status": "200"}
Samples = list[tuple[str, dict[str, str], float]]


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[Stack]:
    logs = tmp_path / "logs"
    logs.mkdir()
    running = Stack(config=tmp_path / "cloud.yaml", logs=logs)
    yield running
    running.stop_all()


def _samples(text: str) -> Samples:
    return [
        (s.name, s.labels, s.value)
        for family in text_string_to_metric_families(text)
        for s in family.samples
    ]


def _value(samples: Samples, name: str, **labels: str) -> float | None:
    found = [v for n, got, v in samples if n == name and got == labels]
    assert len(found) <= 1, (name, labels, found)
    return found[0] if found else None


def _metrics_dirs(tmp: Path) -> list[Path]:
    return list(tmp.glob("cityops-metrics-*"))


def _per_worker(files: Path, route: str) -> dict[int, float]:
    """Requests to *route* counted in each worker's own file."""
    counts: dict[int, float] = {}
    for file in files.glob("counter_*.db"):
        pid = int(file.stem.split("_")[1])
        merged = MultiProcessCollector.merge([str(file)])  # type: ignore[no-untyped-call]
        counts[pid] = sum(
            s.value
            for metric in merged
            for s in metric.samples
            if s.name == "cityops_api_requests_total" and s.labels.get("route") == route
        )
    return counts


async def _get(port: int, path: str) -> httpx.Response:
    """On a new connection, so that either worker may take it."""
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as http:
        return await http.get(path)


async def _scrape(port: int) -> Samples:
    response = await _get(port, "/metrics")
    assert response.status_code == 200
    return _samples(response.text)


async def test_serve_workers_metrics_add_up_over_workers(
    stack: Stack, postgres_db: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    port = free_port()
    stack.config.write_text(
        yaml.safe_dump(
            {
                "database_url": postgres_db,
                "store": {"kind": "sqlite", "sqlite_path": str(tmp_path / "ts.sqlite")},
                "api": {"mqtt_enabled": False, "port": port},
            }
        )
    )
    engine = make_engine(postgres_db)
    prepare_schema(engine)
    with Session(engine) as session:
        session.add(Device(id="cam-1", site="harbour", device_type="raspberrypi5"))
        session.commit()
    engine.dispose()
    monkeypatch.setenv("TMPDIR", str(tmp_path))  # the server's metrics directory lands here
    stack.start("api", "serve", "--no-ingest", "--workers", "2")

    async def started(n: int) -> bool:
        return stack.count("api", "Application startup complete") >= n

    await eventually(lambda: started(2), 90, "2 API worker processes started")
    pids = {int(p) for p in re.findall(r"Started server process \[(\d+)\]", stack.log("api"))}
    assert len(pids) == 2

    for _ in range(REQUESTS // 10):
        got = await asyncio.gather(*(_get(port, "/healthz") for _ in range(10)))
        assert all(r.status_code == 200 for r in got)
    (files,) = _metrics_dirs(tmp_path)
    healthz = _per_worker(files, "/healthz")
    assert set(healthz) == pids
    assert all(n > 0 for n in healthz.values()), healthz  # both workers took requests
    assert sum(healthz.values()) == REQUESTS

    seen: list[float | None] = []
    for _ in range(60):  # until both workers have answered scrapes, at least 8 of them
        samples = await _scrape(port)
        seen.append(_value(samples, "cityops_api_requests_total", **HEALTHZ))
        # read at scrape time from the database and the answering process: once, no pid label
        assert _value(samples, "cityops_state_database_up") == 1
        assert _value(samples, "cityops_devices", site="harbour", state="never_seen") == 1
        assert _value(samples, "cityops_ingest_dead_letters", reason="schema") == 0
        assert len([n for n, _, _ in samples if n == "cityops_build_info"]) == 1
        assert _value(samples, "cityops_live_subscribers") == 0
        scrapes = _per_worker(files, "/metrics")
        if len(seen) >= 8 and len(scrapes) == 2 and all(scrapes.values()):
            break
    assert seen == [REQUESTS] * len(seen), (seen, _per_worker(files, "/metrics"))
    assert all(_per_worker(files, "/metrics").values())  # both workers answered scrapes

    # uvicorn replaces a killed worker: its counts stay, its live gauges go at the next scrape.
    victim = min(pids)
    os.kill(victim, signal.SIGKILL)
    await eventually(lambda: started(3), 90, "uvicorn to start a replacement worker")
    assert (files / f"gauge_livesum_{victim}.db").exists()
    samples = await _scrape(port)
    assert _value(samples, "cityops_api_requests_total", **HEALTHZ) == REQUESTS
    assert (files / f"counter_{victim}.db").exists()
    assert not (files / f"gauge_livesum_{victim}.db").exists()
    assert _value(samples, "cityops_live_subscribers") == 0

    stack.stop_all()
    assert stack.procs["api"].returncode in {0, -signal.SIGTERM}
    assert "Traceback" not in stack.log("api")
    assert not files.exists()  # removed when the server stops
