"""``DeviceConfig``: what the cloud tells a device to watch (zones, lines, rule limits).

Published retained on ``cityops/v1/{device_id}/config``; the device validates it, applies it between
frames and acknowledges ``config_version`` on ``.../cmd/ack``.
"""

from datetime import time
from enum import StrEnum
from typing import Annotated, Literal, Self

from pydantic import Field, StrictBool, StringConstraints, field_validator, model_validator

from shared.base import DeviceId, LocalId, ShortText, Unit, UtcDatetime, WireModel
from shared.events import Location, Severity
from shared.limits import MAX_POLYGON_POINTS, MAX_ZONES

Point = tuple[Unit, Unit]
"""(x, y) in normalised image coordinates, origin top-left."""
Label = Annotated[str, StringConstraints(min_length=1, max_length=64)]

VEHICLE_LABELS: tuple[str, ...] = ("car", "truck", "bus", "motorcycle")
PERSON_LABELS: tuple[str, ...] = ("person",)


MIN_ZONE_AREA = 1e-6
"""Smallest zone, as a fraction of the image (about 2×2 px at 1080p)."""


def polygon_area(polygon: list[Point]) -> float:
    """Signed area (shoelace) in normalised units."""
    n = len(polygon)
    return 0.5 * sum(
        polygon[i][0] * polygon[(i + 1) % n][1] - polygon[(i + 1) % n][0] * polygon[i][1]
        for i in range(n)
    )


def _orient(p: Point, q: Point, r: Point) -> float:
    return (q[0] - p[0]) * (r[1] - p[1]) - (q[1] - p[1]) * (r[0] - p[0])


def _on_segment(p: Point, q: Point, r: Point) -> bool:
    """*r* (collinear with p-q) lies within the segment's bounding box."""
    return min(p[0], q[0]) <= r[0] <= max(p[0], q[0]) and min(p[1], q[1]) <= r[1] <= max(p[1], q[1])


def _segments_meet(a: Point, b: Point, c: Point, d: Point) -> bool:
    o1, o2, o3, o4 = _orient(a, b, c), _orient(a, b, d), _orient(c, d, a), _orient(c, d, b)
    if ((o1 > 0 > o2) or (o1 < 0 < o2)) and ((o3 > 0 > o4) or (o3 < 0 < o4)):
        return True
    return (
        (o1 == 0 and _on_segment(a, b, c))
        or (o2 == 0 and _on_segment(a, b, d))
        or (o3 == 0 and _on_segment(c, d, a))
        or (o4 == 0 and _on_segment(c, d, b))
    )


def self_intersection(polygon: list[Point]) -> tuple[int, int] | None:
    """The first pair of non-adjacent edges (by start index) that touch or cross, if any."""
    n = len(polygon)
    for i in range(n):
        for j in range(i + 1, n):
            if j == i + 1 or (i == 0 and j == n - 1):
                continue  # neighbours share a corner
            a, b = polygon[i], polygon[(i + 1) % n]
            c, d = polygon[j], polygon[(j + 1) % n]
            if _segments_meet(a, b, c, d):
                return i, j
    return None


class ZoneKind(StrEnum):
    NO_PARKING = "no_parking"
    """illegal_parking: a vehicle stationary here longer than the limit."""
    ABANDONED_WATCH = "abandoned_watch"
    """abandoned_object: a new static object with nobody near it longer than the limit."""
    CROWDING = "crowding"
    """crowding: more people than ``max_people`` for longer than the limit."""
    WATCH = "watch"
    """Detections are tracked here but raise no event (e.g. an aisle where cars only pass)."""


class ScheduleWindow(WireModel):
    """A time window (local time of the device's ``timezone``) with its own dwell limit.

    ``limit_s = None`` means the rule is off in that window (e.g. loading allowed 07:00-10:00).
    A window whose ``end`` is before its ``start`` runs past midnight.
    """

    days: list[Annotated[int, Field(ge=0, le=6)]] = Field(
        default_factory=lambda: [0, 1, 2, 3, 4, 5, 6],
        min_length=1,
        max_length=7,
        description="Weekdays, 0 = Monday.",
    )
    start: time
    end: time
    limit_s: float | None = Field(default=None, ge=0.0, le=7 * 86400)


class Zone(WireModel):
    id: LocalId
    name: ShortText = ""
    kind: ZoneKind
    polygon: list[Point] = Field(min_length=3, max_length=MAX_POLYGON_POINTS)
    dwell_limit_s: float = Field(
        default=60.0, ge=0.0, le=7 * 86400, description="Seconds before the rule fires."
    )
    schedule: list[ScheduleWindow] = Field(default_factory=list, max_length=16)
    labels: list[Label] | None = Field(
        default=None, description="Object labels the rule considers; default depends on kind."
    )
    max_people: int | None = Field(default=None, ge=1, le=10_000)
    severity: Severity | None = None

    @field_validator("polygon")
    @classmethod
    def _simple_polygon(cls, polygon: list[Point]) -> list[Point]:
        crossing = self_intersection(polygon)
        if crossing is not None:
            i, j = crossing
            raise ValueError(
                f"self-intersecting: edge {i}-{i + 1} crosses edge {j}-{(j + 1) % len(polygon)} "
                "(a bow-tie); list the corners in order around the zone"
            )
        if abs(polygon_area(polygon)) < MIN_ZONE_AREA:
            raise ValueError("zero area: the points lie on one line or on top of each other")
        return polygon

    @model_validator(mode="after")
    def _crowding_needs_max(self) -> Self:
        if self.kind is ZoneKind.CROWDING and self.max_people is None:
            raise ValueError("max_people: a crowding zone needs max_people")
        return self


class LineConfig(WireModel):
    """A counting line from ``a`` to ``b``; ``a_to_b`` is crossing to the line's left side."""

    id: LocalId
    name: ShortText = ""
    a: Point
    b: Point
    labels: list[Label] = Field(default_factory=lambda: ["person", *VEHICLE_LABELS])
    direction: Literal["any", "a_to_b", "b_to_a"] = "any"

    @model_validator(mode="after")
    def _not_a_point(self) -> Self:
        if self.a == self.b:
            raise ValueError("b: a line needs two distinct points")
        return self


class RuleParams(WireModel):
    min_score: float = Field(default=0.4, ge=0.0, le=1.0)
    vehicle_labels: list[Label] = Field(default_factory=lambda: list(VEHICLE_LABELS))
    person_labels: list[Label] = Field(default_factory=lambda: list(PERSON_LABELS))
    stationary_max_speed: float = Field(
        default=0.02,
        ge=0.0,
        le=1.0,
        description="Normalised box-centre speed per second below which a track is stationary.",
    )
    owner_radius: float = Field(
        default=0.15,
        ge=0.0,
        le=2.0,
        description="Normalised distance within which a person 'owns'.",
    )
    end_grace_s: float = Field(
        default=3.0, ge=0.0, le=600.0, description="Hysteresis: how long a gone object is kept."
    )
    owner_grace_s: float = Field(
        default=3.0,
        ge=0.0,
        le=600.0,
        description="A person within owner_radius this recently still attends an object "
        "(detector flicker); a left object's clock starts only after this long with nobody near.",
    )
    duplicate_overlap: float = Field(
        default=0.5,
        gt=0.0,
        le=1.0,
        description="A stationary thing whose box covers more than this fraction of the smaller "
        "box of an episode in the same zone joins it: one vehicle, one violation.",
    )
    update_interval_s: float = Field(default=30.0, ge=1.0, le=86400.0)
    snapshot: bool = True


class CameraConfig(WireModel):
    id: LocalId
    name: ShortText = ""
    zones: list[Zone] = Field(default_factory=list, max_length=MAX_ZONES)
    lines: list[LineConfig] = Field(default_factory=list, max_length=MAX_ZONES)
    rules: RuleParams = Field(default_factory=RuleParams)

    @field_validator("zones")
    @classmethod
    def _unique_zone_ids(cls, zones: list[Zone]) -> list[Zone]:
        ids = [z.id for z in zones]
        if len(ids) != len(set(ids)):
            raise ValueError("zone ids must be unique within a camera")
        return zones


ReadingName = Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_]{0,47}$")]


class SensorThreshold(WireModel):
    """A ``sensor_threshold`` rule: start past ``level``, end past ``clear`` (hysteresis)."""

    id: LocalId = Field(description="Rule id; the events carry it as zone_id.")
    reading: ReadingName = Field(description="Telemetry reading name, e.g. pm25_ugm3.")
    direction: Literal["above", "below"] = Field(
        default="above", description="'above': values >= level start an event."
    )
    level: float = Field(description="Value that starts an event.")
    clear: float = Field(description="Value that ends it; on the safe side of level.")
    severity: Severity = Severity.MEDIUM

    @model_validator(mode="after")
    def _hysteresis(self) -> Self:
        if (self.direction == "above" and self.clear > self.level) or (
            self.direction == "below" and self.clear < self.level
        ):
            raise ValueError("clear: must lie on the safe side of level (hysteresis)")
        return self


class SensorSettings(WireModel):
    """Thresholds and power settings of a battery sensor node (``DeviceConfig.sensors``)."""

    thresholds: list[SensorThreshold] = Field(
        default_factory=list, max_length=16, description="Threshold rules, one event per crossing."
    )
    deep_sleep: StrictBool = Field(
        default=False, description="Deep-sleep between readings (battery nodes; >= 60 s intervals)."
    )

    @model_validator(mode="after")
    def _unique_ids(self) -> Self:
        ids = [t.id for t in self.thresholds]
        if len(ids) != len(set(ids)):
            raise ValueError("thresholds: rule ids must be unique")
        return self


class DeviceConfig(WireModel):
    v: Literal[1] = 1
    device_id: DeviceId
    version: int = Field(
        ge=0, description="Increases with every change; acknowledged by the device."
    )
    issued_at: UtcDatetime | None = None
    timezone: Annotated[str, StringConstraints(max_length=64)] = "Europe/Lisbon"
    location: Location | None = None
    cameras: list[CameraConfig] = Field(default_factory=list, max_length=16)
    telemetry_interval_s: float = Field(default=30.0, ge=1.0, le=3600.0)
    sensors: SensorSettings | None = Field(
        default=None, description="Sensor-node thresholds and sleep; None on camera units."
    )

    @field_validator("cameras")
    @classmethod
    def _unique_camera_ids(cls, cameras: list[CameraConfig]) -> list[CameraConfig]:
        ids = [c.id for c in cameras]
        if len(ids) != len(set(ids)):
            raise ValueError("camera ids must be unique")
        return cameras

    @field_validator("timezone")
    @classmethod
    def _known_timezone(cls, value: str) -> str:
        from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"unknown time zone {value!r}") from exc
        return value
