"""Zone geometry and time-of-day dwell limits."""

from collections.abc import Sequence
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


def segments_cross(p1: Point, p2: Point, a: Point, b: Point) -> int:
    """+1 if the move p1→p2 crosses segment a→b to its left, -1 to its right, 0 if not.

    Image y grows downwards, so 'left' is where the cross product (b-a)×(p-a) is negative.
    """

    def side(p: Point) -> float:
        return (b[0] - a[0]) * (p[1] - a[1]) - (b[1] - a[1]) * (p[0] - a[0])

    s1, s2 = side(p1), side(p2)
    if s1 == 0 or s2 == 0 or (s1 > 0) == (s2 > 0):
        return 0

    def side_ab(p: Point) -> float:
        return (p2[0] - p1[0]) * (p[1] - p1[1]) - (p2[1] - p1[1]) * (p[0] - p1[0])

    if (side_ab(a) > 0) == (side_ab(b) > 0):
        return 0
    return 1 if s2 < 0 else -1
