"""Operations API benchmark: event queries over 1M events, incident list under load, live latency.

Three measurements, each with a same-run baseline and their ratio:

1. ``query``: p50/p99 of a filtered 24 h event query (kind + 24 h window, 100 per page) through
   the API over N stored events (SQLite store; default 1,000,000, bulk-written in batches through
   ``SqliteEventStore.write_events``). Baseline: the same query straight on the store. Then the
   same on InfluxDB (``--influx-events``, default 1,000,000; 0 skips it).
2. ``incidents``: requests/s and p50/p99 of ``GET /api/v1/incidents?status=open`` and of
   ``/healthz`` under Debian's ``wrk`` (C, epoll; a Python client is its own bottleneck) at C
   connections (default 200) against ``cityops cloud serve --no-ingest --workers W`` on
   PostgreSQL, W = 1 and 2 in the same run. Ratios: 2 workers over 1, incidents over healthz.
3. ``live``: publish (MQTT, as a device) -> WebSocket receive p50/p99 through the in-process
   ingestor and the live hub. Baseline: publish -> receive by a plain MQTT subscriber.

    .venv/bin/python benchmarks/api.py [--events 1000000] [--clients 200] [--probes 200]
        [--wrk-seconds 10]

Targets: query p99 < 100 ms, live p99 < 500 ms. Prints one JSON document.
"""

import asyncio
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
from _harness import (  # benchmarks/_harness.py (this folder is first on sys.path)
    DEVICES,
    mqtt_client,
    parser,
    percentiles,
    ratio,
    report,
    served,
    stack,
    template_event,
    timed,
)
from fastapi import FastAPI
from sqlalchemy import text
from websockets.asyncio.client import connect

from cloud.api.app import create_app
from cloud.api.settings import ApiOptions, ApiSettings
from cloud.ops.keys import create_api_key
from cloud.services.influxd import InfluxConfig, Influxd
from cloud.services.mosquitto import Mosquitto
from cloud.services.ports import free_port
from cloud.settings import CloudSettings, InfluxSettings, StoreSettings
from cloud.store.base import EventQuery
from shared.clock import utcnow
from shared.codec import encode
from shared.events import Event, EventKind, Phase
from shared.ids import new_id
from shared.topics import Channel, topic

BATCH = 20_000


async def fill_store(app: FastAPI, count: int, span: timedelta) -> float:
    """Write *count* events spread evenly over *span* up to now; returns seconds taken."""
    templates = [template_event(i) for i in range(997)]
    now = utcnow()
    step = span / count
    store = app.state.store
    started = time.perf_counter()
    batch: list[Event] = []
    for i in range(count):
        observed = now - step * i - timedelta(seconds=1)
        batch.append(
            templates[i % len(templates)].model_copy(
                update={
                    "id": new_id(int(observed.timestamp() * 1000)),
                    "observed_at": observed,
                    "started_at": observed - timedelta(seconds=60),
                    "device_id": DEVICES[(i * 7) % len(DEVICES)],
                }
            )
        )
        if len(batch) == BATCH:
            await store.write_events(batch)
            batch = []
    await store.write_events(batch)
    return time.perf_counter() - started


async def bench_influx_query(work: Path, events: int, rounds: int) -> dict[str, Any]:
    """The same 24 h query through the API over *events* stored in a fresh InfluxDB."""
    influxd = Influxd(InfluxConfig(workdir=work / "influxd"))
    influxd.start()
    try:
        settings = ApiSettings(
            cloud=CloudSettings(
                database_url=f"sqlite:///{work / 'state-influx.sqlite'}",
                store=StoreSettings(
                    kind="influx", influx=InfluxSettings(url=influxd.url, database="bench")
                ),
            ),
            api=ApiOptions(mqtt_enabled=False),
        )
        app = create_app(settings, background=False)
        with app.state.sessions() as session:
            key = create_api_key(session, name="bench", role="admin")
        await app.state.store.setup()
        try:
            fill_s = await fill_store(app, events, timedelta(days=7))
            result = await bench_query(app, key, rounds)
        finally:
            await app.state.store.close()
        return {"events_stored": events, "fill_seconds": round(fill_s, 1)} | result
    finally:
        influxd.stop()


async def bench_query(app: FastAPI, key: str, rounds: int) -> dict[str, Any]:
    now = utcnow()
    start, end = now - timedelta(hours=24), now
    query = EventQuery(start=start, end=end, kinds=[EventKind.ILLEGAL_PARKING], limit=100)
    params = {
        "start": start.isoformat(),
        "end": end.isoformat(),
        "kind": "illegal_parking",
        "limit": "100",
    }
    store_samples: list[float] = []
    api_samples: list[float] = []
    transport = httpx.ASGITransport(app=app)
    headers = {"Authorization": f"Bearer {key}"}
    async with httpx.AsyncClient(transport=transport, base_url="http://api") as http:
        for _ in range(5):  # warm caches
            await app.state.store.query_events(query)
            await http.get("/api/v1/events", params=params, headers=headers)
        items = 0
        for _ in range(rounds):
            page = await timed(store_samples, lambda: app.state.store.query_events(query))
            response = await timed(
                api_samples, lambda: http.get("/api/v1/events", params=params, headers=headers)
            )
            assert response.status_code == 200, response.text
            items = len(response.json()["items"])
            assert items == len(page.items)
    api, store = percentiles(api_samples), percentiles(store_samples)
    return {
        "filter": "kind=illegal_parking, last 24 h, limit 100",
        "items_per_page": items,
        "api": api,
        "store_baseline": store,
        "ratio_p99_api_over_store": ratio(api["p99_ms"], store["p99_ms"]),
        "target_p99_ms": 100,
        "meets_target": api["p99_ms"] < 100,
    }


_WRK_UNITS = {"us": 0.001, "ms": 1.0, "s": 1000.0}


def parse_wrk(output: str) -> dict[str, float]:
    """Requests/s and p50/p99 (ms) from ``wrk --latency`` output; non-2xx responses counted."""
    rps = re.search(r"Requests/sec:\s+([0-9.]+)", output)
    if rps is None:
        raise RuntimeError(f"unexpected wrk output:\n{output}")
    result = {"req_per_s": round(float(rps.group(1)), 1)}
    for pct in ("50", "99"):
        m = re.search(rf"^\s+{pct}%\s+([0-9.]+)(us|ms|s)\s*$", output, flags=re.MULTILINE)
        if m is None:
            raise RuntimeError(f"no {pct}% latency in wrk output:\n{output}")
        result[f"p{pct}_ms"] = round(float(m.group(1)) * _WRK_UNITS[m.group(2)], 2)
    bad = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", output)
    errors = re.search(
        r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", output
    )
    result["non_2xx"] = int(bad.group(1)) if bad else 0
    result["socket_errors"] = sum(int(x) for x in errors.groups()) if errors else 0
    return result


def wrk(url: str, key: str, connections: int, seconds: float) -> dict[str, float]:
    """Debian's ``wrk`` (C, epoll): the load generator is not the bottleneck."""
    out = subprocess.run(
        [
            "wrk",
            "-t2",
            f"-c{connections}",
            f"-d{round(seconds)}s",
            "--latency",
            "--timeout",
            "10s",
            "-H",
            f"Authorization: Bearer {key}",
            url,
        ],
        capture_output=True,
        text=True,
        check=True,
        timeout=seconds + 60,
    ).stdout
    return parse_wrk(out)


async def bench_incidents(work: Path, connections: int, seconds: float) -> dict[str, Any]:
    """``cityops cloud serve --no-ingest --workers W`` on PostgreSQL, W = 1 then 2, under ``wrk``.

    The incident list (2,000 open incidents, page of 50) and ``/healthz`` at *connections*
    connections, each for *seconds*; requests/s, p50/p99 and the 2-vs-1 ratios.
    """
    from cloud.runtime import build_runtime
    from cloud.services.postgres import Postgres, PostgresConfig

    pg_dir = Path(tempfile.mkdtemp(prefix="cityops-bench-pg-"))  # readable by `postgres`
    pg = Postgres(PostgresConfig(workdir=pg_dir, fsync=False, settings={"max_connections": "200"}))
    pg.start()
    try:
        url = pg.create_database("bench_api")
        runtime = build_runtime(CloudSettings(database_url=url))
        events = [
            template_event(i).model_copy(update={"kind": EventKind.ABANDONED_OBJECT})
            for i in range(2000)
        ]
        await asyncio.to_thread(runtime.ops.apply_events, events)
        with runtime.sessions() as session:
            key = create_api_key(session, name="bench", role="admin")
            # Planner statistics, as autovacuum keeps them on a live database (not yet after
            # a bulk load): without them PostgreSQL sorts every open incident per request.
            session.execute(text("ANALYZE incidents"))
            session.commit()
        runtime.engine.dispose()
        config = work / "serve-pg.yaml"
        config.write_text(
            json.dumps(
                {
                    "database_url": url,
                    "store": {"kind": "sqlite", "sqlite_path": str(work / "ts-pg.sqlite")},
                    "api": {"mqtt_enabled": False},
                }
            )
        )
        runs: dict[str, Any] = {}
        for workers in (1, 2):
            runs[f"workers_{workers}"] = await _serve_and_load(
                config, key, workers, connections, seconds
            )
    finally:
        pg.stop()
        shutil.rmtree(pg_dir, ignore_errors=True)
    one, two = runs["workers_1"], runs["workers_2"]
    return {
        "load_average_1m_after": round(os.getloadavg()[0], 1),  # the machine is shared
        "load_generator": f"wrk -t2 -c{connections} -d{round(seconds)}s (Debian wrk 4.1)",
        "server": "cloud serve --no-ingest --workers W, PostgreSQL 15, 2,000 open incidents",
        **runs,
        "ratio_2_over_1": {
            path: ratio(two[path]["req_per_s"], one[path]["req_per_s"])
            for path in ("incidents", "healthz")
        },
        "ratio_incidents_over_healthz_1_worker": ratio(
            one["incidents"]["req_per_s"], one["healthz"]["req_per_s"]
        ),
    }


async def _serve_and_load(
    config: Path, key: str, workers: int, connections: int, seconds: float
) -> dict[str, Any]:
    port = free_port()
    cmd = [sys.executable, "-m", "cityops", "cloud", "serve", "--config", str(config)]
    proc = subprocess.Popen(  # noqa: ASYNC220 - started once, before the measurement
        [
            *cmd,
            "--no-ingest",
            "--workers",
            str(workers),
            "--port",
            str(port),
            "--log-level",
            "warning",
        ]
    )
    url = f"http://127.0.0.1:{port}"
    try:
        async with asyncio.timeout(60), httpx.AsyncClient(base_url=url) as probe:
            while True:
                try:
                    if (await probe.get("/healthz")).status_code == 200:
                        break
                except httpx.TransportError:
                    await asyncio.sleep(0.2)
        await asyncio.sleep(2.0 if workers > 1 else 0.5)  # every worker up, not just the first
        incidents_url = f"{url}/api/v1/incidents?status=open&limit=50"
        await asyncio.to_thread(wrk, incidents_url, key, connections, 2)  # warm-up
        return {
            "healthz": await asyncio.to_thread(wrk, f"{url}/healthz", key, connections, seconds),
            "incidents": await asyncio.to_thread(wrk, incidents_url, key, connections, seconds),
        }
    finally:
        proc.terminate()
        proc.wait(30)


async def bench_live(url: str, key: str, broker: Mosquitto, probes: int) -> dict[str, Any]:
    ws_url = url.replace("http", "ws") + "/api/v1/live/ws?type=event&device_id=probe-1"
    live: list[float] = []
    raw: list[float] = []
    async with (
        connect(ws_url, additional_headers={"Authorization": f"Bearer {key}"}) as ws,
        mqtt_client(broker, "cityops-admin", "admin-pw") as watcher,
        mqtt_client(broker, "probe-1", "probe-pw") as device,
    ):
        await watcher.subscribe(topic("probe-1", Channel.EVENT), qos=1)
        for _ in range(probes):
            probe = template_event(0).model_copy(
                update={"id": new_id(), "device_id": "probe-1", "phase": Phase.UPDATE}
            )
            sent = time.perf_counter()
            await device.publish(topic("probe-1", Channel.EVENT), encode(probe), qos=1)
            async with asyncio.timeout(10):
                async for _message in watcher.messages:
                    raw.append(time.perf_counter() - sent)
                    break
                while json.loads(await ws.recv())["data"]["id"] != probe.id:
                    pass
            live.append(time.perf_counter() - sent)
            await asyncio.sleep(0.02)
    api, baseline = percentiles(live), percentiles(raw)
    return {
        "path": "device publish -> broker -> ingest (store write) -> live hub -> WebSocket",
        "api": api,
        "mqtt_subscriber_baseline": baseline,
        "ratio_p99_over_mqtt": ratio(api["p99_ms"], baseline["p99_ms"]),
        "target_p99_ms": 500,
        "meets_target": api["p99_ms"] < 500,
    }


async def main(  # noqa: PLR0917 - one parameter per command-line option
    events: int, clients: int, probes: int, rounds: int, influx_events: int, wrk_seconds: float
) -> dict[str, Any]:
    with stack("api") as bench:
        app, key = bench.app, bench.key
        await app.state.store.setup()
        fill_s = await fill_store(app, events, timedelta(days=7))
        result: dict[str, Any] = {
            "benchmark": "api",
            "events_stored": events,
            "fill_seconds": round(fill_s, 1),
            "fill_events_per_s": round(events / fill_s),
        }
        result["query"] = await bench_query(app, key, rounds)
        result["incidents"] = await bench_incidents(bench.work, clients, wrk_seconds)
        async with served(app) as url:
            result["live"] = await bench_live(url, key, bench.broker, probes)
        if influx_events:
            result["query_influx"] = await bench_influx_query(bench.work, influx_events, rounds)
    return result


if __name__ == "__main__":
    cli = parser(__doc__)
    cli.add_argument("--events", type=int, default=1_000_000)
    cli.add_argument("--clients", type=int, default=200)
    cli.add_argument("--probes", type=int, default=200)
    cli.add_argument("--rounds", type=int, default=200)
    cli.add_argument("--influx-events", type=int, default=1_000_000, help="0 skips InfluxDB")
    cli.add_argument("--wrk-seconds", type=float, default=10.0, help="each wrk run")
    args = cli.parse_args()
    report(
        main(
            args.events,
            args.clients,
            args.probes,
            args.rounds,
            args.influx_events,
            args.wrk_seconds,
        )
    )
