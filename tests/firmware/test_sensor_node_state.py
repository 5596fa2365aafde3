"""Deep sleep keeps the node's state; the host runner publishes a street scene."""

import os
import random
import subprocess
import sys
from pathlib import Path

import pytest

from firmware.sensor_node.config import NodeConfig
from firmware.sensor_node.host.board import Scene, SimulatedBoard
from firmware.sensor_node.host.clock import SimClock
from firmware.sensor_node.node import SensorNode
from firmware.sensor_node.ringbuf import MemoryStorage, RingBuffer
from shared.clock import utcnow
from shared.codec import decode
from shared.commands import CommandAck
from shared.events import Event, Phase
from shared.telemetry import Telemetry
from tests.conftest import Broker
from tests.firmware.nodes import PM25_RULE, Collector


class DownMqtt:
    """A broker that is never there (the node buffers everything)."""

    def set_callback(self, f: object) -> None: ...

    def set_last_will(self, topic: bytes, msg: bytes, retain: bool = False, qos: int = 0) -> None:
        raise OSError("no network")

    def connect(self, clean_session: bool = True) -> int:
        raise OSError("no network")

    def publish(self, topic: bytes, msg: bytes, retain: bool = False, qos: int = 0) -> None:
        raise OSError("no network")

    def subscribe(self, topic: bytes, qos: int = 0) -> None:
        raise OSError("no network")

    def check_msg(self) -> None: ...

    def disconnect(self) -> None: ...


def wake(board: SimulatedBoard, storage: MemoryStorage, clock: SimClock) -> SensorNode:
    """What a wake-up from deep sleep does: a fresh node over the same RTC memory and flash."""
    return SensorNode(
        NodeConfig("node-sleepy", thresholds=[PM25_RULE]),
        board=board,
        mqtt=DownMqtt(),
        clock=clock,
        rng=random.Random(),
        buffer=RingBuffer(storage),
    )


def test_deep_sleep_keeps_episodes_ids_and_the_flash_ring() -> None:
    series = [10, 50, 60, 20]
    board = SimulatedBoard(lambda n: Scene(pm25_ugm3=series[n]))
    storage = MemoryStorage(64 * 512)
    clock = SimClock(int(utcnow().timestamp() * 1000) - 600_000)
    for _ in series:
        wake(board, storage, clock).cycle()
        clock.advance(60_000)
    ring = RingBuffer(storage)
    payloads = []
    while (record := ring.peek()) is not None:
        payloads.append(record.payload)
        ring.pop(record.seq)
    events = [decode(Event, p) for p in payloads if b'"kind":"sensor_threshold"' in p]
    telemetry = [decode(Telemetry, p) for p in payloads if b'"readings"' in p]
    assert [t.readings["pm25_ugm3"] for t in telemetry] == [10.0, 50.0, 60.0, 20.0]
    assert [e.phase for e in events] == [Phase.START, Phase.END]
    assert events[1].attributes["start_id"] == events[0].id
    assert events[1].attributes["peak"] == 60.0
    assert events[0].id < events[1].id  # the UUIDv7 counter survived the reboots too


def test_a_corrupted_rtc_state_starts_clean() -> None:
    board = SimulatedBoard()
    board.state = b'{"v": 1, "ids": "garbage"'
    node = wake(board, MemoryStorage(8 * 512), SimClock(1_700_000_000_000))
    assert node.engine.episodes == {}
    node.cycle()
    assert board.state.startswith(b"{")


@pytest.mark.services
def test_host_runner_publishes_the_street_scene(mosquitto: Broker, tmp_path: Path) -> None:
    device = "node-street"
    mosquitto.add_user(device, "street-pw")
    collector = Collector(mosquitto, device)
    try:
        proc = subprocess.run(
            [
                sys.executable,
                "-m",
                "firmware.sensor_node.host",
                "--device-id",
                device,
                "--port",
                str(mosquitto.port),
                "--fast",
                "--cycles",
                "45",
                "--interval",
                "10",
                "--outbox",
                str(tmp_path) + "/ring.bin",
            ],
            env={**os.environ, "CITYOPS_NODE_PASSWORD": "street-pw"},
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert proc.returncode == 0, proc.stderr[-2000:]
        telemetry = collector.wait_for("telemetry", 45)
        events = [decode(Event, p) for p in collector.wait_for("event", 6)]
    finally:
        collector.close()
    assert "street-pw" not in proc.stderr
    assert len(telemetry) == 45
    by_rule = {rule: [e.phase for e in events if e.zone_id == rule] for rule in ("pm25", "noise")}
    assert by_rule == {
        "pm25": [Phase.START, Phase.END, Phase.START],
        "noise": [Phase.START, Phase.END, Phase.START],
    }


def test_applied_config_survives_deep_sleep_and_its_ack_waits_in_flash() -> None:
    board = SimulatedBoard()
    storage = MemoryStorage(16 * 512)
    clock = SimClock(int(utcnow().timestamp() * 1000) - 60_000)
    node = wake(board, storage, clock)
    config = (
        b'{"v":1,"device_id":"node-sleepy","version":3,"telemetry_interval_s":600,'
        b'"location":{"lat":38.7,"lon":-9.1},"sensors":{"deep_sleep":true,"thresholds":'
        b'[{"id":"hot","reading":"temperature_c","level":30,"clear":28,"severity":"high"}]}}'
    )
    node._on_message(b"cityops/v1/node-sleepy/config", config)
    node.save_state()
    woken = wake(board, storage, clock)
    assert woken.config.version == 3
    assert woken.config.interval_s == 600
    assert woken.config.deep_sleep
    assert woken.config.location == (38.7, -9.1)
    assert [(r.id, r.level, r.clear, r.severity) for r in woken.config.thresholds] == [
        ("hot", 30, 28, "high")
    ]
    record = RingBuffer(storage).peek()
    assert record is not None
    ack = decode(CommandAck, record.payload)
    assert (ack.ok, ack.config_version) == (True, 3)
