"""What one batch holds on its way from the broker to the store: typed, never tuples."""

import time
from dataclasses import dataclass, field
from datetime import datetime

from cloud.db.ingest import RejectReason
from shared.commands import CommandAck
from shared.events import Event
from shared.telemetry import DeviceStatus, Telemetry


@dataclass(slots=True)
class Received:
    """One MQTT message as it came off the broker (acknowledged only after its batch is stored).

    Not frozen only because frozen dataclasses are slower to build, and one is built per message;
    nothing changes it after it is made.
    """

    topic: str
    payload: bytes
    qos: int
    mid: int
    generation: int
    """Connection number: a packet id is only valid for the connection it arrived on."""
    received_at: datetime


@dataclass(frozen=True, slots=True)
class Rejection:
    """A message refused with a reason; becomes a ``DeadLetter`` row."""

    received: Received
    reason: RejectReason
    field: str | None
    detail: str
    device_id: str | None


@dataclass(frozen=True, slots=True)
class Accepted:
    received: Received
    device_id: str
    message: Event | Telemetry | DeviceStatus | CommandAck


@dataclass(slots=True)
class DeviceUpdate:
    """What one batch teaches about one device (written to the ``devices`` registry)."""

    device_id: str
    last_seen: datetime
    online: bool | None = None
    last_status_at: datetime | None = None
    last_telemetry: Telemetry | None = None
    last_event_at: datetime | None = None
    config_acked_version: int | None = None
    config_ack_message: str | None = None


@dataclass(slots=True)
class Batch:
    """Messages gathered until the batch is full or old enough, then stored together."""

    received: list[Received] = field(default_factory=list)
    events: dict[str, Event] = field(default_factory=dict)
    telemetry: list[Telemetry] = field(default_factory=list)
    sources: dict[int, Received] = field(default_factory=dict)
    """``id(model)`` of each stored item -> its message, to dead-letter what the store refuses."""
    rejections: list[Rejection] = field(default_factory=list)
    devices: dict[str, DeviceUpdate] = field(default_factory=dict)
    in_batch_duplicates: int = 0
    channels: dict[str, int] = field(default_factory=dict)
    started: float = field(default_factory=time.monotonic)

    def __len__(self) -> int:
        return len(self.received)

    def add(self, item: Accepted | Rejection, channel: str) -> None:
        self.received.append(item.received)
        self.channels[channel] = self.channels.get(channel, 0) + 1
        if isinstance(item, Rejection):
            self.rejections.append(item)
            return
        update = self._device(item)
        msg = item.message
        if isinstance(msg, Event):
            if msg.id in self.events:
                self.in_batch_duplicates += 1
            else:
                self.events[msg.id] = msg
                self.sources[id(msg)] = item.received
            if update.last_event_at is None or msg.observed_at > update.last_event_at:
                update.last_event_at = msg.observed_at
        elif isinstance(msg, Telemetry):
            self.telemetry.append(msg)
            self.sources[id(msg)] = item.received
            if update.last_telemetry is None or msg.ts >= update.last_telemetry.ts:
                update.last_telemetry = msg
        elif isinstance(msg, DeviceStatus):
            # Arrival order wins: the retained message a (re)subscribe brings is the latest one.
            update.online = msg.state.value == "online"
            update.last_status_at = msg.ts or item.received.received_at
        elif msg.name.value == "config" and msg.config_version is not None:
            if msg.ok:
                update.config_acked_version = msg.config_version
            update.config_ack_message = msg.message or ("applied" if msg.ok else "refused")

    def _device(self, item: Accepted) -> DeviceUpdate:
        at = item.received.received_at
        update = self.devices.get(item.device_id)
        if update is None:
            update = self.devices[item.device_id] = DeviceUpdate(item.device_id, last_seen=at)
        elif at > update.last_seen:
            update.last_seen = at
        return update
