"""Counts what the devices send over MQTT (bytes, events by kind) for the live view and summary."""

import threading
from collections import Counter
from dataclasses import dataclass, field

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from shared.codec import decode
from shared.errors import ContractError
from shared.events import Event
from shared.telemetry import Telemetry
from shared.topics import Channel, parse, subscription


@dataclass
class Traffic:
    bytes_by_device: Counter[str] = field(default_factory=Counter)
    events_by_kind: Counter[str] = field(default_factory=Counter)
    recent_events: list[Event] = field(default_factory=list)
    telemetry: dict[str, Telemetry] = field(default_factory=dict)
    messages: int = 0
    snapshots: list[bytes] = field(default_factory=list)
    """Every event snapshot that left a device (JPEG), for the privacy audit."""


class Monitor:
    """A read-only MQTT subscriber (the demo's monitor account)."""

    def __init__(self, host: str, port: int, username: str, password: str) -> None:
        self.traffic = Traffic()
        self._lock = threading.Lock()
        self._client = mqtt.Client(
            CallbackAPIVersion.VERSION2, client_id="cityops-demo-monitor", protocol=mqtt.MQTTv5
        )
        self._client.username_pw_set(username, password)
        self._client.on_connect = self._on_connect
        self._client.on_message = self._on_message
        self._host, self._port = host, port

    def start(self) -> None:
        self._client.connect(self._host, self._port)
        self._client.loop_start()

    def stop(self) -> None:
        self._client.loop_stop()
        self._client.disconnect()

    def snapshot(self) -> Traffic:
        with self._lock:
            return Traffic(
                bytes_by_device=Counter(self.traffic.bytes_by_device),
                events_by_kind=Counter(self.traffic.events_by_kind),
                recent_events=list(self.traffic.recent_events[-12:]),
                telemetry=dict(self.traffic.telemetry),
                messages=self.traffic.messages,
                snapshots=list(self.traffic.snapshots),
            )

    def _on_connect(self, client: mqtt.Client, *_args: object) -> None:
        for ch in (Channel.EVENT, Channel.TELEMETRY, Channel.STATUS, Channel.CMD_ACK):
            client.subscribe(subscription(ch), qos=1)

    def _on_message(self, _client: mqtt.Client, _userdata: object, msg: mqtt.MQTTMessage) -> None:
        try:
            parsed = parse(msg.topic)
        except ContractError:
            return
        payload = bytes(msg.payload)
        with self._lock:
            self.traffic.messages += 1
            self.traffic.bytes_by_device[parsed.device_id] += len(payload) + len(msg.topic)
            try:
                if parsed.channel is Channel.EVENT:
                    event = decode(Event, payload)
                    if event.phase.value == "start":
                        self.traffic.events_by_kind[event.kind.value] += 1
                    self.traffic.recent_events.append(event)
                    if event.snapshot is not None:
                        self.traffic.snapshots.append(event.snapshot.data)
                elif parsed.channel is Channel.TELEMETRY:
                    self.traffic.telemetry[parsed.device_id] = decode(Telemetry, payload)
            except ContractError:
                pass
