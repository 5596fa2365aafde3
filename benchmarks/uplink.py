"""Events/s through the durable outbox to a real Mosquitto vs publishing directly, same run.

Both sides publish the same encoded events with QoS 1 and a window of 50 unacknowledged
messages, and stop the clock when the broker has acknowledged the last one. The outbox side
also pays for one fsync'd SQLite commit per ``emit`` (written before publish) and for deleting
each acknowledged batch; "batched" emits 10 events per commit (``emit_many``).

    .venv/bin/python benchmarks/uplink.py [--events 2000] [--rounds 3]
"""

import argparse
import json
import statistics
import tempfile
import threading
import time
from datetime import timedelta
from pathlib import Path

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from pydantic import SecretStr

from cloud.broker.acl import AclSpec, render_acl
from cloud.broker.passwords import hash_password, password_file
from cloud.services.mosquitto import Mosquitto, MosquittoConfig
from edge.uplink.mqtt import MqttUplink
from edge.uplink.outbox import Outbox
from edge.uplink.settings import OutboxSettings, UplinkSettings
from shared.clock import utcnow
from shared.codec import encode
from shared.events import Event, EventKind
from shared.ids import new_id
from shared.topics import Channel, topic

DEVICE = "bench-dev"
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


def through_outbox(
    broker: Mosquitto, events: list[Event], workdir: Path, name: str, batch: int = 1
) -> float:
    settings = UplinkSettings(
        host=broker.host,
        port=broker.port,
        username=DEVICE,
        password=SecretStr(PASSWORD),
        client_id=f"{DEVICE}-{name}",
        max_inflight=WINDOW,
        telemetry_interval_s=3600,
        outbox=OutboxSettings(path=workdir / f"{name}.db"),
    )
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
        (work / "passwd").write_text(password_file({DEVICE: hash_password(PASSWORD)}))
        (work / "acl").write_text(render_acl(AclSpec()))
        broker = Mosquitto(
            MosquittoConfig(
                workdir=work / "broker", password_file=work / "passwd", acl_file=work / "acl"
            )
        )
        broker.start()
        try:
            outbox_rates, batched_rates, direct_rates = [], [], []
            for rnd in range(args.rounds):
                events = make_events(args.events)
                direct_rates.append(direct(broker, events, rnd))
                outbox_rates.append(through_outbox(broker, events, work, f"single-{rnd}"))
                batched_rates.append(
                    through_outbox(broker, events, work, f"batch-{rnd}", batch=BATCH)
                )
        finally:
            broker.stop()
    outbox_eps = statistics.median(outbox_rates)
    batched_eps = statistics.median(batched_rates)
    direct_eps = statistics.median(direct_rates)
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
                "payload_bytes": len(encode(make_events(1)[0])),
                "sqlite": "WAL; puts synchronous=FULL (fsync per commit), deletes NORMAL",
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
