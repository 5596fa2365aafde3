"""Pure logic of the sensor node: ring buffer, thresholds, config parsing, drivers."""

import json
import math
import random
import zlib
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from firmware.sensor_config import SensorNodeConfig
from firmware.sensor_node import crc
from firmware.sensor_node.config import ConfigError, NodeConfig, ThresholdRule, parse_config
from firmware.sensor_node.drivers import magnetometer, noise, pms5003, sht31
from firmware.sensor_node.host.board import Scene, SimulatedBoard, SimulatedSht31Bus, tone_i2s
from firmware.sensor_node.ringbuf import FileStorage, MemoryStorage, RecordTooLargeError, RingBuffer
from firmware.sensor_node.thresholds import END, START, ThresholdEngine
from firmware.sensor_node.uuid7 import Uuid7Generator

# ------------------------------------------------------------------------------ ring buffer


def test_ring_is_fifo_and_survives_reopen(tmp_path: Path) -> None:
    path = str(tmp_path / "ring.bin")
    ring = RingBuffer(FileStorage(path, 8 * 128), slot_size=128)
    for i in range(5):
        ring.push(1, f"m{i}".encode())
    first = ring.peek()
    assert first is not None
    assert first.payload == b"m0"
    ring.pop(first.seq)
    reopened = RingBuffer(FileStorage(path, 8 * 128), slot_size=128)
    got = []
    while (record := reopened.peek()) is not None:
        got.append(record.payload)
        reopened.pop(record.seq)
    assert got == [b"m1", b"m2", b"m3", b"m4"]
    assert len(RingBuffer(FileStorage(path, 8 * 128), slot_size=128)) == 0


def test_ring_overwrites_oldest_and_counts_per_channel() -> None:
    ring = RingBuffer(MemoryStorage(4 * 64), slot_size=64)
    for i in range(7):
        ring.push(2 if i == 0 else 1, bytes([i]))
    assert len(ring) == 4
    assert ring.dropped == {2: 1, 1: 2}
    record = ring.peek()
    assert record is not None
    assert record.payload == bytes([3])


def test_ring_skips_a_torn_record() -> None:
    storage = MemoryStorage(4 * 64)
    ring = RingBuffer(storage, slot_size=64)
    ring.push(1, b"good-0")
    ring.push(1, b"torn-1")
    ring.push(1, b"good-2")
    storage.data[64 + 20] ^= 0xFF  # flip a payload byte of slot 1: the CRC no longer matches
    reopened = RingBuffer(storage, slot_size=64)
    assert len(reopened) == 2
    payloads = []
    while (record := reopened.peek()) is not None:
        payloads.append(record.payload)
        reopened.pop(record.seq)
    assert payloads == [b"good-0", b"good-2"]
    assert reopened.next_seq == 3  # the torn slot's seq is never reused


def test_ring_refuses_oversized_and_out_of_order_pop() -> None:
    ring = RingBuffer(MemoryStorage(2 * 64), slot_size=64)
    with pytest.raises(RecordTooLargeError, match="payload"):
        ring.push(1, bytes(49))
    ring.push(1, b"a")
    ring.push(1, b"b")
    with pytest.raises(ValueError, match="seq"):
        ring.pop(1)


@given(st.lists(st.binary(min_size=0, max_size=40), max_size=30), st.integers(2, 6))
def test_ring_keeps_the_newest_messages_in_order(payloads: list[bytes], slots: int) -> None:
    ring = RingBuffer(MemoryStorage(slots * 64), slot_size=64)
    for p in payloads:
        ring.push(1, p)
    out = []
    while (record := ring.peek()) is not None:
        out.append(record.payload)
        ring.pop(record.seq)
    assert out == payloads[-slots:] if payloads else out == []
    assert sum(ring.dropped.values()) == max(len(payloads) - slots, 0)


def test_crc_matches_references() -> None:
    assert crc.crc32(b"123456789") == zlib.crc32(b"123456789")
    assert crc.crc8_sensirion(b"\xbe\xef") == 0x92  # SHT3x datasheet example


# ------------------------------------------------------------------------------- thresholds


def run_series(rule: ThresholdRule, series: list[float]) -> list[tuple[int, str]]:
    engine = ThresholdEngine()
    gen = Uuid7Generator(random.Random(0))
    out = []
    for i, value in enumerate(series):
        out += [(i, c.phase) for c in engine.evaluate([rule], {rule.reading: value}, i, gen.new)]
    return out


@pytest.mark.parametrize(
    ("series", "expected"),
    [
        ([10, 20, 30], []),
        ([10, 35, 50, 80, 40], [(1, START)]),
        ([40, 30, 34.9, 26, 40, 25], [(0, START), (5, END)]),
        ([40, 20, 40, 20], [(0, START), (1, END), (2, START), (3, END)]),
        ([36, 34, 36, 34, 36, 34], [(0, START)]),  # wobbling between clear and level: one event
    ],
)
def test_hysteresis_above(series: list[float], expected: list[tuple[int, str]]) -> None:
    assert run_series(ThresholdRule("pm", "pm25_ugm3", 35.0, 25.0), series) == expected


def test_hysteresis_below() -> None:
    rule = ThresholdRule("batt", "battery_v", 3.3, 3.5, direction="below")
    assert run_series(rule, [3.9, 3.2, 3.4, 3.2, 3.6]) == [(1, START), (4, END)]


def test_missing_reading_changes_nothing_and_state_round_trips() -> None:
    rule = ThresholdRule("pm", "pm25_ugm3", 35.0, 25.0)
    engine = ThresholdEngine()
    gen = Uuid7Generator(random.Random(0))
    assert len(engine.evaluate([rule], {"pm25_ugm3": 50.0}, 1000, gen.new)) == 1
    assert engine.evaluate([rule], {}, 2000, gen.new) == []
    restored = ThresholdEngine.from_json(json.loads(json.dumps(engine.to_json())))
    ended = restored.evaluate([rule], {"pm25_ugm3": 10.0}, 3000, gen.new)
    assert [c.phase for c in ended] == [END]
    assert ended[0].episode.started_ms == 1000
    assert ended[0].episode.peak == 50.0


def test_removed_rule_ends_its_episode() -> None:
    rule = ThresholdRule("pm", "pm25_ugm3", 35.0, 25.0)
    engine = ThresholdEngine()
    gen = Uuid7Generator(random.Random(0))
    engine.evaluate([rule], {"pm25_ugm3": 50.0}, 1000, gen.new)
    ended = engine.evaluate([], {"pm25_ugm3": 50.0}, 2000, gen.new)
    assert [(c.phase, c.reason, c.rule.reading) for c in ended] == [
        (END, "rule_removed", "pm25_ugm3")
    ]
    assert engine.episodes == {}


# ----------------------------------------------------------------------------------- config

GOOD = {
    "v": 1,
    "device_id": "node-01",
    "version": 7,
    "telemetry_interval_s": 120,
    "location": {"lat": 38.72, "lon": -9.14},
    "sensors": {
        "thresholds": [
            {"id": "pm25", "reading": "pm25_ugm3", "level": 35, "clear": 25},
            {
                "id": "cold",
                "reading": "temperature_c",
                "direction": "below",
                "level": 0,
                "clear": 2,
                "severity": "high",
            },
        ],
        "deep_sleep": True,
    },
}


def with_(path: str, value: object) -> dict[str, object]:
    data = json.loads(json.dumps(GOOD))
    *parents, last = path.split(".")
    node = data
    for part in parents:
        node = node[int(part)] if part.isdigit() else node[part]
    node[last] = value
    return data  # type: ignore[no-any-return]


def test_parse_config_reads_the_device_config() -> None:
    cfg = parse_config(json.dumps(GOOD).encode(), NodeConfig("node-01"))
    assert cfg.version == 7
    assert cfg.interval_s == 120
    assert cfg.location == (38.72, -9.14)
    assert cfg.deep_sleep
    assert [(r.id, r.direction, r.level, r.clear, r.severity) for r in cfg.thresholds] == [
        ("pm25", "above", 35, 25, "medium"),
        ("cold", "below", 0, 2, "high"),
    ]
    SensorNodeConfig.model_validate(GOOD)  # the proposed contract accepts the same document


def test_plain_device_config_keeps_the_node_thresholds() -> None:
    base = NodeConfig("node-01", thresholds=[ThresholdRule("pm", "pm25_ugm3", 35.0, 25.0)])
    cfg = parse_config(b'{"v":1,"device_id":"node-01","version":2,"cameras":[]}', base)
    assert cfg.interval_s == 30.0
    assert [r.id for r in cfg.thresholds] == ["pm"]


@pytest.mark.parametrize(
    ("data", "field"),
    [
        (with_("device_id", "node-02"), "device_id"),
        (with_("version", -1), "version"),
        (with_("version", 1.5), "version"),
        (with_("telemetry_interval_s", 0.5), "telemetry_interval_s"),
        (with_("location.lat", 91), "location.lat"),
        (with_("sensors.thresholds.0.clear", 40), "sensors.thresholds.0.clear"),
        (with_("sensors.thresholds.1.direction", "sideways"), "sensors.thresholds.1.direction"),
        (with_("sensors.thresholds.0.reading", "PM25"), "sensors.thresholds.0.reading"),
        (with_("sensors.thresholds.0.id", "a/b"), "sensors.thresholds.0.id"),
        (with_("sensors.thresholds.0.level", "high"), "sensors.thresholds.0.level"),
        (with_("sensors.thresholds.1.id", "pm25"), "sensors.thresholds"),
        (with_("sensors.deep_sleep", "yes"), "sensors.deep_sleep"),
    ],
)
def test_node_and_contract_refuse_the_same_configs(data: dict[str, object], field: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_config(json.dumps(data).encode(), NodeConfig("node-01"))
    assert caught.value.field == field
    if field != "device_id":  # the contract cannot know which device reads it
        with pytest.raises(ValidationError):
            SensorNodeConfig.model_validate(data)


# ---------------------------------------------------------------------------------- drivers


def test_pms5003_finds_the_newest_valid_frame() -> None:
    old = pms5003.encode_frame(1, 2, 3)
    new = pms5003.encode_frame(4, 55, 66)
    corrupt = bytearray(pms5003.encode_frame(9, 99, 99))
    corrupt[10] ^= 1
    reading = pms5003.find_frame(b"\x42" + old + bytes(corrupt) + new + b"\x42\x4d\x00")
    assert reading is not None
    assert (reading.pm1, reading.pm25, reading.pm10) == (4, 55, 66)
    assert pms5003.find_frame(bytes(corrupt)) is None
    with pytest.raises(pms5003.FrameError, match="length"):
        pms5003.parse_frame(b"BM\x00\x1a" + new[4:])


def test_sht31_measures_through_the_bus() -> None:
    bus = SimulatedSht31Bus()
    bus.scene = Scene(temperature_c=-7.25, humidity_pct=93.5)
    climate = sht31.Sht31(bus, sleep_ms=lambda _ms: None).measure()
    assert bus.commands == [sht31.MEASURE_HIGH]
    assert climate.temperature_c == pytest.approx(-7.25, abs=0.01)
    assert climate.humidity_pct == pytest.approx(93.5, abs=0.01)
    with pytest.raises(sht31.CrcError, match="humidity"):
        sht31.decode(sht31.word_with_crc(100) + b"\x00\x01\x02")


@pytest.mark.parametrize(
    ("freq_hz", "a_weight_db"),
    [(1000.0, 0.0), (100.0, -19.1), (250.0, -8.6), (2000.0, 1.2)],
)
def test_noise_a_weighting_follows_iec_61672(freq_hz: float, a_weight_db: float) -> None:
    rate = 16_000
    amplitude = 0.05  # -26 dBFS: 94 dB SPL on an INMP441
    samples = [amplitude * math.sin(2 * math.pi * freq_hz * i / rate) for i in range(rate // 5)]
    assert noise.dba(samples, rate) == pytest.approx(94.0 + a_weight_db, abs=0.5)


def test_noise_from_i2s_words() -> None:
    assert noise.dba(noise.unpack_i2s_32(tone_i2s(72.0)), 16_000) == pytest.approx(72.0, abs=0.2)


def test_bay_occupancy_has_hysteresis() -> None:
    bay = magnetometer.BayDetector((20.0, 0.0, -40.0), on_ut=12.0, off_ut=6.0)
    path = [0.0, 13.0, 9.0, 7.0, 5.0, 9.0, 13.0]  # deviation along x
    assert [bay.update((20.0 + d, 0.0, -40.0)) for d in path] == [
        False,
        True,
        True,
        True,
        False,
        False,
        True,
    ]
    with pytest.raises(ValueError, match="off_ut"):
        magnetometer.BayDetector((0.0, 0.0, 0.0), on_ut=5.0, off_ut=5.0)
    assert magnetometer.decode_qmc5883l(b"\x78\x00\x10\xff\xf0\x00") == pytest.approx(
        (1.0, -2.0, 2.0)
    )


def test_simulated_board_reads_every_sensor() -> None:
    board = SimulatedBoard(lambda n: Scene(pm25_ugm3=40 + n, noise_dba=66.0, car_in_bay=n > 0))
    first, second = board.read_sensors(), board.read_sensors()
    assert first["pm25_ugm3"] == 40.0
    assert second["pm25_ugm3"] == 41.0
    assert first["noise_dba"] == pytest.approx(66.0, abs=0.2)
    assert (first["bay_occupied"], second["bay_occupied"]) == (0.0, 1.0)
    assert first["temperature_c"] == pytest.approx(18.5, abs=0.01)
