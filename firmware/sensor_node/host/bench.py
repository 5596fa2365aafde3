"""Benchmark of the sensor node's logic: MicroPython (WebAssembly) against CPython, same run.

``python -m firmware.sensor_node.host.bench`` prints one JSON object: per workload the mean time
per call on CPython (the baseline) and on MicroPython, and their ratio. The ESP32 is slower than
both (roughly another order of magnitude than MicroPython on a PC); the ratio says which parts of
the duty cycle would need ``@micropython.native`` or ``ulab`` first.
"""

import json
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[3]
RUNNER = REPO / "firmware/scripts/run-micropython.mjs"
MICROPYTHON = (
    REPO
    / ".cache/micropython/node_modules/@micropython/micropython-webassembly-pyscript"
    / "micropython.mjs"
)

# Runs on both interpreters: no typing, no f-string format specs, time.time() only.
WORKLOADS = r"""
import math
import time

from firmware.sensor_node import crc, messages
from firmware.sensor_node.config import NodeConfig, ThresholdRule
from firmware.sensor_node.drivers import noise
from firmware.sensor_node.ringbuf import MemoryStorage, RingBuffer
from firmware.sensor_node.thresholds import ThresholdEngine
from firmware.sensor_node.uuid7 import Uuid7Generator


class Bits:
    def __init__(self):
        self.x = 12345

    def getrandbits(self, k):
        self.x = (self.x * 1103515245 + 12345) & 0x7FFFFFFF
        return self.x & ((1 << k) - 1)


SAMPLES = [0.05 * math.sin(2 * math.pi * 1000 * i / 16000) for i in range(1600)]
READINGS = {"pm25_ugm3": 12.3, "noise_dba": 55.1, "temperature_c": 18.2, "humidity_pct": 60.1}
RULES = [ThresholdRule("pm25", "pm25_ugm3", 35.0, 25.0)]
ring = RingBuffer(MemoryStorage(64 * 512))
ids = Uuid7Generator(Bits())
engine = ThresholdEngine()
config = NodeConfig("node-01", thresholds=RULES)
state = {"n": 0}


def dba():
    noise.dba(SAMPLES, 16000)


def telemetry():
    messages.telemetry("node-01", now_ms=1795000000000, uptime_ms=1000, readings=READINGS,
                       battery_pct=80.0, outbox_depth=0, dropped_telemetry=0, dropped_events=0)


def ring_push_pop():
    ring.push(1, b"x" * 300)
    record = ring.peek()
    ring.pop(record.seq)


def threshold_cycle():
    state["n"] += 1
    value = 50.0 if state["n"] % 2 else 10.0
    for c in engine.evaluate(RULES, {"pm25_ugm3": value}, 1795000000000 + state["n"], ids.new):
        messages.threshold_event("node-01", c, config)


def uuid7():
    ids.new(1795000000000)


def crc32_300():
    crc.crc32(b"y" * 300)


CASES = (
    ("dba_100ms_16khz", dba, 5),
    ("telemetry_encode", telemetry, 200),
    ("ring_push_pop_300b", ring_push_pop, 100),
    ("threshold_event", threshold_cycle, 200),
    ("uuid7", uuid7, 500),
    ("crc32_300b", crc32_300, 200),
)
for name, fn, n in CASES:
    fn()
    t0 = time.time()
    for _ in range(n):
        fn()
    print(name, (time.time() - t0) / n * 1e6)
"""


def parse(output: str) -> dict[str, float]:
    result = {}
    for line in output.splitlines():
        name, _, value = line.partition(" ")
        if value:
            result[name] = float(value)
    return result


def main() -> int:
    subprocess.run(
        ["bash", str(REPO / "firmware/scripts/install-micropython.sh")],
        check=True,
        capture_output=True,
    )
    with tempfile.TemporaryDirectory() as tmp:
        script = Path(tmp) / "workloads.py"
        script.write_text(WORKLOADS)
        cpy = subprocess.run(
            [sys.executable, str(script)],
            capture_output=True,
            text=True,
            check=True,
            env={"PYTHONPATH": str(REPO)},
        )
        mpy = subprocess.run(
            ["node", str(RUNNER), str(MICROPYTHON), str(REPO), str(script)],
            capture_output=True,
            text=True,
            check=True,
        )
    base, micro = parse(cpy.stdout), parse(mpy.stdout)
    report = {
        name: {
            "cpython_us": round(base[name], 1),
            "micropython_wasm_us": round(micro[name], 1),
            "ratio_vs_cpython": round(micro[name] / base[name], 1),
        }
        for name in base
    }
    sys.stdout.write(json.dumps({"benchmark": "sensor_node", "results": report}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
