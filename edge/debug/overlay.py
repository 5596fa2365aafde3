"""Draw the pipeline's view of one frame: zones, lines, boxes, track ids, dwell, motion mask.

The pipeline hands a ``FrameView`` to its observer after every frame (``Pipeline.observer``);
``Annotator`` turns views into images for ``cityops edge replay --annotate`` and for the
``debug_snapshot`` command of a running unit. Faces are pixelated before anything is drawn.
"""

from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np
import numpy.typing as npt

from edge.camera.frame import Frame, Image
from edge.detect.base import Detection
from edge.detect.regions import Rect
from edge.motion.static import StaticBlob
from edge.privacy.blurrer import FaceBlurrer
from edge.track.tracker import Track
from shared.config import CameraConfig, ZoneKind

Grey = npt.NDArray[np.uint8]
BGR = tuple[int, int, int]

ZONE_COLOURS: dict[ZoneKind, BGR] = {
    ZoneKind.NO_PARKING: (40, 40, 230),  # red
    ZoneKind.ABANDONED_WATCH: (0, 150, 255),  # orange
    ZoneKind.CROWDING: (220, 60, 220),  # magenta
    ZoneKind.WATCH: (230, 150, 40),  # blue
}
LINE_COLOUR: BGR = (0, 230, 255)  # yellow
TRACK_COLOUR: BGR = (80, 220, 80)  # green
STATIONARY_COLOUR: BGR = (40, 40, 230)  # red: the track the rules count as stopped
TENTATIVE_COLOUR: BGR = (170, 170, 170)
DETECTION_COLOUR: BGR = (255, 255, 255)
BLOB_COLOUR: BGR = (0, 150, 255)
MOTION_COLOUR = np.array([255, 0, 255], dtype=np.float32)  # magenta tint
MOTION_THRESHOLD = 18
"""Grey-level change between consecutive frames drawn as motion (the gate's default)."""


@dataclass(frozen=True, slots=True)
class FrameView:
    """What the pipeline knew after one frame; handed to ``Pipeline.observer``."""

    frame: Frame
    camera: CameraConfig
    detections: Sequence[Detection]
    tracks: Sequence[Track]
    blobs: Sequence[StaticBlob]
    grey: Grey | None
    """The motion gate's small grey copy of the frame."""


def _pt(x: float, y: float, w: int, h: int) -> tuple[int, int]:
    return round(x * w), round(y * h)


def _box(rect: Rect, w: int, h: int) -> tuple[tuple[int, int], tuple[int, int]]:
    return _pt(rect.x1, rect.y1, w, h), _pt(rect.x2, rect.y2, w, h)


def _label(image: Image, text: str, org: tuple[int, int], colour: BGR, scale: float) -> None:
    """Text on a dark band, readable over any background."""
    font = cv2.FONT_HERSHEY_SIMPLEX
    thick = max(1, round(scale * 2))
    (tw, th), base = cv2.getTextSize(text, font, scale, thick)
    x = min(max(0, org[0]), max(0, image.shape[1] - tw - 2))
    y = min(max(th + 2, org[1]), image.shape[0] - base)
    cv2.rectangle(image, (x, y - th - 2), (x + tw + 2, y + base), (0, 0, 0), -1)
    cv2.putText(image, text, (x + 1, y), font, scale, colour, thick, cv2.LINE_AA)


def motion_mask(previous: Grey | None, current: Grey | None) -> Grey | None:
    """Pixels that changed by more than ``MOTION_THRESHOLD`` since the previous frame."""
    if previous is None or current is None or previous.shape != current.shape:
        return None
    diff = cv2.absdiff(previous, current)
    return np.asarray(diff > MOTION_THRESHOLD, dtype=np.uint8)


def _tint_motion(image: Image, mask: Grey) -> None:
    h, w = image.shape[:2]
    big = cv2.resize(mask, (w, h), interpolation=cv2.INTER_NEAREST).astype(bool)
    if big.any():
        px = image[big].astype(np.float32)
        image[big] = (0.5 * px + 0.5 * MOTION_COLOUR).astype(np.uint8)


def _zones(image: Image, camera: CameraConfig, scale: float) -> None:
    h, w = image.shape[:2]
    thick = _thickness(w)
    fill = image.copy()
    for zone in camera.zones:
        pts = np.array([_pt(x, y, w, h) for x, y in zone.polygon], dtype=np.int32)
        cv2.fillPoly(fill, [pts], ZONE_COLOURS[zone.kind])
    cv2.addWeighted(fill, 0.25, image, 0.75, 0, dst=image)
    for zone in camera.zones:
        colour = ZONE_COLOURS[zone.kind]
        pts = np.array([_pt(x, y, w, h) for x, y in zone.polygon], dtype=np.int32)
        cv2.polylines(image, [pts], isClosed=True, color=colour, thickness=thick)
        top = min(zone.polygon, key=lambda p: p[1])
        _label(image, f"{zone.id} ({zone.kind.value})", _pt(*top, w, h), colour, scale)
    for line in camera.lines:
        a, b = _pt(*line.a, w, h), _pt(*line.b, w, h)
        cv2.line(image, a, b, LINE_COLOUR, thick, cv2.LINE_AA)
        _label(image, f"{line.id} A", a, LINE_COLOUR, scale)
        _label(image, "B", b, LINE_COLOUR, scale)


def _thickness(width: int) -> int:
    """2 px at VGA, thicker on large frames so lines survive a reduced still."""
    return max(2, round(width / 480))


def _objects(image: Image, view: FrameView, scale: float) -> None:
    h, w = image.shape[:2]
    thick = _thickness(w)
    now = view.frame.ts
    for det in view.detections:
        p1, p2 = _box(det.box, w, h)
        cv2.rectangle(image, p1, p2, DETECTION_COLOUR, 1)
    for blob in view.blobs:
        p1, p2 = _box(blob.box, w, h)
        cv2.rectangle(image, p1, p2, BLOB_COLOUR, thick)
        _label(
            image, f"static {now - blob.static_since:.0f}s", (p1[0], p2[1] + 14), BLOB_COLOUR, scale
        )
    for track in view.tracks:
        colour = (
            TENTATIVE_COLOUR
            if not track.confirmed
            else STATIONARY_COLOUR
            if track.stationary
            else TRACK_COLOUR
        )
        p1, p2 = _box(track.box, w, h)
        cv2.rectangle(image, p1, p2, colour, thick)
        text = f"#{track.id} {track.label} {track.score:.2f}"
        if track.stationary and track.stationary_since is not None:
            text += f" dwell {now - track.stationary_since:.0f}s"
        _label(image, text, (p1[0], p1[1] - 3), colour, scale)


def draw(view: FrameView, mask: Grey | None, blurrer: FaceBlurrer | None) -> Image:
    """The annotated frame: faces pixelated first, then motion, zones, lines and objects."""
    people = [t.box for t in view.tracks if t.label in view.camera.rules.person_labels]
    image = view.frame.image
    image = blurrer.blur(image, people) if blurrer is not None else image.copy()
    w = image.shape[1]
    scale = max(0.35, min(1.0, w / 1400))
    if mask is not None:
        _tint_motion(image, mask)
    _zones(image, view.camera, scale)
    _objects(image, view, scale)
    header = f"{view.frame.camera_id}  t={view.frame.ts:6.2f}s  tracks {len(view.tracks)}"
    _label(image, header, (4, 4), (255, 255, 255), scale)
    return image


class Annotator:
    """Follows the pipeline frame by frame (the motion mask needs the previous frame)."""

    def __init__(self, blurrer: FaceBlurrer | None) -> None:
        self.blurrer = blurrer
        self._previous: dict[str, Grey | None] = {}
        self._last: dict[str, tuple[FrameView, Grey | None]] = {}

    def observe(self, view: FrameView) -> None:
        cam = view.frame.camera_id
        mask = motion_mask(self._previous.get(cam), view.grey)
        self._previous[cam] = view.grey
        self._last[cam] = (view, mask)

    def render(self, camera_id: str | None = None) -> Image | None:
        """The latest view of *camera_id* (or of any camera) drawn; None before a frame."""
        if camera_id is None:
            if not self._last:
                return None
            camera_id = next(iter(self._last))
        last = self._last.get(camera_id)
        if last is None:
            return None
        return draw(last[0], last[1], self.blurrer)
