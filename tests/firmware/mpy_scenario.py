"""Exercise the sensor node's pure modules; run under CPython AND MicroPython, outputs must match.

Only MicroPython-compatible code here (no typing, no f-string format specs on floats): floats are
printed through ``Fixed`` so both interpreters print the same text.
"""

import json
import math
import os

from firmware.sensor_node import crc, isotime, jsonw, messages, uuid7
from firmware.sensor_node.config import ConfigError, NodeConfig, ThresholdRule, parse_config
from firmware.sensor_node.drivers import magnetometer, noise, pms5003, sht31
from firmware.sensor_node.node import SensorNode
from firmware.sensor_node.ringbuf import FileStorage, MemoryStorage, RingBuffer
from firmware.sensor_node.thresholds import ThresholdEngine

BASE_MS = 1_795_000_000_123


def num(x: float, places: int = 4) -> str:
    return jsonw.Fixed(x, places).text()


class Lcg:
    """Deterministic ``getrandbits`` identical on both interpreters."""

    def __init__(self, seed: int) -> None:
        self.state = seed

    def getrandbits(self, bits: int) -> int:
        self.state = (self.state * 1103515245 + 12345) & 0x7FFFFFFF
        value = self.state
        self.state = (self.state * 1103515245 + 12345) & 0x7FFFFFFF
        return ((value << 16) ^ self.state) & ((1 << bits) - 1)


class Clock:
    def __init__(self) -> None:
        self.t = BASE_MS

    def now_ms(self) -> int:
        return self.t

    def uptime_ms(self) -> int:
        return self.t - BASE_MS


class Board:
    def __init__(self, series: list) -> None:  # type: ignore[type-arg]
        self.series = series
        self.n = 0
        self.state = b""

    def read_sensors(self) -> dict:  # type: ignore[type-arg]
        value = self.series[self.n % len(self.series)]
        self.n += 1
        return {"pm25_ugm3": value, "noise_dba": 48.25}

    def battery_pct(self) -> float:
        return 76.5

    def load_state(self) -> bytes:
        return self.state

    def save_state(self, data: bytes) -> None:
        self.state = data


class Mqtt:
    def __init__(self) -> None:
        self.up = False
        self.log: list = []  # type: ignore[type-arg]
        self.callback = None

    def set_callback(self, f: object) -> None:
        self.callback = f  # type: ignore[assignment]

    def set_last_will(self, topic: bytes, msg: bytes, retain: bool = False, qos: int = 0) -> None:
        self.log.append(("will", topic, msg))

    def connect(self, clean_session: bool = True) -> int:
        if not self.up:
            raise OSError("broker away")
        return 0

    def subscribe(self, topic: bytes, qos: int = 0) -> None:
        self.log.append(("sub", topic, b""))

    def publish(self, topic: bytes, msg: bytes, retain: bool = False, qos: int = 0) -> None:
        if not self.up:
            raise OSError("broker away")
        self.log.append(("pub", topic, msg))

    def check_msg(self) -> None:
        return

    def disconnect(self) -> None:
        return


def section(name: str) -> None:
    print("== " + name)


section("iso")
for ms in (0, 951782400000, 1709164800999, BASE_MS, 4102444799999):
    print(isotime.iso_from_ms(ms))

section("uuid7")
gen = uuid7.Uuid7Generator(Lcg(7))
for dt in (0, 0, 0, 1, 5000):
    ident = gen.new(BASE_MS + dt)
    print(ident, uuid7.uuid7_ms(ident) - BASE_MS)

section("json")
print(jsonw.dumps({"a": [1, True, None, 'q"\\\n\x01é'], "b": jsonw.Fixed(-0.005, 2)}))
for x in (0.0, 1.5, -2.25, 12.3456, 100.0, 0.1 + 0.2, -0.0001):
    print(num(x, 2), num(x, 3))

section("crc")
print(crc.crc8_sensirion(b"\xbe\xef"), crc.crc32(b"123456789"), crc.crc32(b""))

section("drivers")
frame = pms5003.encode_frame(5, 37, 41)
pm = pms5003.find_frame(b"\x00junk" + frame + frame[:7])
print(pm.pm1, pm.pm25, pm.pm10)  # type: ignore[union-attr]
try:
    pms5003.parse_frame(frame[:-1] + b"\x00")
except pms5003.FrameError as exc:
    print("pms", exc)
climate = sht31.decode(sht31.word_with_crc(0x6666) + sht31.word_with_crc(0x8000))
print(num(climate.temperature_c), num(climate.humidity_pct))
try:
    sht31.decode(b"\x66\x66\x00\x80\x00\x00")
except sht31.CrcError as exc:
    print("sht", exc)
tone = [0.1 * math.sin(2 * math.pi * 1000 * i / 16000) for i in range(1600)]
low = [0.1 * math.sin(2 * math.pi * 100 * i / 16000) for i in range(1600)]
print(num(noise.dba(tone, 16000), 1), num(noise.dba(low, 16000), 1))
bay = magnetometer.BayDetector((20.0, 0.0, -40.0))
fields = [(20.0, 0.0, -40.0), (30.0, 5.0, -35.0), (35.0, 5.0, -30.0), (27.0, 0.0, -38.0)]
print([bay.update(f) for f in fields])
print(magnetometer.decode_qmc5883l(b"\x78\x00\x88\xff\x00\x00"))

section("ringbuf")
try:  # noqa: SIM105 - no contextlib on MicroPython
    os.remove("/tmp/ring-mpy.bin")  # noqa: PTH107 - no pathlib on MicroPython
except OSError:
    pass
for storage in (MemoryStorage(4 * 64), FileStorage("/tmp/ring-mpy.bin", 4 * 64)):
    ring = RingBuffer(storage, slot_size=64)
    for i in range(6):
        ring.push(1 + i % 2, b"msg" + str(i).encode())
    record = ring.peek()
    print(len(ring), sorted(ring.dropped.items()), record.seq, record.channel, record.payload)  # type: ignore[union-attr]
    ring.pop(record.seq)  # type: ignore[union-attr]
    again = RingBuffer(storage, slot_size=64)
    print(len(again), again.peek().payload, again.next_seq)  # type: ignore[union-attr]

section("thresholds")
rule = ThresholdRule("pm25", "pm25_ugm3", 35.0, 25.0)
engine = ThresholdEngine()
ids = uuid7.Uuid7Generator(Lcg(3))
for i, value in enumerate([10.0, 36.0, 80.0, 30.0, 34.9, 25.0, 26.0, 40.0]):
    for c in engine.evaluate([rule], {"pm25_ugm3": value}, BASE_MS + i * 1000, ids.new):
        print(i, c.phase, num(c.value), num(c.episode.peak))
print([(e["rule"], e["id"], e["t"]) for e in engine.to_json()])

section("config")
base = NodeConfig("node-01")
good = (
    b'{"v":1,"device_id":"node-01","version":4,"telemetry_interval_s":60,'
    b'"location":{"lat":38.72,"lon":-9.14},"sensors":{"thresholds":[{"id":"noise",'
    b'"reading":"noise_dba","direction":"above","level":70,"clear":65,"severity":"low"}]}}'
)
cfg = parse_config(good, base)
where = [num(v) for v in cfg.location]  # type: ignore[union-attr]
print(cfg.version, num(cfg.interval_s), where, [sorted(r.to_json()) for r in cfg.thresholds])
bad = [
    b"[1]",
    b'{"device_id":"node-02","version":1}',
    b'{"device_id":"node-01","version":-1}',
    b'{"device_id":"node-01","version":1,"telemetry_interval_s":0.5}',
    (
        b'{"device_id":"node-01","version":1,"sensors":{"thresholds":[{"id":"a","reading":"x",'
        b'"level":5,"clear":9}]}}'
    ),
]
for payload in bad:
    try:
        parse_config(payload, base)
    except ConfigError as exc:
        print("refused", exc.field)

section("messages")
print(
    messages.telemetry(
        "node-01",
        now_ms=BASE_MS,
        uptime_ms=61234,
        readings={"pm25_ugm3": 12.345, "bay_occupied": 1.0},
        battery_pct=101.0,
        outbox_depth=2,
        dropped_telemetry=1,
        dropped_events=0,
    ).decode()
)
print(messages.status("node-01", online=True, now_ms=BASE_MS, config_version=3).decode())
ack = messages.config_ack("node-01", now_ms=BASE_MS, version=3, ok=False, message="sensors: bad")
print(ack.decode())

section("node")
mqtt = Mqtt()
board = Board([10.0, 50.0, 60.0, 20.0])
node_cfg = NodeConfig("node-01", thresholds=[rule])
clock = Clock()
node = SensorNode(
    node_cfg,
    board=board,
    mqtt=mqtt,
    clock=clock,
    rng=Lcg(11),
    buffer=RingBuffer(MemoryStorage(16 * 512)),
)
for step in range(6):
    if step == 3:
        mqtt.up = True
    report = node.cycle()
    print(report.readings, report.events, report.sent, report.buffered, report.connected)
    clock.t += 30_000
for kind, topic, msg in mqtt.log:
    print(kind, topic.decode(), msg.decode())
state = json.loads(board.state)
print(sorted(state), state["ids"], state["dropped"]["1"], [e["id"] for e in state["episodes"]])
