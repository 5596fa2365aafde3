"""Zone geometry, schedules and counting-line sides."""

from datetime import UTC, datetime, time

import pytest

from edge.detect.regions import Rect
from edge.rules.zones import coverage, distance_to_rect, dwell_limit, line_side, point_in_polygon
from shared.config import ScheduleWindow, Zone, ZoneKind

SQUARE = [(0.2, 0.2), (0.6, 0.2), (0.6, 0.6), (0.2, 0.6)]
L_SHAPE = [(0.0, 0.0), (0.5, 0.0), (0.5, 0.2), (0.2, 0.2), (0.2, 0.5), (0.0, 0.5)]


@pytest.mark.parametrize(
    ("point", "polygon", "inside"),
    [
        ((0.4, 0.4), SQUARE, True),
        ((0.1, 0.4), SQUARE, False),
        ((0.4, 0.7), SQUARE, False),
        ((0.1, 0.1), L_SHAPE, True),
        ((0.3, 0.3), L_SHAPE, False),  # in the notch of the L
        ((0.1, 0.4), L_SHAPE, True),
    ],
)
def test_point_in_polygon(
    point: tuple[float, float], polygon: list[tuple[float, float]], inside: bool
) -> None:
    assert point_in_polygon(point, polygon) is inside


def test_coverage_of_a_box_half_in_a_zone() -> None:
    assert coverage(Rect(0.4, 0.3, 0.8, 0.5), SQUARE, grid=10) == pytest.approx(0.5)
    assert coverage(Rect(0.3, 0.3, 0.4, 0.4), SQUARE) == 1.0
    assert coverage(Rect(0.7, 0.7, 0.8, 0.8), SQUARE) == 0.0


def test_distance_to_rect() -> None:
    r = Rect(0.2, 0.2, 0.4, 0.4)
    assert distance_to_rect((0.3, 0.3), r) == 0.0
    assert distance_to_rect((0.5, 0.3), r) == pytest.approx(0.1)
    assert distance_to_rect((0.7, 0.8), r) == pytest.approx(0.5)


def zone(schedule: list[ScheduleWindow]) -> Zone:
    return Zone(
        id="z", kind=ZoneKind.NO_PARKING, polygon=SQUARE, dwell_limit_s=60, schedule=schedule
    )


@pytest.mark.parametrize(
    ("at", "limit"),
    [
        (datetime(2026, 1, 5, 8, 0, tzinfo=UTC), None),  # Monday 08:00 Lisbon: loading window
        (datetime(2026, 1, 5, 12, 0, tzinfo=UTC), 60.0),  # Monday noon: default
        (datetime(2026, 1, 10, 8, 0, tzinfo=UTC), 60.0),  # Saturday: no loading window
        (datetime(2026, 1, 5, 23, 30, tzinfo=UTC), 900.0),  # Monday night
        (datetime(2026, 1, 6, 2, 0, tzinfo=UTC), 900.0),  # after midnight, Monday's window
        (datetime(2026, 1, 5, 2, 0, tzinfo=UTC), 60.0),  # Monday 02:00: Sunday has no window
    ],
)
def test_dwell_limit_by_time_of_day_and_weekday(at: datetime, limit: float | None) -> None:
    z = zone(
        [
            ScheduleWindow(days=[0, 1, 2, 3, 4], start=time(7), end=time(10), limit_s=None),
            ScheduleWindow(days=[0, 1, 2, 3, 4], start=time(22), end=time(6), limit_s=900),
        ]
    )
    assert dwell_limit(z, at, "Europe/Lisbon") == limit


def test_dwell_limit_uses_the_device_time_zone() -> None:
    z = zone([ScheduleWindow(start=time(7), end=time(10), limit_s=None)])
    at = datetime(2026, 7, 1, 6, 30, tzinfo=UTC)  # 07:30 in Lisbon (summer), 06:30 UTC
    assert dwell_limit(z, at, "Europe/Lisbon") is None
    assert dwell_limit(z, at, "UTC") == 60.0


def test_line_side_sign_and_projection() -> None:
    a, b = (0.0, 0.5), (1.0, 0.5)
    above, along = line_side((0.25, 0.4), a, b)
    below, _ = line_side((0.25, 0.7), a, b)
    assert above == pytest.approx(-0.1)  # left of a→b on screen (y grows down)
    assert below == pytest.approx(0.2)
    assert along == pytest.approx(0.25)
    assert line_side((1.5, 0.4), a, b)[1] > 1.0
