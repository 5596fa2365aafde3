"""The ``Event`` a device publishes when a city rule fires, and its parts."""

import time
from datetime import UTC, datetime
from enum import StrEnum
from typing import Annotated, Final, Literal, Self

from pydantic import Field, StringConstraints, ValidationInfo, field_validator, model_validator
from pydantic_core import core_schema

from shared.base import AwareDatetime, DeviceId, LocalId, NativeCheck, ShortText, Unit, WireModel
from shared.ids import UUID7_PATTERN
from shared.limits import MAX_ATTRIBUTES, MAX_FUTURE_SKEW_S, MAX_OBJECTS, MAX_SNAPSHOT_BYTES


class EventKind(StrEnum):
    """What happened. New kinds are added here; consumers must tolerate kinds they do not route."""

    ILLEGAL_PARKING = "illegal_parking"
    ABANDONED_OBJECT = "abandoned_object"
    LINE_CROSSING = "line_crossing"
    CROWDING = "crowding"
    SENSOR_THRESHOLD = "sensor_threshold"
    CAMERA_TAMPER = "camera_tamper"
    EXTERNAL = "external"
    """A record from another city system, mapped in by a connector."""


class Phase(StrEnum):
    START = "start"
    UPDATE = "update"
    END = "end"


class Severity(StrEnum):
    INFO = "info"
    LOW = "low"
    MEDIUM = "medium"
    HIGH = "high"
    CRITICAL = "critical"

    @property
    def rank(self) -> int:
        return _SEVERITY_RANK[self]


_SEVERITY_RANK = {s: i for i, s in enumerate(Severity)}


class Box(WireModel):
    """Axis-aligned box in normalised image coordinates (0..1, origin top-left)."""

    x1: Unit
    y1: Unit
    x2: Unit
    y2: Unit

    @model_validator(mode="after")
    def _ordered(self) -> Self:
        if self.x2 < self.x1:
            raise ValueError("x2 must be >= x1")
        if self.y2 < self.y1:
            raise ValueError("y2 must be >= y1")
        return self

    @property
    def center(self) -> tuple[float, float]:
        return ((self.x1 + self.x2) / 2, (self.y1 + self.y2) / 2)

    @property
    def bottom_center(self) -> tuple[float, float]:
        return ((self.x1 + self.x2) / 2, self.y2)


class DetectedObject(WireModel):
    label: Annotated[str, StringConstraints(min_length=1, max_length=64)]
    score: Unit
    box: Box
    track_id: int | None = Field(default=None, ge=0)


class Location(WireModel):
    lat: float = Field(ge=-90.0, le=90.0)
    lon: float = Field(ge=-180.0, le=180.0)


class ModelInfo(WireModel):
    name: Annotated[str, StringConstraints(min_length=1, max_length=128)]
    version: Annotated[str, StringConstraints(min_length=1, max_length=64)]


class Snapshot(WireModel):
    """A JPEG crop, faces blurred on the device before it is attached."""

    content_type: Literal["image/jpeg"] = "image/jpeg"
    data: bytes = Field(max_length=MAX_SNAPSHOT_BYTES)
    width: int = Field(ge=1, le=8192)
    height: int = Field(ge=1, le=8192)

    @field_validator("data")
    @classmethod
    def _is_jpeg(cls, value: bytes) -> bytes:
        if not value.startswith(b"\xff\xd8"):
            raise ValueError("snapshot must be a JPEG (starts with FF D8)")
        return value


AttributeValue = str | int | Annotated[float, Field(allow_inf_nan=False)] | bool
"""Attribute values; floats must be finite (JSON has no NaN/Infinity, stores would write null)."""
_MAX_ATTRIBUTE_TEXT: Final = 256
EventId = Annotated[
    str,
    NativeCheck(
        # ``shared.ids.is_uuid7`` in pydantic-core (both refuse a trailing newline).
        core_schema.str_schema(pattern=UUID7_PATTERN),
        "id must be a lower-case UUIDv7 string",
    ),
    Field(description="UUIDv7 (time-ordered); the idempotency key."),
]


def _future_message(field: str, skew: float) -> str:
    return (
        f"{field} is {skew:.0f} s in the future "
        f"(limit {MAX_FUTURE_SKEW_S:.0f} s): check the device clock"
    )


def _utc_checked(value: datetime, field: str) -> datetime:
    """*value* (aware) in UTC; ``ValueError`` when it is too far in the future.

    Converted first: arithmetic on ``datetime.UTC`` is cheaper than on pydantic's own tzinfo.
    ``time.time()`` instead of ``utcnow()``: the same clock, without building a datetime.
    """
    try:
        value = value.astimezone(UTC)
    except OverflowError as exc:  # e.g. 0001-01-01T00:00:00+05:00 is before year 1 in UTC
        raise ValueError("timestamp is out of range once converted to UTC") from exc
    skew = value.timestamp() - time.time()
    if skew > MAX_FUTURE_SKEW_S:
        raise ValueError(_future_message(field, skew))
    return value


class Event(WireModel):
    """A city event detected by a device. Published on ``cityops/v1/{device_id}/event``."""

    v: Literal[1] = 1
    id: EventId
    device_id: DeviceId
    camera_id: LocalId | None = None
    kind: EventKind
    phase: Phase = Phase.START
    severity: Severity = Severity.MEDIUM
    started_at: AwareDatetime
    observed_at: AwareDatetime
    ended_at: AwareDatetime | None = None
    zone_id: LocalId | None = None
    location: Location | None = None
    objects: list[DetectedObject] = Field(default_factory=list, max_length=MAX_OBJECTS)
    dwell_s: float = Field(default=0.0, ge=0.0, le=10 * 365 * 86400)
    snapshot: Snapshot | None = None
    model: ModelInfo | None = None
    summary: ShortText = ""
    attributes: dict[
        Annotated[str, StringConstraints(min_length=1, max_length=64)], AttributeValue
    ] = Field(default_factory=dict, max_length=MAX_ATTRIBUTES)

    # Each timestamp gets ONE Python call (UTC, not in the future, order): the checks stay at
    # their field, so with several bad fields the first error is the same as field by field.
    @field_validator("started_at")
    @classmethod
    def _started(cls, value: datetime) -> datetime:
        return _utc_checked(value, "started_at")

    @field_validator("observed_at")
    @classmethod
    def _observed(cls, value: datetime, info: ValidationInfo) -> datetime:
        value = _utc_checked(value, "observed_at")
        started = info.data.get("started_at")
        if started is not None and started > value:
            raise ValueError("observed_at must not be before started_at")
        return value

    @field_validator("ended_at")
    @classmethod
    def _ended(cls, value: datetime | None, info: ValidationInfo) -> datetime | None:
        if value is None:
            return None
        value = _utc_checked(value, "ended_at")
        started = info.data.get("started_at")
        if started is not None and value < started:
            raise ValueError("ended_at must not be before started_at")
        return value

    @field_validator("attributes")
    @classmethod
    def _short_values(cls, value: dict[str, AttributeValue]) -> dict[str, AttributeValue]:
        for key, item in value.items():
            if isinstance(item, str) and len(item) > _MAX_ATTRIBUTE_TEXT:
                raise ValueError(f"attribute {key!r} is longer than 256 characters")
        return value

    @model_validator(mode="after")
    def _end_has_time(self) -> Self:
        if self.phase is Phase.END and self.ended_at is None:
            # Model-level errors carry no location; the "field: reason" prefix lets
            # shared.codec name the field anyway.
            raise ValueError("ended_at: an 'end' event needs ended_at")
        return self
