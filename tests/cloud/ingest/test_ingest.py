"""End to end on the real broker: devices publish, the ingestor stores, on both stores."""

import asyncio
import json
import random
from collections.abc import Sequence
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from cloud.db.devices import Device
from cloud.db.ingest import DeadLetter, SeenEvent
from cloud.services.influxd import Influxd
from cloud.settings import CloudSettings, StoreSettings
from shared.clock import utcnow
from shared.events import Event
from shared.ids import new_id
from shared.limits import MAX_PAYLOAD_BYTES
from shared.topics import Channel, topic
from tests.cloud.ingest.conftest import Running, eventually, make_settings, run_ingestor
from tests.cloud.ingest.publisher import Publisher
from tests.cloud.store.factories import (
    make_config_ack,
    make_event,
    make_status,
    make_telemetry,
)
from tests.conftest import Broker


async def test_device_events_are_stored_and_handed_to_hooks(
    running: Running, mosquitto: Broker
) -> None:
    sent: list[Event] = []
    for dev in ("dev-a", "dev-b", "dev-c"):
        with Publisher(mosquitto.host, mosquitto.port, dev, f"{dev}-pw") as pub:
            for i in range(20):
                event = make_event(dev, snapshot=i == 0)
                sent.append(event)
                pub.send(event, Channel.EVENT)
            pub.flush()
    await running.wait_stored(60)
    await eventually(lambda: _received(running, 60), 10, "60 messages")
    assert await running.stored() == 60
    for event in sent[::20]:
        assert await running.store.get_event(event.id) == event
    hooked = [e.id for batch in running.hooked for e in batch]
    assert sorted(hooked) == sorted(e.id for e in sent)
    stats = running.ingestor.stats()
    assert (stats.stored_events, stats.duplicates) == (60, 0)
    reg = running.ingestor.registry
    assert reg.get_sample_value("cityops_ingest_stored_total", {"kind": "event"}) == 60
    assert reg.get_sample_value("cityops_ingest_received_total", {"channel": "event"}) == 60
    assert reg.get_sample_value("cityops_ingest_batch_duration_seconds_count") == stats.batches
    with Session(running.engine) as s:
        last = {d.id: d.last_event_at for d in s.scalars(select(Device))}
    for dev in ("dev-a", "dev-b", "dev-c"):
        assert last[dev] == max(e.observed_at for e in sent if e.device_id == dev)


@pytest.mark.parametrize("store_settings", ["influx"], indirect=True)
async def test_influx_points_carry_the_documented_tags_and_fields(
    running: Running, device: Publisher, influxd: Influxd, store_settings: StoreSettings
) -> None:
    event = make_event(snapshot=True)
    device.send(event, Channel.EVENT)
    device.flush()
    await running.wait_stored(1)
    db = store_settings.influx.database
    data = influxd.query('SELECT * FROM "events"', db=db)
    series = data["results"][0]["series"][0]  # type: ignore[index]
    row = dict(zip(series["columns"], series["values"][0], strict=True))
    assert {k: row[k] for k in ("device", "camera", "kind", "zone", "severity")} == {
        "device": "dev-a",
        "camera": "cam-1",
        "kind": "illegal_parking",
        "zone": "bay-1",
        "severity": "medium",
    }
    assert row["id"] == event.id
    assert row["phase"] == "start"
    assert row["dwell_s"] == 30.5
    assert (row["lat"], row["lon"]) == (45.4642, 9.19)
    assert row["objects"] == 1
    assert json.loads(row["body"])["summary"] == event.summary
    # Timestamp: observed_at to the millisecond (plus sub-ms bits of the id).
    assert row["time"] // 1 == pytest.approx(event.observed_at.timestamp() * 1000, abs=1)
    tags = influxd.query('SHOW TAG KEYS FROM "events"', db=db)
    keys = {v[0] for v in tags["results"][0]["series"][0]["values"]}  # type: ignore[index]
    assert keys == {"device", "camera", "kind", "zone", "severity"}


async def test_each_event_published_twice_is_stored_once(
    running: Running, device: Publisher
) -> None:
    events = [make_event() for _ in range(50)]
    for e in events:  # twice in a row: mostly the same batch
        device.send(e, Channel.EVENT)
        device.send(e, Channel.EVENT)
    device.flush()
    await running.wait_stored(50)
    await eventually(lambda: _received(running, 100), 10, "100 messages")
    for e in events[:10]:  # and again, once the first copies are long stored
        device.send(e, Channel.EVENT)
    device.flush()
    await eventually(lambda: _received(running, 110), 10, "110 messages")
    assert await running.stored() == 50
    hooked = [e.id for batch in running.hooked for e in batch]
    assert sorted(hooked) == sorted(e.id for e in events)
    assert running.ingestor.stats().duplicates == 60
    with Session(running.engine) as s:
        assert len(s.scalars(select(SeenEvent.id)).all()) == 50


async def _received(running: Running, n: int, channel: str = "event") -> bool:
    """*n* messages of *channel* handled (retained presence of earlier tests may arrive too)."""
    labels = {"channel": channel}
    got = running.ingestor.registry.get_sample_value("cityops_ingest_received_total", labels)
    return (got or 0) >= n


async def _rejected(running: Running, n: int) -> bool:
    return sum(running.ingestor.stats().rejected.values()) >= n


def _event_json(**changes: object) -> bytes:
    data = json.loads(make_event().model_dump_json())
    data.update(changes)
    return json.dumps(data).encode()


async def test_every_kind_of_bad_input_is_refused_counted_and_listed(
    running: Running, admin: Publisher
) -> None:
    now = utcnow()
    future = (now + timedelta(hours=1)).isoformat()
    old_ms = int((now - timedelta(days=8)).timestamp() * 1000)
    old = (now - timedelta(days=8)).isoformat()
    event_topic = topic("dev-a", Channel.EVENT)
    bad: list[tuple[str, bytes, str, str | None]] = [
        (event_topic, b"{not json", "invalid_json", "payload"),
        (event_topic, _event_json(kind="teleport"), "schema", "kind"),
        (event_topic, b"x" * (MAX_PAYLOAD_BYTES + 1), "too_large", "payload"),
        (topic("dev-b", Channel.EVENT), _event_json(), "device_mismatch", "device_id"),
        (event_topic, _event_json(observed_at=future), "future_timestamp", "observed_at"),
        (
            topic("dev-a", Channel.TELEMETRY),
            make_telemetry(ts=now + timedelta(hours=2)).model_dump_json().encode(),
            "future_timestamp",
            "ts",
        ),
        (
            event_topic,
            _event_json(id=new_id(at_ms=old_ms), started_at=old, observed_at=old),
            "replay",
            "id",
        ),
        ("cityops/v1/NOT_A_DEVICE/event", _event_json(), "bad_topic", "device_id"),
    ]
    for name, payload, _, _ in bad:
        admin.raw(name, payload)
    good = make_event()
    admin.send(good, Channel.EVENT)
    admin.flush()
    await running.wait_stored(1)
    await eventually(lambda: _rejected(running, len(bad)), 10, "every message")

    stats = running.ingestor.stats()
    expected: dict[str, int] = {}
    for _, _, reason, _ in bad:
        expected[reason] = expected.get(reason, 0) + 1
    assert stats.rejected == expected
    for reason, n in expected.items():
        sample = running.ingestor.registry.get_sample_value(
            "cityops_ingest_rejected_total", {"reason": reason}
        )
        assert sample == n
    with Session(running.engine) as s:
        letters = s.scalars(select(DeadLetter).order_by(DeadLetter.id)).all()
    got = sorted((d.topic, d.reason, d.field) for d in letters)
    assert got == sorted((t, r, f) for t, _, r, f in bad)
    big = next(d for d in letters if d.reason == "too_large")
    assert len(big.payload) == 2048
    mismatch = next(d for d in letters if d.reason == "device_mismatch")
    assert mismatch.device_id == "dev-b"
    assert "dev-a" in mismatch.detail
    assert await running.store.get_event(good.id) == good


async def test_random_bytes_never_stop_the_ingestor(running: Running, admin: Publisher) -> None:
    rng = random.Random(5)
    channels = [Channel.EVENT, Channel.TELEMETRY, Channel.STATUS, Channel.CMD_ACK]
    n = 300
    for _ in range(n):
        payload = rng.randbytes(rng.randint(0, 400))
        admin.raw(topic("dev-c", rng.choice(channels)), payload)
    good = make_event("dev-c")
    admin.send(good, Channel.EVENT)
    admin.flush()
    await running.wait_stored(1)
    await eventually(lambda: _rejected(running, n), 10, "every message")
    stats = running.ingestor.stats()
    assert sum(stats.rejected.values()) == n
    assert set(stats.rejected) <= {"invalid_json", "schema"}
    assert await running.store.get_event(good.id) == good


async def test_device_registry_follows_status_telemetry_and_config_acks(
    running: Running, device: Publisher
) -> None:
    first = make_telemetry(ts=utcnow() - timedelta(seconds=20), outbox_depth=9)
    latest = make_telemetry(ts=utcnow() - timedelta(seconds=2), outbox_depth=1)
    device.send(make_status(online=True), Channel.STATUS)
    device.send(latest, Channel.TELEMETRY)
    device.send(first, Channel.TELEMETRY)  # late arrival must not win
    device.send(make_config_ack(version=4), Channel.CMD_ACK)
    device.flush()

    async def updated() -> bool:
        with Session(running.engine) as s:
            d = s.get(Device, "dev-a")
            return d is not None and d.config_acked_version == 4

    await eventually(updated, 10, "device row")
    with Session(running.engine) as s:
        d = s.get(Device, "dev-a")
        assert d is not None
        assert d.online is True
        assert d.last_status_at is not None
        assert d.last_seen is not None
        assert d.last_telemetry_at == latest.ts
        assert d.last_telemetry is not None
        assert d.last_telemetry["outbox_depth"] == 1
        assert d.config_ack_message == "applied"
    assert await running.store.recent_telemetry("dev-a") == [latest, first]

    device.send(make_status(online=False), Channel.STATUS)
    device.flush()

    async def offline() -> bool:
        with Session(running.engine) as s:
            d = s.get(Device, "dev-a")
            return d is not None and d.online is False

    await eventually(offline, 10, "offline")


async def test_a_failing_hook_loses_nothing(
    mosquitto: Broker,
    store_settings: StoreSettings,
    tmp_path: Path,
    device: Publisher,
) -> None:
    settings: CloudSettings = make_settings(mosquitto, store_settings, tmp_path, "failing-hook")
    calls: list[int] = []

    async def broken(events: Sequence[Event]) -> None:
        calls.append(len(events))
        raise RuntimeError("incident service down")

    async with run_ingestor(settings) as running:
        running.ingestor.hooks.insert(0, broken)
        events = [make_event() for _ in range(10)]
        for e in events:
            device.send(e, Channel.EVENT)
        device.flush()
        await running.wait_stored(10)
        await eventually(lambda: _received(running, 10), 10, "10 messages")
        assert sum(calls) == 10
        assert running.ingestor.stats().hook_errors == len(calls)
        assert sorted(e.id for b in running.hooked for e in b) == sorted(e.id for e in events)


async def test_stored_messages_are_acknowledged_and_never_come_back(
    mosquitto: Broker, store_settings: StoreSettings, tmp_path: Path, device: Publisher
) -> None:
    settings = make_settings(mosquitto, store_settings, tmp_path, "acked")
    async with run_ingestor(settings) as first:
        for _ in range(30):
            device.send(make_event(), Channel.EVENT)
        device.flush()
        await first.wait_stored(30)
        await eventually(lambda: _received(first, 30), 10, "30 messages")
    # Same client id, persistent session: only unacknowledged messages would be redelivered.
    async with run_ingestor(settings) as second:
        late = make_event()
        device.send(late, Channel.EVENT)
        device.flush()
        await second.wait_stored(31)
        await eventually(lambda: _stored_count(second, 1), 10, "the new message")
        await asyncio.sleep(0.3)  # a redelivery would arrive with the session, before this
        reg = second.ingestor.registry  # (retained status of earlier tests may arrive too)
        assert reg.get_sample_value("cityops_ingest_received_total", {"channel": "event"}) == 1


async def _stored_count(running: Running, n: int) -> bool:
    return running.ingestor.stats().stored_events >= n


async def test_a_flood_of_bad_input_keeps_only_the_newest_dead_letters(
    mosquitto: Broker, store_settings: StoreSettings, tmp_path: Path, admin: Publisher
) -> None:
    settings = make_settings(
        mosquitto, store_settings, tmp_path, "flood", dead_letter_max_rows=40, batch_size=25
    )
    async with run_ingestor(settings) as running:
        running.ingestor.prune_every_s = 0.0
        for i in range(120):
            admin.raw(topic("dev-a", Channel.EVENT), f"garbage {i}".encode())
        admin.flush()
        await eventually(lambda: _rejected(running, 120), 10, "120 messages")
        admin.raw(topic("dev-a", Channel.EVENT), b"last one")
        admin.flush()
        await eventually(lambda: _rejected(running, 121), 10, "the last message")

        def letters() -> list[str]:
            with Session(running.engine) as s:
                return list(s.scalars(select(DeadLetter.payload).order_by(DeadLetter.id)))

        async def trimmed() -> bool:
            return len(await asyncio.to_thread(letters)) <= 40

        await eventually(trimmed, 10, "trimmed dead letters")
        kept = await asyncio.to_thread(letters)
        assert kept[-1] == "last one"
        assert "garbage 0" not in kept
        assert running.ingestor.stats().rejected == {"invalid_json": 121}
