"""Helpers for sensor-node tests: a simulated node on the real broker, and a topic collector."""

import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

from firmware.sensor_node.config import NodeConfig, ThresholdRule
from firmware.sensor_node.host.board import Scene, SimulatedBoard
from firmware.sensor_node.host.clock import SimClock, host_random
from firmware.sensor_node.host.mqtt import PahoUmqttClient
from firmware.sensor_node.node import SensorNode
from firmware.sensor_node.ringbuf import MemoryStorage, RingBuffer
from shared.clock import utcnow
from tests.conftest import Broker

PM25_RULE = ThresholdRule("pm25", "pm25_ugm3", 35.0, 25.0, severity="high")


@dataclass
class SimNode:
    node: SensorNode
    clock: SimClock
    board: SimulatedBoard
    mqtt: PahoUmqttClient

    def cycles(self, n: int, step_ms: int = 10_000) -> None:
        for _ in range(n):
            self.node.cycle()
            self.clock.advance(step_ms)


def sim_node(
    broker: Broker,
    device_id: str,
    scene_at: Callable[[int], Scene] | None = None,
    *,
    rules: list[ThresholdRule] | None = None,
    minutes_ago: int = 30,
) -> SimNode:
    """A node whose simulated clock starts *minutes_ago* (its readings are never in the future)."""
    broker.add_user(device_id, f"{device_id}-pw")
    clock = SimClock(int(utcnow().timestamp() * 1000) - minutes_ago * 60_000)
    board = SimulatedBoard(scene_at)
    mqtt = PahoUmqttClient(
        device_id, broker.host, broker.port, device_id, f"{device_id}-pw", timeout_s=3.0
    )
    node = SensorNode(
        NodeConfig(device_id, thresholds=rules if rules is not None else [PM25_RULE]),
        board=board,
        mqtt=mqtt,
        clock=clock,
        rng=host_random(),
        buffer=RingBuffer(MemoryStorage(256 * 512)),
    )
    return SimNode(node=node, clock=clock, board=board, mqtt=mqtt)


@dataclass
class Collector:
    """Subscribes as the admin to a device's topics; reconnects when the broker restarts."""

    broker: Broker
    device_id: str
    messages: list[tuple[str, bytes, bool]] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _ready: threading.Event = field(default_factory=threading.Event)

    def __post_init__(self) -> None:
        self.client = paho.Client(
            CallbackAPIVersion.VERSION2,
            client_id=f"collect-{uuid.uuid4().hex[:10]}",
            protocol=paho.MQTTv311,
        )
        self.client.username_pw_set("cityops-admin", "admin-pw")
        self.client.reconnect_delay_set(1, 1)
        self.client.on_connect = self._on_connect
        self.client.on_subscribe = lambda *_a: self._ready.set()
        self.client.on_disconnect = lambda *_a: self._ready.clear()
        self.client.on_message = self._on_message
        self.client.connect(self.broker.host, self.broker.port)
        self.client.loop_start()
        self.wait_ready()

    def _on_connect(
        self,
        client: paho.Client,
        _u: object,
        _f: paho.ConnectFlags,
        _rc: ReasonCode,
        _p: Properties | None,
    ) -> None:
        client.subscribe(f"cityops/v1/{self.device_id}/#", qos=1)

    def _on_message(self, _c: paho.Client, _u: object, msg: paho.MQTTMessage) -> None:
        with self._lock:
            self.messages.append((msg.topic, bytes(msg.payload), bool(msg.retain)))

    def wait_ready(self, timeout_s: float = 10.0) -> None:
        assert self._ready.wait(timeout_s), "collector did not (re)subscribe"

    def on(self, channel: str) -> list[bytes]:
        suffix = f"/{self.device_id}/{channel}"
        with self._lock:
            return [p for t, p, _r in self.messages if t.endswith(suffix)]

    def wait_for(self, channel: str, n: int, timeout_s: float = 10.0) -> list[bytes]:
        deadline = time.monotonic() + timeout_s
        while len(got := self.on(channel)) < n:
            assert time.monotonic() < deadline, f"got {len(got)} of {n} on {channel}"
            time.sleep(0.02)
        return got

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()
