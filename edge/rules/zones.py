"""Zone geometry and time-of-day dwell limits."""

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from zoneinfo import ZoneInfo

from edge.detect.regions import Rect
from shared.config import ScheduleWindow, Zone

Point = tuple[float, float]


def point_in_polygon(point: Point, polygon: Sequence[Point]) -> bool:
    """Ray casting; points on an edge may fall either way (zones are drawn with margin)."""
    x, y = point
    inside = False
    n = len(polygon)
    j = n - 1
    for i in range(n):
        xi, yi = polygon[i]
        xj, yj = polygon[j]
        if (yi > y) != (yj > y) and x < (xj - xi) * (y - yi) / (yj - yi) + xi:
            inside = not inside
        j = i
    return inside


@dataclass(frozen=True, slots=True)
class Shape:
    """A zone polygon with what makes tests on it cheap.

    Its bounding box, and whether it is an axis-aligned rectangle (then coverage is exact
    arithmetic, not sampling).
    """

    polygon: tuple[Point, ...]
    bbox: Rect
    is_rect: bool

    @classmethod
    def of(cls, polygon: Sequence[Point]) -> "Shape":
        pts = tuple((float(x), float(y)) for x, y in polygon)
        xs, ys = {p[0] for p in pts}, {p[1] for p in pts}
        bbox = Rect(min(xs), min(ys), max(xs), max(ys))
        return cls(pts, bbox, len(pts) == 4 and len(xs) == 2 and len(ys) == 2)  # noqa: PLR2004

    def contains(self, point: Point) -> bool:
        b = self.bbox
        if not (b.x1 <= point[0] <= b.x2 and b.y1 <= point[1] <= b.y2):
            return False
        return self.is_rect or point_in_polygon(point, self.polygon)

    def coverage(self, box: Rect) -> float:
        if box.area <= 0:
            return float(self.contains(box.center))
        if self.is_rect:
            return box.intersection(self.bbox) / box.area
        if not box.overlaps(self.bbox):
            return 0.0
        return coverage(box, self.polygon)


def coverage(box: Rect, polygon: Sequence[Point], grid: int = 5) -> float:
    """Fraction of *box* inside *polygon*, sampled on a grid×grid lattice."""
    inside = 0
    for i in range(grid):
        x = box.x1 + (i + 0.5) * box.width / grid
        for j in range(grid):
            y = box.y1 + (j + 0.5) * box.height / grid
            inside += point_in_polygon((x, y), polygon)
    return inside / (grid * grid)


def distance_to_rect(point: Point, rect: Rect) -> float:
    """0 inside the rectangle, else the Euclidean distance to its nearest edge."""
    dx = max(rect.x1 - point[0], 0.0, point[0] - rect.x2)
    dy = max(rect.y1 - point[1], 0.0, point[1] - rect.y2)
    return float((dx * dx + dy * dy) ** 0.5)


def _in_window(window: ScheduleWindow, local: datetime) -> bool:
    t = local.time()
    day = local.weekday()
    if window.start <= window.end:
        return day in window.days and window.start <= t < window.end
    # Past midnight: the part after midnight belongs to the previous day's window.
    if t >= window.start:
        return day in window.days
    return t < window.end and (day - 1) % 7 in window.days


def dwell_limit(zone: Zone, at: datetime, tz: str) -> float | None:
    """The zone's limit at *at*: the first matching schedule window, else ``dwell_limit_s``.

    ``None`` means the rule is off at that time.
    """
    if not zone.schedule:
        return zone.dwell_limit_s
    local = at.astimezone(ZoneInfo(tz))
    for window in zone.schedule:
        if _in_window(window, local):
            return window.limit_s
    return zone.dwell_limit_s


def line_side(p: Point, a: Point, b: Point) -> tuple[float, float]:
    """Signed distance of *p* from the line a→b and where it projects along it (0 = a, 1 = b).

    Image y grows downwards, so a negative distance is the left side of a→b as drawn.
    """
    dx, dy = b[0] - a[0], b[1] - a[1]
    length2 = dx * dx + dy * dy
    cross = dx * (p[1] - a[1]) - dy * (p[0] - a[0])
    along = (dx * (p[0] - a[0]) + dy * (p[1] - a[1])) / length2
    return cross / length2**0.5, along
