"""What the API and console benchmarks share: the broker, the app, its events, the statistics.

Not a benchmark itself (``make bench`` skips ``_*.py``); imported by ``api.py`` and ``console.py``
as ``_harness`` because ``python benchmarks/<name>.py`` puts this folder first on ``sys.path``.
"""

import argparse
import asyncio
import json
import statistics
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import aiomqtt
import uvicorn
from fastapi import FastAPI

from cloud.api.app import create_app
from cloud.api.settings import ApiOptions, ApiSettings
from cloud.broker.acl import AclSpec, ServiceAccount, ServiceRole, render_acl
from cloud.broker.passwords import hash_password, password_file
from cloud.ops.keys import create_api_key
from cloud.services.mosquitto import Mosquitto, MosquittoConfig
from cloud.services.ports import free_port
from cloud.settings import CloudSettings, IngestSettings, MqttClientSettings, StoreSettings
from shared.clock import utcnow
from shared.events import Box, DetectedObject, Event, EventKind, Location, Severity
from shared.ids import new_id

KINDS = [
    EventKind.ILLEGAL_PARKING,
    EventKind.ABANDONED_OBJECT,
    EventKind.CROWDING,
    EventKind.LINE_CROSSING,
    EventKind.SENSOR_THRESHOLD,
]
DEVICES = [f"cam-{i:03d}" for i in range(200)]
ZONES = [f"zone-{i}" for i in range(10)]
SEVERITIES = [Severity.LOW, Severity.MEDIUM, Severity.HIGH]
# The broker's accounts: the ingestor, an admin watcher and one device, ``probe-1``.
_BROKER_USERS = {"cityops-admin": "admin-pw", "cityops-ingest": "ingest-pw", "probe-1": "probe-pw"}


def parser(doc: str | None) -> argparse.ArgumentParser:
    """A command line described by the first line of the benchmark's docstring."""
    return argparse.ArgumentParser(description=doc.splitlines()[0] if doc else None)


def report(main: Coroutine[Any, Any, dict[str, Any]]) -> None:
    """Run the benchmark and print its one JSON document."""
    print(json.dumps(asyncio.run(main), indent=2))


def percentiles(samples: list[float]) -> dict[str, float]:
    """Count, p50, p99 and max of *samples* (seconds), in milliseconds."""
    ordered = sorted(samples)
    p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]
    return {
        "n": len(ordered),
        "p50_ms": round(statistics.median(ordered) * 1000, 2),
        "p99_ms": round(p99 * 1000, 2),
        "max_ms": round(ordered[-1] * 1000, 2),
    }


def ratio(measured: float, baseline: float) -> float:
    """*measured* over *baseline*, two decimals (a zero baseline does not divide by zero)."""
    return round(measured / max(baseline, 1e-6), 2)


async def timed(samples: list[float], call: Callable[[], Awaitable[Any]]) -> Any:
    """``await call()``, its duration appended to *samples*; returns what it returned."""
    started = time.perf_counter()
    result = await call()
    samples.append(time.perf_counter() - started)
    return result


def template_event(index: int) -> Event:
    """An event of the *index*-th device, kind, zone and track: one situation per index."""
    now = utcnow()
    return Event(
        id=new_id(),
        device_id=DEVICES[index % len(DEVICES)],
        camera_id="cam-1",
        kind=KINDS[index % len(KINDS)],
        severity=SEVERITIES[index % len(SEVERITIES)],
        started_at=now - timedelta(seconds=60),
        observed_at=now,
        zone_id=ZONES[index % len(ZONES)],
        location=Location(lat=38.70 + (index % 100) / 1000, lon=-9.15 + (index % 97) / 1000),
        objects=[
            DetectedObject(
                label="car", score=0.8, box=Box(x1=0.1, y1=0.2, x2=0.3, y2=0.5), track_id=index
            )
        ],
        dwell_s=60.0,
        summary="benchmark event",
    )


def start_broker(workdir: Path) -> Mosquitto:
    """Debian's Mosquitto with the benchmark's accounts and the ACL of production."""
    hashes = {user: hash_password(pw) for user, pw in _BROKER_USERS.items()}
    (workdir / "passwd").write_text(password_file(hashes))
    services = [
        ServiceAccount("cityops-admin", ServiceRole.ADMIN),
        ServiceAccount("cityops-ingest", ServiceRole.INGEST),
    ]
    (workdir / "acl").write_text(render_acl(AclSpec(services=services)))
    broker = Mosquitto(
        MosquittoConfig(
            workdir=workdir,
            password_file=workdir / "passwd",
            acl_file=workdir / "acl",
            persistence=False,
        )
    )
    broker.start()
    return broker


def mqtt_client(broker: Mosquitto, user: str, password: str) -> aiomqtt.Client:
    return aiomqtt.Client(
        broker.host,
        broker.port,
        username=user,
        password=password,
        identifier=f"bench-{user}-{new_id()[-8:]}",
        protocol=aiomqtt.ProtocolVersion.V5,
    )


@dataclass(frozen=True, slots=True)
class Stack:
    work: Path
    """A temporary folder, removed at the end."""
    broker: Mosquitto
    app: FastAPI
    """The API with the ingestor in-process (SQLite state and events), not served yet."""
    key: str
    """An admin API key."""


@contextmanager
def stack(name: str) -> Iterator[Stack]:
    """A broker and the API that ingests from it, in ``cityops-bench-<name>-*``."""
    with tempfile.TemporaryDirectory(prefix=f"cityops-bench-{name}-") as tmp:
        work = Path(tmp)
        broker = start_broker(work)
        try:
            settings = ApiSettings(
                cloud=CloudSettings(
                    database_url=f"sqlite:///{work / 'state.sqlite'}",
                    mqtt=MqttClientSettings(
                        host=broker.host,
                        port=broker.port,
                        username="cityops-ingest",
                        password=_BROKER_USERS["cityops-ingest"],
                        client_id=f"bench-{name}-ingest",
                    ),
                    store=StoreSettings(kind="sqlite", sqlite_path=work / "ts.sqlite"),
                    ingest=IngestSettings(session_expiry_s=0, batch_interval_s=0.02),
                ),
                api=ApiOptions(mqtt_enabled=False),
            )
            app = create_app(settings, ingest=True)
            with app.state.sessions() as session:
                key = create_api_key(session, name="bench", role="admin")
            yield Stack(work=work, broker=broker, app=app, key=key)
        finally:
            broker.stop()


@asynccontextmanager
async def served(app: FastAPI) -> AsyncIterator[str]:
    """*app* under uvicorn on a free loopback port, its ingestor connected; yields its URL."""
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", backlog=2048)
    )
    task = asyncio.create_task(server.serve())
    try:
        while not server.started:  # noqa: ASYNC110 - uvicorn has no started event
            await asyncio.sleep(0.02)
        await asyncio.wait_for(app.state.ingestor.connected.wait(), 10)
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await task
