"""Device health: periodic ``Telemetry`` and retained presence ``DeviceStatus``."""

from enum import StrEnum
from typing import Annotated, Literal

from pydantic import Field, StringConstraints

from shared.base import DeviceId, LocalId, ShortText, UtcDatetime, WireModel
from shared.limits import CONTRACT_VERSION


class CameraState(StrEnum):
    OK = "ok"
    DOWN = "down"
    """No frame for longer than the configured stall time."""
    UNKNOWN = "unknown"


class CameraHealth(WireModel):
    camera_id: LocalId
    state: CameraState
    fps: float = Field(default=0.0, ge=0.0, le=1000.0)
    last_frame_age_s: float | None = Field(default=None, ge=0.0)


ReadingName = Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_]{0,47}$")]


class Telemetry(WireModel):
    """Published every N seconds on ``cityops/v1/{device_id}/telemetry``.

    Camera units fill the pipeline fields; sensor nodes fill ``readings`` (e.g. ``pm25_ugm3``,
    ``noise_dba``, ``temperature_c``, ``humidity_pct``, ``bay_occupied``) and ``battery_pct``.
    """

    v: Literal[1] = 1
    device_id: DeviceId
    ts: UtcDatetime
    uptime_s: float = Field(default=0.0, ge=0.0)
    fps: float | None = Field(default=None, ge=0.0, le=1000.0)
    inference_ms: float | None = Field(default=None, ge=0.0, le=60_000.0)
    cpu_percent: float | None = Field(default=None, ge=0.0, le=100.0 * 256)
    memory_percent: float | None = Field(default=None, ge=0.0, le=100.0)
    temperature_c: float | None = Field(default=None, ge=-60.0, le=150.0)
    outbox_depth: int = Field(default=0, ge=0)
    dropped_events: int = Field(default=0, ge=0)
    dropped_telemetry: int = Field(default=0, ge=0)
    dead_letters: int = Field(
        default=0, ge=0, description="Messages the broker can never take, kept aside on the device."
    )
    cameras: list[CameraHealth] = Field(default_factory=list, max_length=16)
    readings: dict[ReadingName, float] = Field(default_factory=dict, max_length=32)
    battery_pct: float | None = Field(default=None, ge=0.0, le=100.0)
    firmware: ShortText | None = None


class DeviceState(StrEnum):
    ONLINE = "online"
    OFFLINE = "offline"


class DeviceStatus(WireModel):
    """Retained presence on ``cityops/v1/{device_id}/status``; the Last Will says ``offline``."""

    v: Literal[1] = 1
    device_id: DeviceId
    state: DeviceState
    ts: UtcDatetime | None = Field(
        default=None, description="When the state was set; the Last Will carries connect time."
    )
    software: ShortText | None = None
    config_version: int | None = Field(default=None, ge=0)
    contract: int = Field(
        default=1,
        ge=1,
        le=CONTRACT_VERSION,
        description="Delivery contract (shared.limits.CONTRACT_VERSION): 2 waits for EventAck.",
    )
