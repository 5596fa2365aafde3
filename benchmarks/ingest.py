"""Sustained ingest rate into InfluxDB vs the raw Mosquitto delivery rate, same run, same messages.

N simulated devices (one paho MQTT 5 client each, QoS 1) publish a backlog of pre-encoded events
while the subscriber under test is away (its persistent session queues them); then the subscriber
drains it. Rates are messages / (first handled - last handled). Phases, per round:

- "raw": subscribers that do nothing but count and acknowledge (MQTT 5, QoS 1, their own shared
  subscription): the ingestor's own client (``wire``), aiomqtt, and Mosquitto's ``mosquitto_sub``
  (C). ``raw_rate`` is the fastest of them: how fast Mosquitto can hand these messages over.
- "ingest": one real ``Ingestor`` per ``--clients`` entry stores the backlog in a fresh InfluxDB
  database, with the ingest settings given (production defaults unless told); CPU cores used by
  the ingestor, Mosquitto and influxd over the drain. Then publish -> stored latency: a probe
  publishes one event every 50 ms under a steady live load; the hook (called once the store has
  answered, i.e. the event is queryable) stamps it; p50/p99 over the probes. Counted with InfluxQL.
- "scaled": the same backlog drained by ``--processes`` ingestor processes in one MQTT 5 share
  group (one per core), timed until every event is stored and acknowledged; counted in InfluxDB.

    .venv/bin/python benchmarks/ingest.py [--devices 20] [--events 4000] [--processes 2] [--profile]
"""

import argparse
import asyncio
import cProfile
import dataclasses
import io
import json
import multiprocessing as mp
import os
import pstats
import statistics
import tempfile
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta
from multiprocessing.sharedctypes import Synchronized
from multiprocessing.synchronize import Event as MpEvent
from pathlib import Path
from typing import Any

import aiomqtt
import httpx
import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from sqlalchemy import Engine

from cloud.db.base import make_engine
from cloud.ingest import paho_speedup
from cloud.ingest.service import Ingestor
from cloud.ingest.wire import ConnectOptions, Endpoint, WireSession
from cloud.services.influxd import InfluxConfig, Influxd
from cloud.services.mosquitto import Mosquitto, MosquittoConfig
from cloud.settings import (
    CloudSettings,
    InfluxSettings,
    IngestSettings,
    MqttClientSettings,
    StoreSettings,
)
from cloud.store import build_store
from cloud.store.base import EventStore
from shared.clock import utcnow
from shared.codec import encode
from shared.events import (
    Box,
    DetectedObject,
    Event,
    EventKind,
    Location,
    ModelInfo,
    Severity,
)
from shared.ids import new_id
from shared.topics import Channel, shared_subscription, topic

GROUP = "bench"
PROBE_DEVICE = "probe"
KINDS = [EventKind.ILLEGAL_PARKING, EventKind.LINE_CROSSING, EventKind.CROWDING]


def make_event(device_id: str, i: int) -> Event:
    now = utcnow() - timedelta(seconds=2)
    return Event(
        id=new_id(),
        device_id=device_id,
        camera_id="cam-1",
        kind=KINDS[i % 3],
        severity=Severity.MEDIUM,
        started_at=now - timedelta(seconds=20),
        observed_at=now,
        zone_id=f"zone-{i % 5}",
        location=Location(lat=45.46 + (i % 100) * 1e-4, lon=9.19),
        objects=[
            DetectedObject(
                label="car", score=0.8, box=Box(x1=0.1, y1=0.2, x2=0.3, y2=0.5), track_id=i
            )
        ],
        dwell_s=20.0,
        model=ModelInfo(name="ssd_mobilenet_v1", version="1"),
        summary="car stopped in a no-parking bay",
    )


@dataclass(frozen=True, slots=True)
class Tuning:
    """The ingest settings the benchmark runs with (the production defaults unless told)."""

    batch_size: int
    batch_interval_s: float
    max_batches_in_flight: int


def bench_settings(  # noqa: PLR0917 - one value per setting the phases vary
    host: str,
    port: int,
    influx_url: str,
    database: str,
    state_path: Path,
    client_id: str,
    share_group: str,
    tuning: Tuning,
    client: str = "wire",
) -> CloudSettings:
    return CloudSettings(
        database_url=f"sqlite:///{state_path}",
        mqtt=MqttClientSettings(host=host, port=port, client_id=client_id),
        store=StoreSettings(
            kind="influx", influx=InfluxSettings(url=influx_url, database=database)
        ),
        ingest=IngestSettings(
            batch_size=tuning.batch_size,
            batch_interval_s=tuning.batch_interval_s,
            max_batches_in_flight=tuning.max_batches_in_flight,
            share_group=share_group,
            client=client,
        ),
    )


async def count_stored(influx_url: str, db: str) -> int:
    """Events of the simulated devices that InfluxDB answers for (the probe's are left out)."""
    async with httpx.AsyncClient() as http:
        resp = await http.get(
            f"{influx_url}/query",
            params={"db": db, "q": 'SELECT count("id") FROM "events" WHERE "device" =~ /^dev-/'},
        )
    series = resp.json()["results"][0].get("series")
    return int(series[0]["values"][0][1]) if series else 0


def write_payloads(workdir: Path, devices: int, events: int) -> list[Path]:
    files = []
    for d in range(devices):
        device = f"dev-{d:03d}"
        path = workdir / f"{device}.jsonl"
        path.write_bytes(b"".join(encode(make_event(device, i)) + b"\n" for i in range(events)))
        files.append(path)
    return files


def publish_backlog(host: str, port: int, files: Sequence[Path]) -> float:
    """Publish every device's events (one MQTT client per device, QoS 1); return seconds."""
    clients = []
    for path in files:
        c = paho.Client(
            CallbackAPIVersion.VERSION2, client_id=f"pub-{path.stem}", protocol=paho.MQTTv5
        )
        c.max_inflight_messages_set(500)
        c.max_queued_messages_set(0)
        c.connect(host, port)
        c.loop_start()
        clients.append((c, topic(path.stem, Channel.EVENT), path.read_bytes().splitlines()))
    start = time.perf_counter()
    infos = [[c.publish(t, payload, qos=1) for payload in payloads] for c, t, payloads in clients]
    for per_client in infos:
        for info in per_client:
            info.wait_for_publish(120)
    elapsed = time.perf_counter() - start
    for c, _, _ in clients:
        c.disconnect()
        c.loop_stop()
    return elapsed


async def subscribe_and_leave(settings: CloudSettings, store: EventStore, engine: Engine) -> None:
    """Run an ingestor until subscribed, then stop it: its persistent session queues from now."""
    first = Ingestor(settings, store, engine)
    stop = asyncio.Event()
    task = asyncio.create_task(first.run(stop))
    await asyncio.wait_for(first.connected.wait(), 30)
    stop.set()
    await task


async def ensure_session(host: str, port: int, client_id: str, subscribe: str) -> None:
    """Create a persistent session with the subscription, then leave: the broker queues for it."""
    props = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
    props.SessionExpiryInterval = 3600
    async with aiomqtt.Client(
        host,
        port,
        identifier=client_id,
        protocol=aiomqtt.ProtocolVersion.V5,
        clean_start=False,
        properties=props,
    ) as client:
        await client.subscribe(subscribe, qos=1)


async def drain_wire(host: str, port: int, client_id: str, total: int) -> int:
    """Do-nothing subscriber on the ingestor's own MQTT client: take, count, acknowledge."""

    def make(_topic: str, _payload: bytes, _qos: int, mid: int, _at: object) -> int:
        return mid

    options = ConnectOptions(client_id=client_id, session_expiry_s=0, receive_maximum=20_000)
    count = 0
    async with await WireSession.open(Endpoint(host, port), options, make) as session:
        while count < total:
            mids = session.take(total)
            if not mids:
                await session.wait(5.0)
                continue
            count += len(mids)
            session.ack(mids)
    return count


async def drain_aiomqtt(host: str, port: int, client_id: str, total: int) -> int:
    """Do-nothing subscriber on aiomqtt (paho underneath, acknowledges on receipt)."""
    props = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
    props.SessionExpiryInterval = 0
    props.ReceiveMaximum = 20_000
    count = 0
    async with aiomqtt.Client(
        host,
        port,
        identifier=client_id,
        protocol=aiomqtt.ProtocolVersion.V5,
        clean_start=False,
        properties=props,
    ) as client:
        async for _ in client.messages:
            count += 1
            if count >= total:
                break
    return count


async def drain_mosquitto_sub(
    host: str, port: int, client_id: str, total: int, subscription_name: str
) -> int:
    """Do-nothing subscriber in C: Mosquitto's own ``mosquitto_sub`` (QoS 1, output discarded)."""
    proc = await asyncio.create_subprocess_exec(
        *["mosquitto_sub", "-h", host, "-p", str(port), "-V", "5", "-q", "1", "-c"],
        *["-i", client_id, "-t", subscription_name, "-C", str(total), "-x", "0"],
        stdout=asyncio.subprocess.DEVNULL,
    )
    if await proc.wait() != 0:
        raise RuntimeError(f"mosquitto_sub exited with {proc.returncode}")
    return total


RAW_CLIENTS = ("wire", "aiomqtt", "mosquitto_sub")


async def raw_phase(  # noqa: PLR0917 - one call site, each value named there
    host: str, port: int, files: Sequence[Path], total: int, tag: str, client: str
) -> dict[str, float]:
    """Drain the backlog with a subscriber that does nothing but count (QoS 1, acks)."""
    sub = shared_subscription(f"{GROUP}-raw-{client}{tag}", Channel.EVENT)
    client_id = f"raw-{client}{tag}"
    await ensure_session(host, port, client_id, sub)
    publish_s = await asyncio.to_thread(publish_backlog, host, port, files)
    start = time.perf_counter()
    if client == "wire":
        count = await drain_wire(host, port, client_id, total)
    elif client == "aiomqtt":
        count = await drain_aiomqtt(host, port, client_id, total)
    else:
        count = await drain_mosquitto_sub(host, port, client_id, total, sub)
    elapsed = time.perf_counter() - start
    return {
        "messages": count,
        "seconds": round(elapsed, 3),
        "rate": round(count / elapsed, 1),
        "publish_rate": round(total / publish_s, 1),
    }


class Probe:
    """Publishes one event every *period* s; the ingestor's hook stamps when each is stored."""

    def __init__(self, host: str, port: int, period: float = 0.05) -> None:
        self.client = paho.Client(
            CallbackAPIVersion.VERSION2, client_id="probe", protocol=paho.MQTTv5
        )
        self.client.connect(host, port)
        self.client.loop_start()
        self.period = period
        self.sent: dict[str, float] = {}
        self.stored: dict[str, float] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        i = 0
        while not self._stop.is_set():
            event = make_event(PROBE_DEVICE, i)
            self.sent[event.id] = time.perf_counter()
            self.client.publish(topic(PROBE_DEVICE, Channel.EVENT), encode(event), qos=1)
            i += 1
            self._stop.wait(self.period)

    async def hook(self, events: Sequence[Event]) -> None:
        now = time.perf_counter()
        for e in events:
            if e.device_id == PROBE_DEVICE:
                self.stored[e.id] = now

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()

    def latencies_ms(self) -> list[float]:
        return sorted((self.stored[i] - t) * 1000 for i, t in self.sent.items() if i in self.stored)


CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process (all its threads), from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


@dataclass(frozen=True, slots=True)
class CpuMeter:
    """CPU used by each process of the pipeline over a phase, in cores (CPU s / wall s)."""

    pids: dict[str, int]

    def snapshot(self) -> dict[str, float]:
        return {name: cpu_seconds(pid) for name, pid in self.pids.items()}

    def cores(self, before: dict[str, float], wall_s: float) -> dict[str, float]:
        after = self.snapshot()
        return {name: round((after[name] - before[name]) / wall_s, 3) for name in self.pids}


def percentile(values: Sequence[float], q: float) -> float:
    if not values:
        return float("nan")
    return values[min(len(values) - 1, round(q * (len(values) - 1)))]


def live_load(host: str, port: int, rate: float, seconds: float, stop: threading.Event) -> int:
    """Background device traffic at *rate* events/s (paced in 10 ms slices); returns the count."""
    c = paho.Client(CallbackAPIVersion.VERSION2, client_id="live-load", protocol=paho.MQTTv5)
    c.max_inflight_messages_set(1000)
    c.max_queued_messages_set(0)
    c.connect(host, port)
    c.loop_start()
    sent = 0
    start = time.perf_counter()
    payloads = [encode(make_event("live", i)) for i in range(int(rate * seconds) + 1)]
    while not stop.is_set() and sent < len(payloads):
        due = min(len(payloads), int((time.perf_counter() - start) * rate))
        while sent < due:
            c.publish(topic("live", Channel.EVENT), payloads[sent], qos=1)
            sent += 1
        time.sleep(0.01)
    c.disconnect()
    c.loop_stop()
    return sent


async def ingest_phase(  # noqa: PLR0917 - one call site, each value named there
    host: str,
    port: int,
    influx_url: str,
    files: Sequence[Path],
    total: int,
    workdir: Path,
    args: argparse.Namespace,
    profiler: cProfile.Profile | None,
    tag: str,
    client: str,
    meter: CpuMeter,
) -> dict[str, Any]:
    db = f"bench{client}{tag}"
    settings = bench_settings(
        host,
        port,
        influx_url,
        db,
        workdir / f"state-{client}{tag}.sqlite",
        f"bench-ingest-{client}{tag}",
        f"{GROUP}-{client}{tag}",
        tuning(args),
        client,
    )
    store = build_store(settings.store)
    engine = make_engine(settings.database_url)

    await subscribe_and_leave(settings, store, engine)  # the backlog queues for it
    await asyncio.to_thread(publish_backlog, host, port, files)

    probe = Probe(host, port)
    ingestor = Ingestor(settings, store, engine, hooks=[probe.hook])
    stop = asyncio.Event()
    if profiler is not None:
        profiler.enable()
    meter = CpuMeter({**meter.pids, "ingestor": os.getpid()})
    cpu_before = meter.snapshot()
    start = time.perf_counter()
    task = asyncio.create_task(ingestor.run(stop))
    while ingestor.stats().stored_events < total:  # noqa: ASYNC110 - another task's counter
        await asyncio.sleep(0.005)
    elapsed = time.perf_counter() - start
    cpu = meter.cores(cpu_before, elapsed)
    if profiler is not None:
        profiler.disable()
    drained = ingestor.stats()

    # Latency under a steady live load below capacity.
    live_stop = threading.Event()
    live = asyncio.create_task(
        asyncio.to_thread(live_load, host, port, args.live_rate, args.live_seconds, live_stop)
    )
    probe.start()
    live_sent = await live
    probe.stop()
    deadline = time.perf_counter() + 30
    while len(probe.stored) < len(probe.sent) and time.perf_counter() < deadline:  # noqa: ASYNC110
        await asyncio.sleep(0.01)
    stop.set()
    await task
    await store.close()
    probe.close()
    lat = probe.latencies_ms()
    stored = await count_stored(influx_url, db)
    return {
        "messages": total,
        "seconds": round(elapsed, 3),
        "rate": round(total / elapsed, 1),
        "stored_in_influx": stored,
        "batches": drained.batches,
        "mean_batch": round(drained.received / max(drained.batches, 1), 1),
        "cpu_cores": cpu,
        "latency_ms": {
            "live_rate_per_s": args.live_rate,
            "live_events": live_sent,
            "probes": len(lat),
            "probes_lost": len(probe.sent) - len(lat),
            "p50": round(percentile(lat, 0.5), 1),
            "p99": round(percentile(lat, 0.99), 1),
            "max": round(lat[-1], 1) if lat else None,
        },
    }


@dataclass(frozen=True, slots=True)
class Worker:
    """What one ingestor process of the scaled phase needs (sent to a spawned process)."""

    host: str
    port: int
    influx_url: str
    database: str
    state_path: Path
    client_id: str
    share_group: str
    tuning: Tuning


@dataclass(frozen=True, slots=True)
class WorkerSignals:
    ready: MpEvent
    """Set once the process has created its persistent session (the broker now queues for it)."""
    go: MpEvent
    stop: MpEvent
    stored: "Synchronized[int]"
    """Events this process has stored and acknowledged so far."""


def worker_main(worker: Worker, signals: WorkerSignals) -> None:
    asyncio.run(worker_run(worker, signals))


async def worker_run(worker: Worker, signals: WorkerSignals) -> None:
    settings = bench_settings(
        worker.host,
        worker.port,
        worker.influx_url,
        worker.database,
        worker.state_path,
        worker.client_id,
        worker.share_group,
        worker.tuning,
    )
    store = build_store(settings.store)
    engine = make_engine(settings.database_url)
    await subscribe_and_leave(settings, store, engine)
    signals.ready.set()
    await asyncio.to_thread(signals.go.wait)
    ingestor = Ingestor(settings, store, engine)
    stop = asyncio.Event()
    task = asyncio.create_task(ingestor.run(stop))
    while not signals.stop.is_set():
        signals.stored.value = ingestor.stats().stored_events
        await asyncio.sleep(0.005)
    stop.set()
    await task
    signals.stored.value = ingestor.stats().stored_events
    await store.close()
    engine.dispose()


async def scaled_phase(  # noqa: PLR0917 - one call site, each value named there
    host: str,
    port: int,
    influx_url: str,
    files: Sequence[Path],
    total: int,
    workdir: Path,
    processes: int,
    tuned: Tuning,
    tag: str,
    meter: CpuMeter,
) -> dict[str, Any]:
    """Drain the backlog with *processes* ingestor processes in one share group."""
    ctx = mp.get_context("spawn")
    db = f"benchscaled{tag}"
    signals = [
        WorkerSignals(ctx.Event(), ctx.Event(), ctx.Event(), ctx.Value("q", 0))
        for _ in range(processes)
    ]
    procs = [
        ctx.Process(
            target=worker_main,
            args=(
                Worker(
                    host,
                    port,
                    influx_url,
                    db,
                    workdir / f"state-scaled{tag}.sqlite",
                    f"bench-scaled{tag}-{n}",
                    f"{GROUP}-scaled{tag}",
                    tuned,
                ),
                s,
            ),
        )
        for n, s in enumerate(signals)
    ]
    for p in procs:
        p.start()
    try:
        for s in signals:
            if not await asyncio.to_thread(s.ready.wait, 120):
                raise RuntimeError("an ingestor process did not start")
        await asyncio.to_thread(publish_backlog, host, port, files)
        workers = {f"ingestor-{n}": p.pid for n, p in enumerate(procs) if p.pid is not None}
        meter = CpuMeter({**meter.pids, **workers})
        cpu_before = meter.snapshot()
        start = time.perf_counter()
        for s in signals:
            s.go.set()
        deadline = start + 600
        while sum(s.stored.value for s in signals) < total:
            if time.perf_counter() > deadline:
                raise RuntimeError("the scaled ingest did not finish in 600 s")
            await asyncio.sleep(0.005)
        elapsed = time.perf_counter() - start
        cpu = meter.cores(cpu_before, elapsed)
    finally:
        for s in signals:
            s.go.set()
            s.stop.set()
        for p in procs:
            p.join(60)
    return {
        "processes": processes,
        "messages": total,
        "seconds": round(elapsed, 3),
        "rate": round(total / elapsed, 1),
        "per_process": [s.stored.value for s in signals],
        "cpu_cores": cpu,
        "stored_in_influx": await count_stored(influx_url, db),
    }


def top_functions(profiler: cProfile.Profile, n: int = 20) -> list[dict[str, Any]]:
    out = io.StringIO()
    stats = pstats.Stats(profiler, stream=out)
    rows = []
    for (file, line, name), (_, calls, tottime, cumtime, _) in stats.stats.items():  # type: ignore[attr-defined]
        rows.append(
            {
                "function": f"{Path(file).name}:{line}:{name}",
                "calls": calls,
                "tottime_s": round(tottime, 3),
                "cumtime_s": round(cumtime, 3),
            }
        )
    rows.sort(key=lambda r: r["tottime_s"], reverse=True)
    return rows[:n]


async def one_round(  # noqa: PLR0917 - one call site, each value named there
    broker: Mosquitto,
    influxd: Influxd,
    files: Sequence[Path],
    workdir: Path,
    args: argparse.Namespace,
    profiler: cProfile.Profile | None,
    tag: str,
) -> dict[str, Any]:
    """Same messages, same broker, back to back: every raw subscriber, then every ingestor."""
    total = len(files) * args.events
    meter = CpuMeter({"mosquitto": _pid(broker.pid), "influxd": _pid(influxd.pid)})
    raw = {
        client: await raw_phase(broker.host, broker.port, files, total, tag, client)
        for client in RAW_CLIENTS
    }
    raw_best = max(r["rate"] for r in raw.values())
    ingest = {
        client: await ingest_phase(
            broker.host,
            broker.port,
            influxd.url,
            files,
            total,
            workdir,
            args,
            profiler if client == "wire" else None,
            tag,
            client,
            meter,
        )
        for client in args.clients.split(",")
    }
    one: dict[str, Any] = {
        "raw": raw,
        "raw_rate": raw_best,
        "ingest": ingest,
        "ratio_to_raw": {c: round(i["rate"] / raw_best, 3) for c, i in ingest.items()},
    }
    if args.processes > 1:
        scaled = await scaled_phase(
            broker.host,
            broker.port,
            influxd.url,
            files,
            total,
            workdir,
            args.processes,
            tuning(args),
            tag,
            meter,
        )
        one["ingest_scaled"] = scaled
        one["scaled_ratio_to_raw"] = round(scaled["rate"] / raw_best, 3)
    return one


def tuning(args: argparse.Namespace) -> Tuning:
    return Tuning(args.batch_size, args.batch_interval, args.in_flight)


def _pid(pid: int | None) -> int:
    if pid is None:
        raise RuntimeError("a service of the benchmark is not running")
    return pid


async def main(args: argparse.Namespace) -> dict[str, Any]:
    total = args.devices * args.events
    with tempfile.TemporaryDirectory(prefix="cityops-bench-ingest-") as tmp:
        workdir = Path(tmp)
        broker = Mosquitto(
            MosquittoConfig(
                workdir=workdir / "mosquitto",
                allow_anonymous=True,
                persistence=False,
                extra=["max_queued_messages 0", "max_inflight_messages 0"],
            )
        )
        influxd = Influxd(InfluxConfig(workdir=workdir / "influxd"))
        broker.start()
        influxd.start()
        try:
            files = write_payloads(workdir, args.devices, args.events)
            paho_speedup.install()  # the aiomqtt ingestor does this; the raw client gets it too
            profiler = cProfile.Profile() if args.profile else None
            rounds = [
                await one_round(broker, influxd, files, workdir, args, profiler, str(r))
                for r in range(args.rounds)
            ]
        finally:
            influxd.stop()
            broker.stop()
    clients = args.clients.split(",")
    median: dict[str, Any] = {
        "raw_rate": statistics.median(r["raw_rate"] for r in rounds),
        "raw_rate_by_client": {
            c: statistics.median(r["raw"][c]["rate"] for r in rounds) for c in RAW_CLIENTS
        },
        "ingest_rate": {
            c: statistics.median(r["ingest"][c]["rate"] for r in rounds) for c in clients
        },
        "ratio_to_raw": {
            c: statistics.median(r["ratio_to_raw"][c] for r in rounds) for c in clients
        },
        "latency_p50_ms": {
            c: statistics.median(r["ingest"][c]["latency_ms"]["p50"] for r in rounds)
            for c in clients
        },
        "latency_p99_ms": {
            c: statistics.median(r["ingest"][c]["latency_ms"]["p99"] for r in rounds)
            for c in clients
        },
    }
    if args.processes > 1:
        median["scaled_rate"] = statistics.median(r["ingest_scaled"]["rate"] for r in rounds)
        median["scaled_ratio_to_raw"] = statistics.median(r["scaled_ratio_to_raw"] for r in rounds)
    result: dict[str, Any] = {
        "benchmark": "ingest",
        "devices": args.devices,
        "events": total,
        "ingest_settings": dataclasses.asdict(tuning(args)),
        "processes": args.processes,
        "median": median,
        "rounds": rounds,
        "target": {"events_per_s": 25_000, "ratio": 0.5},
        "raw_rate_is": "the fastest of the do-nothing subscribers in the same round",
    }
    if profiler is not None:
        result["profile_top_tottime"] = top_functions(profiler)
    return result


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--devices", type=int, default=20)
    parser.add_argument("--events", type=int, default=4000, help="events per device")
    defaults = IngestSettings()
    parser.add_argument("--batch-size", type=int, default=defaults.batch_size)
    parser.add_argument("--batch-interval", type=float, default=defaults.batch_interval_s)
    parser.add_argument("--in-flight", type=int, default=defaults.max_batches_in_flight)
    parser.add_argument("--live-rate", type=float, default=2000.0, help="events/s for latency")
    parser.add_argument("--live-seconds", type=float, default=3.0)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument(
        "--processes", type=int, default=2, help="ingestor processes of the scaled phase (1: skip)"
    )
    parser.add_argument(
        "--clients",
        default="wire,aiomqtt",
        help="comma-separated MQTT clients of the one-process ingest phase (ingest.client)",
    )
    parser.add_argument("--profile", action="store_true", help="cProfile the wire ingest phase")
    print(json.dumps(asyncio.run(main(parser.parse_args())), indent=2))
