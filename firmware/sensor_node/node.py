"""The sensor node's duty cycle: read, judge thresholds, publish or buffer, drain, sleep.

Runs the same on the ESP32 (``device/main.py``) and on a host (``host/``) against a real broker.
"""

import json

from firmware.sensor_node import messages
from firmware.sensor_node.config import ConfigError, NodeConfig, parse_config
from firmware.sensor_node.ringbuf import RecordTooLargeError, RingBuffer
from firmware.sensor_node.thresholds import ThresholdEngine
from firmware.sensor_node.uuid7 import Uuid7Generator

TYPE_CHECKING = False
if TYPE_CHECKING:
    from firmware.sensor_node.hal import Board, Clock, MqttClient, Random

TELEMETRY = 1
EVENT = 2
ACK = 3
CHANNELS = {TELEMETRY: messages.TELEMETRY, EVENT: messages.EVENT, ACK: messages.CMD_ACK}
QOS = 1
STATE_VERSION = 1


class CycleReport:
    """What one duty cycle did (for logs and tests)."""

    def __init__(
        self, *, readings: int, events: int, sent: int, buffered: int, connected: bool
    ) -> None:
        self.readings = readings
        self.events = events
        self.sent = sent
        self.buffered = buffered
        self.connected = connected


class SensorNode:
    def __init__(
        self,
        config: NodeConfig,
        *,
        board: "Board",
        mqtt: "MqttClient",
        clock: "Clock",
        rng: "Random",
        buffer: RingBuffer,
    ) -> None:
        self.config = config
        self.board = board
        self.mqtt = mqtt
        self.clock = clock
        self.buffer = buffer
        self.ids = Uuid7Generator(rng)
        self.engine = ThresholdEngine()
        self.connected = False
        self.sent = 0
        self.config_errors = 0
        self._dropped_base = {TELEMETRY: 0, EVENT: 0, ACK: 0}
        self._restore()

    # ---------------------------------------------------------------- state across deep sleep

    def _restore(self) -> None:
        raw = self.board.load_state()
        if not raw:
            return
        try:
            state = json.loads(raw)
            if state.get("v") != STATE_VERSION:
                return
            self.ids.last_ms, self.ids.seq = state["ids"]
            self.engine = ThresholdEngine.from_json(state["episodes"])
            for key, count in state["dropped"].items():
                self._dropped_base[int(key)] = count
            if state.get("config"):
                self.config = parse_config(state["config"].encode(), self.config)
        except (ValueError, KeyError, TypeError):
            # A state from another firmware or a corrupted RTC memory: start clean.
            self.engine = ThresholdEngine()

    def _config_json(self) -> str:
        if self.config.version < 0:
            return ""
        data: dict[str, object] = {
            "v": 1,
            "device_id": self.config.device_id,
            "version": self.config.version,
            "telemetry_interval_s": self.config.interval_s,
            "sensors": {
                "thresholds": [rule.to_json() for rule in self.config.thresholds],
                "deep_sleep": self.config.deep_sleep,
            },
        }
        if self.config.location is not None:
            data["location"] = {"lat": self.config.location[0], "lon": self.config.location[1]}
        return json.dumps(data)

    def save_state(self) -> None:
        state = {
            "v": STATE_VERSION,
            "ids": [self.ids.last_ms, self.ids.seq],
            "episodes": self.engine.to_json(),
            "dropped": {str(k): self.dropped(k) for k in self._dropped_base},
            "config": self._config_json(),
        }
        self.board.save_state(json.dumps(state).encode())

    def dropped(self, channel: int) -> int:
        return self._dropped_base.get(channel, 0) + self.buffer.dropped.get(channel, 0)

    # ---------------------------------------------------------------------------- MQTT

    def _topic(self, channel: str) -> bytes:
        return messages.topic(self.config.device_id, channel).encode()

    def connect(self) -> bool:
        """Connect with a retained ``offline`` Last Will, read the retained config, say online."""
        now = self.clock.now_ms()
        status_topic = self._topic(messages.STATUS)
        try:
            self.mqtt.set_callback(self._on_message)
            offline = messages.status(
                self.config.device_id, online=False, now_ms=now, config_version=self.config.version
            )
            self.mqtt.set_last_will(status_topic, offline, True, QOS)  # noqa: FBT003
            self.mqtt.connect(True)  # noqa: FBT003
            self.mqtt.subscribe(self._topic(messages.CONFIG), QOS)
            online = messages.status(
                self.config.device_id, online=True, now_ms=now, config_version=self.config.version
            )
            self.mqtt.publish(status_topic, online, True, QOS)  # noqa: FBT003
        except OSError:
            self._lost()
            return False
        self.connected = True
        return True

    def _lost(self) -> None:
        self.connected = False
        try:  # noqa: SIM105 - MicroPython has no contextlib
            self.mqtt.disconnect()
        except OSError:
            pass

    def _on_message(self, topic: bytes, msg: bytes) -> None:
        if topic != self._topic(messages.CONFIG) or not msg:
            return
        now = self.clock.now_ms()
        try:
            new = parse_config(msg, self.config)
        except ConfigError as exc:
            self.config_errors += 1
            ack = messages.config_ack(
                self.config.device_id, now_ms=now, version=-1, ok=False, message=str(exc)
            )
            self._send(ACK, ack)
            return
        if new.version == self.config.version:
            return  # the retained copy of what is already applied (after each reconnect)
        self.config = new
        ack = messages.config_ack(
            self.config.device_id, now_ms=now, version=new.version, ok=True, message="applied"
        )
        self._send(ACK, ack)

    def poll(self) -> None:
        """Handle what the broker sent (config); drops the connection on a network error."""
        if not self.connected:
            return
        try:
            self.mqtt.check_msg()
        except OSError:
            self._lost()

    # ------------------------------------------------------------------------- sending

    def _send(self, channel: int, payload: bytes) -> None:
        if self.connected and len(self.buffer) == 0:
            try:
                self.mqtt.publish(self._topic(CHANNELS[channel]), payload, False, QOS)  # noqa: FBT003
            except OSError:
                self._lost()
            else:
                self.sent += 1
                return
        try:
            self.buffer.push(channel, payload)
        except RecordTooLargeError:
            self._dropped_base[channel] = self._dropped_base.get(channel, 0) + 1

    def drain(self) -> int:
        """Send buffered messages oldest first, each acknowledged before it leaves the flash."""
        count = 0
        while self.connected:
            record = self.buffer.peek()
            if record is None:
                break
            topic = self._topic(CHANNELS.get(record.channel, messages.TELEMETRY))
            try:
                self.mqtt.publish(topic, record.payload, False, QOS)  # noqa: FBT003
            except OSError:
                self._lost()
                break
            self.buffer.pop(record.seq)
            self.sent += 1
            count += 1
        return count

    # --------------------------------------------------------------------------- cycle

    def cycle(self) -> CycleReport:
        """One duty cycle; the caller sleeps ``sleep_ms()`` afterwards."""
        sent_before = self.sent
        if not self.connected:
            self.connect()
        self.poll()
        now = self.clock.now_ms()
        readings = self.board.read_sensors()
        crossings = self.engine.evaluate(self.config.thresholds, readings, now, self.ids.new)
        for crossing in crossings:
            self._send(
                EVENT, messages.threshold_event(self.config.device_id, crossing, self.config)
            )
        telemetry = messages.telemetry(
            self.config.device_id,
            now_ms=now,
            uptime_ms=self.clock.uptime_ms(),
            readings=readings,
            battery_pct=self.board.battery_pct(),
            outbox_depth=len(self.buffer),
            dropped_telemetry=self.dropped(TELEMETRY) + self.dropped(ACK),
            dropped_events=self.dropped(EVENT),
        )
        self._send(TELEMETRY, telemetry)
        self.drain()
        self.save_state()
        return CycleReport(
            readings=len(readings),
            events=len(crossings),
            sent=self.sent - sent_before,
            buffered=len(self.buffer),
            connected=self.connected,
        )

    def sleep_ms(self, cycle_started_ms: int) -> int:
        """How long to sleep so readings stay ``interval_s`` apart."""
        interval = int(self.config.interval_s * 1000)
        elapsed = self.clock.now_ms() - cycle_started_ms
        return max(interval - elapsed, 0)
