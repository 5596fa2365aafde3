"""Events/s through the durable outbox to a real Mosquitto vs publishing directly, same run.

Both sides publish the same encoded events with QoS 1 and a window of 50 unacknowledged
messages, and stop the clock when the broker has acknowledged the last one. The outbox side
also pays for one fsync'd SQLite commit per ``emit`` (written before publish) and for deleting
each acknowledged batch; "batched" emits 10 events per commit (``emit_many``). These run with
``delivery: broker`` (an event leaves the outbox on its PUBACK, contract 1).

The cost of the end-to-end acknowledgement (``delivery: stored``, contract 2): a real ingestor
(production batching: 2,000 messages or 0.2 s, SQLite store) confirms what it stored, and the
clock stops when the last event is confirmed. Latency is measured at a steady 100 events/s:
emit -> PUBACK (contract 1) beside emit -> confirmed stored (contract 2), p50 and p99.

    .venv/bin/python benchmarks/uplink.py [--events 2000] [--rounds 3]
"""

import argparse
import asyncio
import json
import statistics
import tempfile
import threading
import time
from collections.abc import Sequence
from datetime import timedelta
from pathlib import Path
from typing import Self

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from pydantic import SecretStr

from cloud.broker.acl import AclSpec, ServiceAccount, ServiceRole, render_acl
from cloud.broker.passwords import hash_password, password_file
from cloud.db.base import make_engine
from cloud.ingest.service import Ingestor
from cloud.services.mosquitto import Mosquitto, MosquittoConfig
from cloud.settings import CloudSettings, MqttClientSettings, StoreSettings
from cloud.store import build_store
from edge.uplink.mqtt import MqttUplink
from edge.uplink.outbox import Outbox
from edge.uplink.settings import OutboxSettings, UplinkSettings
from shared.clock import utcnow
from shared.codec import encode
from shared.events import Event, EventKind
from shared.ids import new_id
from shared.topics import Channel, topic

DEVICE = "bench-dev"
INGEST = "bench-ingest"
LATENCY_EVENTS = 500
PASSWORD = "bench-pw"  # noqa: S105 - a throwaway broker on loopback
WINDOW = 50
BATCH = 10
"""Events per ``emit_many`` (one commit), like the events of one busy frame."""


def make_events(n: int) -> list[Event]:
    now = utcnow() - timedelta(seconds=5)
    return [
        Event(
            id=new_id(),
            device_id=DEVICE,
            kind=EventKind.LINE_CROSSING,
            started_at=now,
            observed_at=now,
            summary="benchmark event",
            attributes={"line": "l1", "direction": "a_to_b"},
        )
        for _ in range(n)
    ]


def uplink_settings(
    broker: Mosquitto, workdir: Path, name: str, delivery: str = "broker"
) -> UplinkSettings:
    return UplinkSettings.model_validate(
        {
            "host": broker.host,
            "port": broker.port,
            "username": DEVICE,
            "password": SecretStr(PASSWORD),
            "max_inflight": WINDOW,
            "telemetry_interval_s": 3600,
            "delivery": delivery,
            "outbox": OutboxSettings(path=workdir / f"{name}.db"),
        }
    )


def through_outbox(
    broker: Mosquitto,
    events: list[Event],
    workdir: Path,
    name: str,
    *,
    batch: int = 1,
    delivery: str = "broker",
) -> float:
    settings = uplink_settings(broker, workdir, name, delivery)
    outbox = Outbox(settings.outbox)
    uplink = MqttUplink(settings, DEVICE, outbox)
    uplink.start()
    if not uplink.wait_connected(10):
        raise RuntimeError("benchmark uplink did not connect")
    t0 = time.perf_counter()
    for i in range(0, len(events), batch):
        uplink.emit_many(events[i : i + batch])
    if not uplink.wait_drained(120):
        raise RuntimeError("outbox did not drain")
    elapsed = time.perf_counter() - t0
    uplink.stop()
    outbox.close()
    return len(events) / elapsed


def latency(
    broker: Mosquitto, workdir: Path, name: str, *, delivery: str, n: int, rate: float
) -> dict[str, float]:
    """Emit *n* events at *rate*/s one by one; p50/p99 of emit -> delivered, in ms."""
    emitted: dict[str, float] = {}
    took: list[float] = []
    lock = threading.Lock()

    def delivered(ids: Sequence[str]) -> None:
        now = time.perf_counter()
        with lock:
            took.extend(now - emitted[i] for i in ids if i in emitted)

    settings = uplink_settings(broker, workdir, name, delivery)
    outbox = Outbox(settings.outbox)
    uplink = MqttUplink(settings, DEVICE, outbox, on_delivered=delivered)
    uplink.start()
    if not uplink.wait_connected(10):
        raise RuntimeError("benchmark uplink did not connect")
    start = time.perf_counter()
    for i, event in enumerate(make_events(n)):
        with lock:
            emitted[event.id] = time.perf_counter()
        uplink.emit(event)
        ahead = start + (i + 1) / rate - time.perf_counter()
        if ahead > 0:
            time.sleep(ahead)
    if not uplink.wait_drained(60):
        raise RuntimeError("latency run did not drain")
    uplink.stop()
    outbox.close()
    cuts = statistics.quantiles(took, n=100)
    return {"p50_ms": round(cuts[49] * 1000, 1), "p99_ms": round(cuts[98] * 1000, 1)}


class IngestorThread:
    """The real ingestor (SQLite store, production batching) on its own event loop."""

    def __init__(self, broker: Mosquitto, workdir: Path) -> None:
        self.settings = CloudSettings(
            database_url=f"sqlite:///{workdir / 'state.sqlite'}",
            mqtt=MqttClientSettings(
                host=broker.host,
                port=broker.port,
                username=INGEST,
                password=SecretStr(PASSWORD),
            ),
            store=StoreSettings(kind="sqlite", sqlite_path=workdir / "ts.sqlite"),
        )
        self._stop: asyncio.Event | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._subscribed = threading.Event()
        self._thread = threading.Thread(target=lambda: asyncio.run(self._main()), daemon=True)

    async def _main(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        store = build_store(self.settings.store)
        engine = make_engine(self.settings.database_url)
        ingestor = Ingestor(self.settings, store, engine)
        task = asyncio.create_task(ingestor.run(self._stop))
        await ingestor.connected.wait()
        self._subscribed.set()
        await task
        await store.close()
        engine.dispose()

    def __enter__(self) -> Self:
        self._thread.start()
        if not self._subscribed.wait(30):
            raise RuntimeError("the ingestor did not subscribe")
        return self

    def __exit__(self, *_exc: object) -> None:
        if self._loop is not None and self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(30)


def direct(broker: Mosquitto, events: list[Event], rnd: int) -> float:
    client = mqtt.Client(
        CallbackAPIVersion.VERSION2, client_id=f"{DEVICE}-direct-{rnd}", protocol=mqtt.MQTTv5
    )
    client.username_pw_set(DEVICE, PASSWORD)
    client.max_inflight_messages_set(WINDOW)
    done = threading.Event()
    acked = 0

    def on_publish(*_args: object) -> None:
        nonlocal acked
        acked += 1
        if acked == len(events):
            done.set()

    client.on_publish = on_publish
    client.connect(broker.host, broker.port)
    client.loop_start()
    name = topic(DEVICE, Channel.EVENT)
    t0 = time.perf_counter()
    for event in events:
        client.publish(name, encode(event), qos=1)
    if not done.wait(120):
        raise RuntimeError("direct publish did not complete")
    elapsed = time.perf_counter() - t0
    client.loop_stop()
    client.disconnect()
    return len(events) / elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="cityops-bench-") as tmp:
        work = Path(tmp)
        (work / "passwd").write_text(
            password_file({DEVICE: hash_password(PASSWORD), INGEST: hash_password(PASSWORD)})
        )
        (work / "acl").write_text(
            render_acl(AclSpec(services=[ServiceAccount(INGEST, ServiceRole.INGEST)]))
        )
        broker = Mosquitto(
            MosquittoConfig(
                workdir=work / "broker", password_file=work / "passwd", acl_file=work / "acl"
            )
        )
        broker.start()
        try:
            outbox_rates, batched_rates, direct_rates, e2e_rates = [], [], [], []
            with IngestorThread(broker, work):
                for rnd in range(args.rounds):
                    events = make_events(args.events)
                    direct_rates.append(direct(broker, events, rnd))
                    outbox_rates.append(through_outbox(broker, events, work, f"single-{rnd}"))
                    batched_rates.append(
                        through_outbox(broker, events, work, f"batch-{rnd}", batch=BATCH)
                    )
                    e2e_rates.append(
                        through_outbox(
                            broker,
                            make_events(args.events),  # new ids: the ingestor stored the others
                            work,
                            f"e2e-{rnd}",
                            batch=BATCH,
                            delivery="stored",
                        )
                    )
                puback = latency(
                    broker, work, "lat-puback", delivery="broker", n=LATENCY_EVENTS, rate=100.0
                )
                confirmed = latency(
                    broker, work, "lat-stored", delivery="stored", n=LATENCY_EVENTS, rate=100.0
                )
        finally:
            broker.stop()
    outbox_eps = statistics.median(outbox_rates)
    batched_eps = statistics.median(batched_rates)
    direct_eps = statistics.median(direct_rates)
    e2e_eps = statistics.median(e2e_rates)
    print(
        json.dumps(
            {
                "benchmark": "uplink",
                "events": args.events,
                "rounds": args.rounds,
                "qos": 1,
                "window": WINDOW,
                "outbox_events_per_s": round(outbox_eps, 1),
                "direct_events_per_s": round(direct_eps, 1),
                "ratio_outbox_vs_direct": round(outbox_eps / direct_eps, 3),
                "outbox_batched_events_per_s": round(batched_eps, 1),
                "batch": BATCH,
                "ratio_batched_vs_direct": round(batched_eps / direct_eps, 3),
                "outbox_rounds": [round(r, 1) for r in outbox_rates],
                "batched_rounds": [round(r, 1) for r in batched_rates],
                "direct_rounds": [round(r, 1) for r in direct_rates],
                "e2e_batched_events_per_s": round(e2e_eps, 1),
                "ratio_e2e_vs_batched_puback": round(e2e_eps / batched_eps, 3),
                "e2e_rounds": [round(r, 1) for r in e2e_rates],
                "latency_at_100_per_s": {
                    "emit_to_puback": puback,
                    "emit_to_confirmed_stored": confirmed,
                    "events": LATENCY_EVENTS,
                    "ingest_batch_interval_s": 0.2,
                },
                "payload_bytes": len(encode(make_events(1)[0])),
                "sqlite": "WAL; puts synchronous=FULL (fsync per commit), deletes NORMAL",
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
