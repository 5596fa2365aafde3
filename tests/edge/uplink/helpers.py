"""Shared pieces of the uplink tests: a privileged recording subscriber and event factories."""

import queue
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import cv2
import numpy as np
import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from pydantic import SecretStr

from edge.uplink.settings import OutboxSettings, UplinkSettings
from shared.clock import utcnow
from shared.codec import decode
from shared.commands import CommandAck
from shared.config import DeviceConfig
from shared.events import Event, EventKind, Severity
from shared.ids import new_id
from shared.telemetry import DeviceStatus
from shared.topics import Channel, topic
from tests.conftest import ADMIN_USER, API_USER, Broker


def make_event(device_id: str, severity: Severity = Severity.MEDIUM, **extra: object) -> Event:
    now = utcnow() - timedelta(seconds=1)
    return Event.model_validate(
        {
            "id": new_id(),
            "device_id": device_id,
            "kind": EventKind.ILLEGAL_PARKING,
            "severity": severity,
            "started_at": now,
            "observed_at": now,
            **extra,
        }
    )


def uplink_settings(
    broker: Broker, device_id: str, outbox: Path, **extra: object
) -> UplinkSettings:
    """Settings for *device_id* with its harness password and fast reconnects.

    Delivery contract 1 (delete on PUBACK) unless *extra* says otherwise: these tests have no
    ingestor to confirm what is stored; ``test_end_to_end.py`` runs contract 2 with one.
    """
    base: dict[str, object] = {
        "delivery": "broker",
        "host": broker.host,
        "port": broker.port,
        "username": device_id,
        "password": SecretStr(broker.users[device_id]),
        "backoff_initial_s": 0.1,
        "backoff_max_s": 1.0,
        "telemetry_interval_s": 3600.0,
        "flush_timeout_s": 3.0,
        "outbox": OutboxSettings(path=outbox),
    }
    base.update(extra)
    return UplinkSettings.model_validate(base)


@dataclass(frozen=True, slots=True)
class Received:
    topic: str
    payload: bytes
    retain: bool


class Recorder:
    """A privileged subscriber with a persistent session: keeps every message by topic."""

    def __init__(self, broker: Broker, filters: list[str], client_id: str) -> None:
        self.messages: list[Received] = []
        self._lock = threading.Lock()
        self._subscribed = threading.Event()
        self.arrived: queue.Queue[Received] = queue.Queue()
        self.filters = filters
        self.client = mqtt.Client(
            CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv5
        )
        self.client.username_pw_set(ADMIN_USER, broker.users[ADMIN_USER])
        self.client.reconnect_delay_set(1, 1)
        self.client.on_connect = self._on_connect
        self.client.on_message = self._on_message
        self.client.on_subscribe = lambda *_args: self._subscribed.set()
        props = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
        props.SessionExpiryInterval = 600
        self.client.connect(
            broker.host, broker.service_port, 30, clean_start=False, properties=props
        )
        self.client.loop_start()
        assert self._subscribed.wait(5), "recorder did not subscribe"

    def _on_connect(self, client: mqtt.Client, *_args: object) -> None:
        for f in self.filters:
            client.subscribe(f, qos=1)

    def _on_message(self, _c: mqtt.Client, _u: object, msg: mqtt.MQTTMessage) -> None:
        received = Received(msg.topic, bytes(msg.payload), bool(msg.retain))
        with self._lock:
            self.messages.append(received)
        self.arrived.put(received)

    def payloads(self, topic_name: str) -> list[bytes]:
        with self._lock:
            return [m.payload for m in self.messages if m.topic == topic_name]

    def wait_for(
        self, predicate: Callable[[], bool], timeout: float, what: str = "condition"
    ) -> None:
        deadline = time.monotonic() + timeout
        while not predicate():
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
            time.sleep(0.05)

    def close(self) -> None:
        self.client.disconnect()  # first: it wakes the network loop, so loop_stop is quick
        self.client.loop_stop()


@contextmanager
def recorder(broker: Broker, filters: list[str], client_id: str) -> Iterator[Recorder]:
    rec = Recorder(broker, filters, client_id)
    try:
        yield rec
    finally:
        rec.close()


def id_counts(payloads: list[bytes]) -> Counter[str]:
    return Counter(Event.model_validate_json(p).id for p in payloads)


class FakePipeline:
    """ConfigTarget + SnapshotSource: refuses configs that name unknown cameras."""

    def __init__(self, cameras: set[str], jpeg: bytes | None = None) -> None:
        self.cameras = cameras
        self.config: DeviceConfig | None = None
        self.applied = 0
        self.jpeg = jpeg

    @property
    def config_version(self) -> int:
        return 0 if self.config is None else self.config.version

    def apply_config(self, cfg: DeviceConfig) -> None:
        for cam in cfg.cameras:
            if cam.id not in self.cameras:
                raise ValueError(f"cameras.{cam.id}: unknown camera")
        self.config = cfg
        self.applied += 1

    def latest_jpeg(self, camera_id: str | None = None) -> bytes | None:
        return self.jpeg


def real_jpeg(width: int = 64, height: int = 48) -> bytes:
    image = np.zeros((height, width, 3), dtype=np.uint8)
    image[:, : width // 2] = (0, 128, 255)
    ok, buf = cv2.imencode(".jpg", image)
    assert ok
    return bytes(buf.tobytes())


def statuses(rec: Recorder, device: str) -> list[DeviceStatus]:
    return [decode(DeviceStatus, p) for p in rec.payloads(topic(device, Channel.STATUS))]


def acks(rec: Recorder, device: str) -> list[CommandAck]:
    return [decode(CommandAck, p) for p in rec.payloads(topic(device, Channel.CMD_ACK))]


def publish_as_operator(broker: Broker, topic_name: str, payload: bytes, *, retain: bool) -> None:
    """Publish as the operations API's service account (writes configs and commands)."""
    client = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
    client.username_pw_set(API_USER, broker.users[API_USER])
    client.connect(broker.host, broker.service_port)
    client.loop_start()
    client.publish(topic_name, payload, qos=1, retain=retain).wait_for_publish(5)
    client.disconnect()
    client.loop_stop()
