"""Tracker on scripted detections: stable ids, occlusions, stationary state."""

import pytest

from edge.detect.base import Detection
from edge.detect.regions import Rect
from edge.track.tracker import Tracker, TrackerParams

FPS = 10.0


def car(x: float, y: float = 0.5, w: float = 0.1, label: str = "car") -> Detection:
    return Detection(label, 0.8, Rect(x, y, x + w, y + w))


def test_tracker_keeps_ids_of_two_objects_that_move() -> None:
    tracker = Tracker()
    ids: set[tuple[int, int]] = set()
    for i in range(30):
        ts = i / FPS
        tracks = tracker.update([car(0.1 + 0.005 * i), car(0.6 - 0.005 * i, y=0.2)], ts)
        by_y = sorted(tracks, key=lambda t: t.box.y1)
        ids.add((by_y[0].id, by_y[1].id))
    assert len(ids) == 1
    top, bottom = ids.pop()
    assert top != bottom


def test_tracker_bridges_a_short_occlusion_but_not_a_long_one() -> None:
    tracker = Tracker(TrackerParams(max_age_s=1.0))
    first = tracker.update([car(0.3)], 0.0)[0].id
    tracker.update([car(0.3)], 0.1)
    assert tracker.update([], 0.6) != []  # hidden for 0.5 s: still known
    assert tracker.update([car(0.3)], 0.7)[0].id == first
    assert tracker.update([], 2.0) == []  # gone for longer than max_age_s
    assert tracker.update([car(0.3)], 2.1)[0].id != first


def test_tracker_confirms_after_min_hits() -> None:
    tracker = Tracker(TrackerParams(min_hits=3))
    states = [tracker.update([car(0.3)], i / FPS)[0].confirmed for i in range(4)]
    assert states == [False, False, True, True]


@pytest.mark.parametrize(
    ("step", "stationary"),
    [
        (0.0, True),  # parked
        (0.0004, True),  # 0.004/s: creeping below the 0.02/s threshold
        (0.005, False),  # 0.05/s: driving
    ],
)
def test_tracker_stationary_by_speed(step: float, stationary: bool) -> None:
    tracker = Tracker(TrackerParams(stationary_speed=0.02, window_s=2.0))
    tracks = []
    for i in range(50):
        tracks = tracker.update([car(0.2 + step * i)], i / FPS)
    assert tracks[0].stationary is stationary
    if stationary:
        assert tracks[0].stationary_since is not None
        assert 1.8 <= tracks[0].stationary_since <= 2.2  # after one full window, not before


def test_tracker_stationary_survives_box_jitter() -> None:
    # A parked car whose box flips between two detector outputs (as on the real bay clip).
    tracker = Tracker(TrackerParams(stationary_speed=0.02, window_s=2.0))
    tracks = []
    for i in range(100):
        jitter = 0.03 if (i // 7) % 2 else 0.0
        tracks = tracker.update([car(0.3 + jitter, w=0.15)], i / FPS)
    assert tracks[0].stationary
    assert tracks[0].stationary_since is not None
    assert tracks[0].stationary_since < 3.0


def test_tracker_vehicle_labels_may_swap_on_one_object() -> None:
    tracker = Tracker()
    a = tracker.update([car(0.3)], 0.0)[0].id
    b = tracker.update([car(0.3, label="truck")], 0.1)[0].id
    c = tracker.update([car(0.3, label="person")], 0.2)
    assert a == b
    assert {t.id for t in c} != {a}  # a person is another object, even on the same spot


def test_tracker_restart_stationary_moves_the_start() -> None:
    tracker = Tracker(TrackerParams(window_s=1.0))
    for i in range(20):
        tracks = tracker.update([car(0.3)], i / FPS)
    tid = tracks[0].id
    tracker.restart_stationary([tid], 1.9)
    assert tracker.tracks()[0].stationary_since == pytest.approx(1.9)
