"""Rectangles in normalised coordinates, zone crops and tiles the detector runs on."""

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

MIN_SIDE = 0.02
MAX_CROP_AREA = 0.5
SAME_CROP_IOU = 0.8


@dataclass(frozen=True, slots=True)
class Rect:
    """Axis-aligned rectangle, normalised 0..1, origin top-left."""

    x1: float
    y1: float
    x2: float
    y2: float

    @property
    def width(self) -> float:
        return self.x2 - self.x1

    @property
    def height(self) -> float:
        return self.y2 - self.y1

    @property
    def area(self) -> float:
        return max(0.0, self.width) * max(0.0, self.height)

    @property
    def center(self) -> tuple[float, float]:
        return ((self.x1 + self.x2) / 2, (self.y1 + self.y2) / 2)

    @property
    def bottom_center(self) -> tuple[float, float]:
        return ((self.x1 + self.x2) / 2, self.y2)

    def intersection(self, other: "Rect") -> float:
        w = min(self.x2, other.x2) - max(self.x1, other.x1)
        h = min(self.y2, other.y2) - max(self.y1, other.y1)
        return w * h if w > 0 and h > 0 else 0.0

    def iou(self, other: "Rect") -> float:
        inter = self.intersection(other)
        union = self.area + other.area - inter
        return inter / union if union > 0 else 0.0

    def clipped(self) -> "Rect":
        return Rect(
            min(max(self.x1, 0.0), 1.0),
            min(max(self.y1, 0.0), 1.0),
            min(max(self.x2, 0.0), 1.0),
            min(max(self.y2, 0.0), 1.0),
        )

    def expanded(self, margin: float) -> "Rect":
        dx, dy = self.width * margin, self.height * margin
        return Rect(self.x1 - dx, self.y1 - dy, self.x2 + dx, self.y2 + dy).clipped()

    def overlaps(self, other: "Rect") -> bool:
        return self.intersection(other) > 0.0


@dataclass(frozen=True, slots=True)
class Region:
    """Where the detector looks: a rectangle of the frame and why."""

    rect: Rect
    reason: str = "frame"


FULL_FRAME = Region(Rect(0.0, 0.0, 1.0, 1.0), "frame")


def bounding_rect(points: Iterable[tuple[float, float]]) -> Rect:
    pts = list(points)
    xs = [p[0] for p in pts]
    ys = [p[1] for p in pts]
    return Rect(min(xs), min(ys), max(xs), max(ys))


def square_up(rect: Rect, aspect: float) -> Rect:
    """Grow *rect* so its pixel shape is closer to square (the model input is square).

    *aspect* is frame width / height. A crop much wider than tall is squashed by the resize to
    300×300, which is what makes the model miss cars at full frame.
    """
    w_px, h_px = rect.width * aspect, rect.height
    if w_px > h_px:
        grow = (w_px - h_px) / 2
        r = Rect(rect.x1, rect.y1 - grow, rect.x2, rect.y2 + grow)
    else:
        grow = (h_px - w_px) / 2 / aspect
        r = Rect(rect.x1 - grow, rect.y1, rect.x2 + grow, rect.y2)
    return _shift_inside(r)


def _shift_inside(r: Rect) -> Rect:
    dx = -r.x1 if r.x1 < 0 else (1.0 - r.x2 if r.x2 > 1.0 else 0.0)
    dy = -r.y1 if r.y1 < 0 else (1.0 - r.y2 if r.y2 > 1.0 else 0.0)
    return Rect(r.x1 + dx, r.y1 + dy, r.x2 + dx, r.y2 + dy).clipped()


def tiles(n: int, overlap: float = 0.2) -> list[Region]:
    """An n×n grid of overlapping tiles covering the frame (n = 1: the frame itself)."""
    if n <= 1:
        return [FULL_FRAME]
    size = min(1.0, (1.0 + overlap * (n - 1)) / n)
    step = (1.0 - size) / (n - 1)
    return [
        Region(Rect(i * step, j * step, i * step + size, j * step + size), f"tile{j}{i}")
        for j in range(n)
        for i in range(n)
    ]


def zone_regions(
    polygons: Sequence[tuple[str, Sequence[tuple[float, float]]]],
    *,
    margin: float,
    aspect: float,
) -> list[Region]:
    """One crop per zone polygon: its bounding box plus margin, squared up for the model.

    Zones whose crop covers most of the frame get none (the full frame already sees them at
    nearly the same scale), and zones with the same crop share one.
    """
    out: list[Region] = []
    for zone_id, polygon in polygons:
        rect = square_up(bounding_rect(polygon).expanded(margin), aspect)
        if rect.width < MIN_SIDE or rect.height < MIN_SIDE or rect.area > MAX_CROP_AREA:
            continue
        if all(r.rect.iou(rect) < SAME_CROP_IOU for r in out):
            out.append(Region(rect, f"zone:{zone_id}"))
    return out
