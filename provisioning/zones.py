"""Zones drawn on a real camera frame, so the technician sees what the rules will watch."""

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from provisioning.errors import InputError
from shared.codec import field_of
from shared.config import CameraConfig, DeviceConfig, LineConfig, Zone, ZoneKind
from shared.events import Location

# BGR colours per zone kind; lines are drawn in yellow.
KIND_COLOURS: dict[ZoneKind, tuple[int, int, int]] = {
    ZoneKind.NO_PARKING: (40, 40, 230),
    ZoneKind.ABANDONED_WATCH: (0, 140, 255),
    ZoneKind.CROWDING: (200, 60, 200),
    ZoneKind.WATCH: (230, 160, 40),
}
LINE_COLOUR = (0, 230, 255)
TEXT_COLOUR = (255, 255, 255)
FILL_ALPHA = 0.28
MIN_PREVIEW_WIDTH = 960


class ZonesFile(BaseModel):
    """``zones.yaml``: the cameras' zones, lines and rule limits.

    A ``DeviceConfig`` without device id and version, which the device and the API fill in.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    timezone: str = "Europe/Lisbon"
    telemetry_interval_s: float = Field(default=30.0, ge=1.0, le=3600.0)
    cameras: list[CameraConfig] = Field(min_length=1, max_length=16)

    def device_config(self, device_id: str, location: Location | None) -> DeviceConfig:
        """The config to push; ``version`` 0 because the API assigns the next one."""
        return DeviceConfig(
            device_id=device_id,
            version=0,
            timezone=self.timezone,
            location=location,
            cameras=self.cameras,
            telemetry_interval_s=self.telemetry_interval_s,
        )

    def camera(self, camera_id: str | None) -> CameraConfig:
        if camera_id is None:
            return self.cameras[0]
        for camera in self.cameras:
            if camera.id == camera_id:
                return camera
        known = ", ".join(c.id for c in self.cameras)
        raise InputError(f"--camera: {camera_id!r} is not in the zones file (it has {known})")


def load_zones(path: Path) -> ZonesFile:
    """Read and validate *path*; errors name the file and the field."""
    try:
        raw: Any = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise InputError(f"{path}: cannot read zones: {exc}") from exc
    if not isinstance(raw, dict):
        raise InputError(f"{path}: the top level must be a mapping with 'cameras'")
    try:
        return ZonesFile.model_validate(raw)
    except ValidationError as exc:
        field, reason = field_of(exc)
        raise InputError(f"{path}: {field}: {reason}") from exc


def read_frame(path: Path) -> np.ndarray[Any, np.dtype[np.uint8]]:
    import cv2

    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if image is None:
        raise InputError(f"--snapshot {path}: not a readable image")
    return np.asarray(image, dtype=np.uint8)


def decode_jpeg(data: bytes) -> np.ndarray[Any, np.dtype[np.uint8]] | None:
    import cv2

    image = cv2.imdecode(np.frombuffer(data, dtype=np.uint8), cv2.IMREAD_COLOR)
    return None if image is None else np.asarray(image, dtype=np.uint8)


@dataclass(frozen=True, slots=True)
class _Scale:
    width: int
    height: int
    unit: float
    """Stroke and font unit: 1.0 on a 600-pixel-high frame."""

    def px(self, point: tuple[float, float]) -> tuple[int, int]:
        return round(point[0] * (self.width - 1)), round(point[1] * (self.height - 1))

    def thick(self, base: float) -> int:
        return max(1, round(base * self.unit))


def _label(
    image: np.ndarray[Any, np.dtype[np.uint8]],
    text: str,
    origin: tuple[int, int],
    colour: tuple[int, int, int],
    scale: _Scale,
) -> None:
    """Text on a solid box in the zone's colour, kept inside the frame."""
    import cv2

    font = cv2.FONT_HERSHEY_SIMPLEX
    size = 0.55 * scale.unit
    stroke = scale.thick(1.4)
    (tw, th), base = cv2.getTextSize(text, font, size, stroke)
    pad = scale.thick(4)
    x = min(max(origin[0], 0), max(scale.width - tw - 2 * pad, 0))
    y = min(max(origin[1], th + 2 * pad), scale.height - base - pad)
    cv2.rectangle(image, (x, y - th - 2 * pad), (x + tw + 2 * pad, y + base), colour, -1)
    cv2.putText(image, text, (x + pad, y - pad), font, size, TEXT_COLOUR, stroke, cv2.LINE_AA)


def _zone_text(zone: Zone) -> str:
    name = zone.name or zone.id
    if zone.kind is ZoneKind.WATCH:
        return f"{name} - watch"
    limit = f"{zone.dwell_limit_s:g}s"
    extra = f" >{zone.max_people} people" if zone.max_people is not None else ""
    return f"{name} - {zone.kind.value} {limit}{extra}"


def _draw_zone(
    image: np.ndarray[Any, np.dtype[np.uint8]],
    overlay: np.ndarray[Any, np.dtype[np.uint8]],
    zone: Zone,
    scale: _Scale,
) -> None:
    import cv2

    colour = KIND_COLOURS[zone.kind]
    points = np.array([scale.px(p) for p in zone.polygon], dtype=np.int32)
    cv2.fillPoly(overlay, [points], colour)
    cv2.polylines(image, [points], isClosed=True, color=colour, thickness=scale.thick(2.5))
    for point in points:
        cv2.circle(image, (int(point[0]), int(point[1])), scale.thick(4), colour, -1)
    top = points[np.argmin(points[:, 1])]
    _label(image, _zone_text(zone), (int(top[0]), int(top[1]) - scale.thick(6)), colour, scale)


def _draw_line(image: np.ndarray[Any, np.dtype[np.uint8]], line: LineConfig, scale: _Scale) -> None:
    import cv2

    a, b = scale.px(line.a), scale.px(line.b)
    cv2.line(image, a, b, LINE_COLOUR, scale.thick(3), cv2.LINE_AA)
    for end, letter in ((a, "A"), (b, "B")):
        cv2.circle(image, end, scale.thick(9), LINE_COLOUR, -1)
        cv2.putText(
            image,
            letter,
            (end[0] - scale.thick(5), end[1] + scale.thick(5)),
            cv2.FONT_HERSHEY_SIMPLEX,
            0.45 * scale.unit,
            (0, 0, 0),
            scale.thick(1.5),
            cv2.LINE_AA,
        )
    if line.direction != "any":
        # Arrow across the middle towards the side that counts: left of a->b for a_to_b.
        mid = ((a[0] + b[0]) / 2, (a[1] + b[1]) / 2)
        dx, dy = b[0] - a[0], b[1] - a[1]
        length = max((dx * dx + dy * dy) ** 0.5, 1.0)
        nx, ny = dy / length, -dx / length
        if line.direction == "b_to_a":
            nx, ny = -nx, -ny
        reach = 40 * scale.unit
        start = (round(mid[0] - nx * reach / 2), round(mid[1] - ny * reach / 2))
        tip = (round(mid[0] + nx * reach), round(mid[1] + ny * reach))
        cv2.arrowedLine(image, start, tip, LINE_COLOUR, scale.thick(3), cv2.LINE_AA, 0, 0.35)
    name = f"{line.name or line.id} - count {line.direction.replace('_', ' ')}"
    top = a if a[1] <= b[1] else b
    _label(image, name, (top[0] - scale.thick(20), top[1] - scale.thick(14)), (0, 150, 170), scale)


def render_preview(
    frame: np.ndarray[Any, np.dtype[np.uint8]], camera: CameraConfig, title: str
) -> np.ndarray[Any, np.dtype[np.uint8]]:
    """*frame* with the camera's zones (translucent, outlined, named) and lines drawn on it.

    Frames narrower than ``MIN_PREVIEW_WIDTH`` are enlarged first.
    """
    import cv2

    if frame.shape[1] < MIN_PREVIEW_WIDTH:
        # Device snapshots are small (480 px); a bigger preview keeps the labels readable.
        factor = MIN_PREVIEW_WIDTH / frame.shape[1]
        frame = np.asarray(
            cv2.resize(frame, None, fx=factor, fy=factor, interpolation=cv2.INTER_CUBIC),
            dtype=np.uint8,
        )
    height, width = frame.shape[:2]
    scale = _Scale(width=width, height=height, unit=max(min(width, height) / 600.0, 0.75))
    image = frame.copy()
    overlay = frame.copy()
    for zone in camera.zones:
        _draw_zone(image, overlay, zone, scale)
    image = np.asarray(
        cv2.addWeighted(overlay, FILL_ALPHA, image, 1.0 - FILL_ALPHA, 0.0), dtype=np.uint8
    )
    # Outlines and labels again on top, so the fill does not wash them out.
    for zone in camera.zones:
        _draw_zone(image, image.copy(), zone, scale)
    for line in camera.lines:
        _draw_line(image, line, scale)
    _label(image, title, (scale.thick(8), scale.height - scale.thick(10)), (40, 40, 40), scale)
    return np.asarray(image, dtype=np.uint8)


def write_png(path: Path, image: np.ndarray[Any, np.dtype[np.uint8]]) -> None:
    import cv2

    path.parent.mkdir(parents=True, exist_ok=True)
    if not cv2.imwrite(str(path), image):
        raise InputError(f"--preview {path}: cannot write the PNG")
