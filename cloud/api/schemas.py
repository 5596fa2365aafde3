"""Request and response bodies of the API (the wire models of ``shared/`` are used as they are).

The device views are ``cloud.ops.devices``'s (the ``DeviceService`` takes and returns them).
"""

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from cloud.ops.devices import (
    ConfigOut,
    DeviceDetail,
    DeviceOut,
    DevicePage,
    DeviceUpsert,
    Health,
    MqttCredentials,
    device_health,
)
from cloud.ops.models import IncidentOut
from shared.base import LocalId

__all__ = [
    "ActionBody",
    "AssignBody",
    "ChecklistBody",
    "CommandAccepted",
    "CommandRequest",
    "ConfigAccepted",
    "ConfigOut",
    "DeadLetterOut",
    "DeadLetterPage",
    "DeviceDetail",
    "DeviceOut",
    "DevicePage",
    "DeviceUpsert",
    "DispatchBody",
    "Health",
    "Health200",
    "Hotspot",
    "IncidentDetail",
    "Me",
    "MqttCredentials",
    "NoteBody",
    "Ready",
    "device_health",
]


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid")


class _Out(BaseModel):
    model_config = ConfigDict(frozen=True)


class ConfigAccepted(_Out):
    version: int
    published: bool = Field(description="False if the broker was away; sent on reconnect.")


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
