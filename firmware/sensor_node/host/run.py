"""Run a simulated sensor node against a broker: ``python -m firmware.sensor_node.host``.

The scene drifts like a street corner: PM2.5 with a traffic spike, noise that follows it, a car
that comes and goes in the bay. Readings are real-time unless ``--fast`` (simulated clock).
"""

import argparse
import logging
import math
import os
import time

from firmware.sensor_node.config import NodeConfig, ThresholdRule
from firmware.sensor_node.host.board import Scene, SimulatedBoard
from firmware.sensor_node.host.clock import SimClock, SystemClock, host_random
from firmware.sensor_node.host.mqtt import PahoUmqttClient
from firmware.sensor_node.node import SensorNode
from firmware.sensor_node.ringbuf import FileStorage, RingBuffer

log = logging.getLogger("cityops.sensor_node")

SPIKE_EVERY = 40
SPIKE_LENGTH = 8


def street_scene(n: int) -> Scene:
    spike = n % SPIKE_EVERY < SPIKE_LENGTH
    base = 12 + 6 * math.sin(n / 15)
    pm25 = round(base + (38 if spike else 0))
    return Scene(
        pm25_ugm3=pm25,
        temperature_c=17.0 + 3 * math.sin(n / 60),
        humidity_pct=65.0 - 10 * math.sin(n / 60),
        noise_dba=52.0 + (18.0 if spike else 4 * math.sin(n / 7)),
        car_in_bay=(n // 25) % 2 == 1,
        battery_pct=max(100.0 - n * 0.05, 5.0),
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--device-id", required=True, help="Also the MQTT username.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=1883)
    parser.add_argument(
        "--password-env",
        default="CITYOPS_NODE_PASSWORD",
        help="Environment variable holding the MQTT password (never on the command line).",
    )
    parser.add_argument("--interval", type=float, default=5.0, help="Seconds between readings.")
    parser.add_argument("--cycles", type=int, default=0, help="Stop after N readings (0: never).")
    parser.add_argument("--fast", action="store_true", help="Simulated clock, no sleeping.")
    parser.add_argument("--outbox", default="sensor-node-outbox.bin", help="Flash ring file.")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    interval_ms = int(args.interval * 1000)
    sim = SimClock(int(time.time() * 1000) - max(args.cycles, 1) * interval_ms)
    clock = sim if args.fast else SystemClock()
    rules = [
        ThresholdRule("pm25", "pm25_ugm3", 35.0, 25.0, severity="medium"),
        ThresholdRule("noise", "noise_dba", 68.0, 62.0, severity="low"),
    ]
    node = SensorNode(
        NodeConfig(args.device_id, interval_s=args.interval, thresholds=rules),
        board=SimulatedBoard(street_scene),
        mqtt=PahoUmqttClient(
            args.device_id,
            args.host,
            args.port,
            args.device_id,
            os.environ.get(args.password_env),
        ),
        clock=clock,
        rng=host_random(),
        buffer=RingBuffer(FileStorage(args.outbox, 128 * 512)),
    )
    n = 0
    try:
        while args.cycles == 0 or n < args.cycles:
            started = clock.now_ms()
            report = node.cycle()
            log.info(
                "reading %d: %d events, %d sent, %d buffered, %s",
                n,
                report.events,
                report.sent,
                report.buffered,
                "online" if report.connected else "offline",
            )
            n += 1
            if args.fast:
                sim.advance(interval_ms)
            else:
                time.sleep(node.sleep_ms(started) / 1000)
    except KeyboardInterrupt:
        pass
    finally:
        node.mqtt.disconnect()
    return 0
