"""Commands sent to a device on ``.../cmd`` and its acknowledgements on ``.../cmd/ack``."""

from enum import StrEnum
from typing import Annotated, Literal

from pydantic import Field, StringConstraints

from shared.base import DeviceId, LocalId, ShortText, UtcDatetime, WireModel
from shared.events import Snapshot


class CommandName(StrEnum):
    SNAPSHOT = "snapshot"
    """Send a fresh camera frame (for calibration and ``provision verify``)."""
    DEBUG_SNAPSHOT = "debug_snapshot"
    """Send the debug view of the current frame: boxes, track ids, zones, lines, dwell, motion
    (faces pixelated like every snapshot), for tuning zones and thresholds."""
    RELOAD = "reload"
    """Re-read the configuration and restart the pipeline stages."""
    CONFIG = "config"
    """Used only in acknowledgements: the device applied (or refused) a ``DeviceConfig``."""


class Command(WireModel):
    v: Literal[1] = 1
    id: Annotated[str, StringConstraints(min_length=1, max_length=64)]
    device_id: DeviceId
    name: CommandName
    issued_at: UtcDatetime
    camera_id: LocalId | None = None
    args: dict[Annotated[str, StringConstraints(max_length=64)], str | int | float | bool] = Field(
        default_factory=dict, max_length=16
    )


class CommandAck(WireModel):
    """Answer to a ``Command`` (by ``command_id``) or a config (``name=config``)."""

    v: Literal[1] = 1
    device_id: DeviceId
    name: CommandName
    command_id: Annotated[str, StringConstraints(max_length=64)] | None = None
    ok: bool
    ts: UtcDatetime
    message: ShortText = ""
    config_version: int | None = Field(default=None, ge=0)
    snapshot: Snapshot | None = None
