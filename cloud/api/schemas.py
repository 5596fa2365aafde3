"""Request and response bodies of the API (the wire models of ``shared/`` are used as they are)."""

from datetime import datetime, timedelta
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from cloud.db.devices import Device
from cloud.ops.models import IncidentOut
from shared.base import LocalId
from shared.config import DeviceConfig
from shared.telemetry import CameraState, Telemetry

Health = Literal["ok", "camera_down", "silent", "offline", "never_seen"]


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid")


class _Out(BaseModel):
    model_config = ConfigDict(frozen=True)


class DeviceUpsert(_In):
    site: Annotated[str, StringConstraints(max_length=128)] = Field(examples=["Praça do Comércio"])
    lat: float = Field(ge=-90, le=90, examples=[38.7075])
    lon: float = Field(ge=-180, le=180, examples=[-9.1365])
    device_type: Annotated[str, StringConstraints(min_length=1, max_length=64)] = Field(
        examples=["raspberrypi5"]
    )
    fleet: Annotated[str, StringConstraints(max_length=128)] | None = None
    department: Annotated[str, StringConstraints(pattern=r"^[a-z0-9][a-z0-9_-]{0,63}$")] | None = (
        None
    )
    note: Annotated[str, StringConstraints(max_length=2000)] = ""
    balena_uuid: Annotated[str, StringConstraints(max_length=64)] | None = None


class DeviceOut(_Out):
    id: str
    site: str
    device_type: str
    fleet: str | None
    department: str | None
    lat: float | None
    lon: float | None
    note: str
    balena_uuid: str | None
    revoked: bool
    online: bool
    last_seen: datetime | None
    last_telemetry_at: datetime | None
    last_event_at: datetime | None
    health: Health
    blind_spot: bool = Field(description="True when the device cannot see: camera down, silent.")
    config_version: int
    config_acked_version: int | None
    created_at: datetime
    updated_at: datetime

    @classmethod
    def of(cls, row: Device, now: datetime, silent_after_s: float) -> "DeviceOut":
        health = device_health(row, now, silent_after_s)
        return cls(
            id=row.id,
            site=row.site,
            device_type=row.device_type,
            fleet=row.fleet,
            department=row.department,
            lat=row.lat,
            lon=row.lon,
            note=row.note,
            balena_uuid=row.balena_uuid,
            revoked=row.revoked,
            online=row.online,
            last_seen=row.last_seen,
            last_telemetry_at=row.last_telemetry_at,
            last_event_at=row.last_event_at,
            health=health,
            blind_spot=health in {"camera_down", "silent", "offline"} and not row.revoked,
            config_version=row.config_version,
            config_acked_version=row.config_acked_version,
            created_at=row.created_at,
            updated_at=row.updated_at,
        )


def device_health(row: Device, now: datetime, silent_after_s: float) -> Health:
    if row.last_seen is None:
        return "never_seen"
    if not row.online:
        return "offline"
    if now - row.last_seen > timedelta(seconds=silent_after_s):
        return "silent"
    telemetry = row.last_telemetry or {}
    cameras = telemetry.get("cameras") or []
    if any(c.get("state") == CameraState.DOWN.value for c in cameras if isinstance(c, dict)):
        return "camera_down"
    return "ok"


class DeviceDetail(DeviceOut):
    telemetry: list[Telemetry] = Field(description="Most recent first.")
    config: DeviceConfig | None


class DevicePage(_Out):
    items: list[DeviceOut]
    next_cursor: str | None = None


class MqttCredentials(_Out):
    username: str
    password: str = Field(description="Shown only in this response; store it on the device.")
    host: str
    port: int
    tls_port: int | None


class ConfigAccepted(_Out):
    version: int
    published: bool = Field(description="False if the broker was away; sent on reconnect.")


class ConfigOut(_Out):
    config: DeviceConfig | None
    version: int
    acked_version: int | None
    ack_message: str


class CommandRequest(_In):
    name: Literal["snapshot", "debug_snapshot", "reload"]
    camera_id: LocalId | None = None
    args: dict[
        Annotated[str, StringConstraints(max_length=64)],
        str | int | float | bool,
    ] = Field(default_factory=dict, max_length=16)


class CommandAccepted(_Out):
    command_id: str


class IncidentDetail(IncidentOut):
    event_ids: list[str]


class ActionBody(_In):
    note: Annotated[str, StringConstraints(max_length=2000)] | None = Field(
        default=None, examples=["Patrol 12 on the way"]
    )


class DispatchBody(ActionBody):
    assignee: Annotated[str, StringConstraints(min_length=1, max_length=128)] | None = Field(
        default=None, examples=["patrol-12"]
    )


class NoteBody(_In):
    text: Annotated[str, StringConstraints(min_length=1, max_length=2000)]


class AssignBody(_In):
    assignee: Annotated[str, StringConstraints(min_length=1, max_length=128)] | None


class ChecklistBody(_In):
    done: bool


class DeadLetterOut(_Out):
    id: int
    received_at: datetime
    topic: str
    device_id: str | None
    reason: str
    field: str | None
    detail: str
    payload: str


class DeadLetterPage(_Out):
    items: list[DeadLetterOut]
    next_cursor: str | None = None


class Hotspot(_Out):
    device_id: str
    count: int
    site: str
    lat: float | None
    lon: float | None


class Me(_Out):
    key_id: str
    name: str
    role: str
    departments: list[str]
    permissions: list[str]


class Health200(_Out):
    status: Literal["ok"] = "ok"


class Ready(_Out):
    status: Literal["ready", "not_ready"]
    checks: dict[str, Any]
