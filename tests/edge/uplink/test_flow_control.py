"""Uplink flow control: the broker's Receive Maximum and Maximum Packet Size, dead letters."""

import asyncio
import json
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from cloud.services.influxd import Influxd
from edge.uplink.mqtt import MqttUplink
from edge.uplink.outbox import Outbox
from shared.events import Event, Snapshot
from tests.cloud.ingest.conftest import run_ingestor
from tests.conftest import Broker
from tests.edge.uplink.fleet import assert_exactly_once, ingest_settings
from tests.edge.uplink.helpers import make_event, uplink_settings
from tests.edge.uplink.proxy import CountingProxy

pytestmark = pytest.mark.services


def test_in_flight_publishes_never_exceed_the_brokers_receive_maximum(
    broker_factory: Callable[..., Broker], tmp_path: Path
) -> None:
    broker = broker_factory(extra=("max_inflight_messages 10",))
    proxy = CountingProxy(broker.host, broker.port)
    settings = uplink_settings(broker, "dev-a", tmp_path / "outbox.db", port=proxy.port)
    assert settings.max_inflight == 50  # the uplink's own window is wider than the broker's
    uplink = MqttUplink(settings, "dev-a", Outbox(settings.outbox))
    try:
        uplink.emit_many([make_event("dev-a") for _ in range(600)])
        uplink.start()
        assert uplink.wait_connected(5)
        assert uplink.wait_drained(30)
    finally:
        uplink.stop()
        uplink.outbox.close()
        proxy.close()
    assert proxy.receive_maximum == 10
    assert proxy.publishes >= 600
    assert 1 < proxy.max_inflight <= 10


def big_event(device: str) -> Event:
    """A contract-valid event of about 130 KB (a 96 KiB snapshot, base64 in JSON)."""
    jpeg = b"\xff\xd8" + bytes(range(256)) * 375
    return make_event(device, snapshot=Snapshot(data=jpeg, width=640, height=480))


async def test_a_too_large_event_goes_to_dead_letters_and_the_rest_flows(
    broker_factory: Callable[..., Broker], influxd: Influxd, influx_db: str, tmp_path: Path
) -> None:
    broker = broker_factory(max_packet_size=64 * 1024)
    settings = ingest_settings(broker, influxd, influx_db, tmp_path, "too-large")
    up = uplink_settings(broker, "dev-a", tmp_path / "outbox.db", delivery="stored")
    uplink = MqttUplink(up, "dev-a", Outbox(up.outbox))
    before = [make_event("dev-a") for _ in range(20)]
    large = big_event("dev-a")
    after = [make_event("dev-a") for _ in range(20)]
    async with run_ingestor(settings) as running:
        uplink.emit_many(before)
        uplink.emit(large)
        uplink.emit_many(after)
        uplink.start()
        try:
            assert await asyncio.to_thread(uplink.wait_drained, 20)
            await asyncio.sleep(1.0)  # a reconnect storm would show in the count now
            counters = uplink.counters()
        finally:
            uplink.stop()
            uplink.outbox.close()
        assert counters.connects == 1
        assert counters.dead_lettered == 1
        assert_exactly_once({e.id for e in before + after}, influxd, influx_db, running)
    command = [sys.executable, "-m", "cityops", "edge", "outbox", "--path", str(up.outbox.path)]
    out = await asyncio.to_thread(
        subprocess.run, [*command, "--json"], capture_output=True, text=True, check=True
    )
    shown = json.loads(out.stdout)
    assert shown["depth"] == 0
    assert shown["dead_letters"] == 1
    assert [d["message_id"] for d in shown["dead_letter_rows"]] == [large.id]


def test_two_units_with_one_identity_back_off_instead_of_storming(
    mosquitto: Broker, tmp_path: Path
) -> None:
    """Each connect of one throws the other off (same login, same client id): both back off."""
    twins = []
    for n in range(2):
        settings = uplink_settings(mosquitto, "dev-b", tmp_path / f"twin-{n}.db")
        twins.append(MqttUplink(settings, "dev-b", Outbox(settings.outbox)))
    try:
        for uplink in twins:
            uplink.start()
        time.sleep(4.0)
        connects = [uplink.counters().connects for uplink in twins]
    finally:
        for uplink in twins:
            uplink.stop()
            uplink.outbox.close()
    # Without a back-off after an accepted-then-dropped connection: thousands each in 10 s.
    assert sum(connects) >= 2
    assert max(connects) <= 12, connects
