"""Rule engine on scripted tracks and blobs: dwell timers, one event per stay, hysteresis."""

from dataclasses import replace
from datetime import UTC, datetime, time, timedelta

from edge.detect.regions import Rect
from edge.motion.static import StaticBlob
from edge.rules.engine import RuleEngine, RuleEvent
from edge.track.tracker import Track
from shared.config import CameraConfig, LineConfig, RuleParams, ScheduleWindow, Zone, ZoneKind
from shared.events import EventKind, Phase

BAY = [(0.2, 0.6), (0.5, 0.6), (0.5, 1.0), (0.2, 1.0)]
BAY_CAR = Rect(0.25, 0.7, 0.45, 0.95)
T0 = datetime(2026, 1, 5, 12, 0, tzinfo=UTC)  # a Monday
Step = tuple[float, list[Track], list[StaticBlob]]


def track(
    tid: int,
    box: Rect,
    ts: float,
    *,
    label: str = "car",
    since: float | None = 0.0,
    prev: tuple[float, float] | None = None,
) -> Track:
    return Track(
        id=tid,
        label=label,
        score=0.8,
        box=box,
        first_seen=0.0,
        last_seen=ts,
        hits=10,
        confirmed=True,
        stationary=since is not None,
        stationary_since=since,
        speed=0.0,
        prev_center=prev,
    )


def camera(*zones: Zone, lines: list[LineConfig] | None = None) -> CameraConfig:
    return CameraConfig(
        id="cam", zones=list(zones), lines=lines or [], rules=RuleParams(end_grace_s=3.0)
    )


def no_parking(limit: float = 10.0, **kw: object) -> Zone:
    return Zone(id="bay", kind=ZoneKind.NO_PARKING, polygon=BAY, dwell_limit_s=limit, **kw)


def drive(
    engine: RuleEngine,
    script: list[Step],
) -> list[RuleEvent]:
    out: list[RuleEvent] = []
    for ts, tracks, blobs in script:
        out.extend(engine.evaluate(tracks, blobs, ts, T0 + timedelta(seconds=ts)))
    return out


def frames(start: float, end: float, fps: float = 5.0) -> list[float]:
    n = round((end - start) * fps)
    return [start + i / fps for i in range(n)]


def test_parking_starts_once_at_the_limit_and_ends_when_the_car_leaves() -> None:
    engine = RuleEngine(camera(no_parking(10.0)), "UTC")
    script: list[Step] = [(ts, [track(1, BAY_CAR, ts, since=2.0)], []) for ts in frames(2.0, 30.0)]
    script += [(ts, [], []) for ts in frames(30.0, 40.0)]
    events = drive(engine, script)
    assert [(e.kind, e.phase) for e in events] == [
        (EventKind.ILLEGAL_PARKING, Phase.START),
        (EventKind.ILLEGAL_PARKING, Phase.END),
    ]
    start, end = events
    assert start.ts == 12.0
    assert start.started_ts == 2.0
    assert start.zone_id == "bay"
    assert 29.0 < end.ts < 30.0  # ended at the last sighting, found after the grace period
    assert start.episode == end.episode


def test_parking_is_one_event_per_stay_when_the_track_id_changes() -> None:
    # The detector loses the car for a moment and the tracker gives it a new id.
    engine = RuleEngine(camera(no_parking(5.0)), "UTC")
    script: list[Step] = [(ts, [track(1, BAY_CAR, ts, since=0.0)], []) for ts in frames(0.0, 8.0)]
    script += [(ts, [], []) for ts in frames(8.0, 9.0)]
    moved = replace(BAY_CAR, x1=BAY_CAR.x1 + 0.01)
    script += [(ts, [track(7, moved, ts, since=9.0)], []) for ts in frames(9.0, 20.0)]
    events = drive(engine, script)
    assert [e.phase for e in events] == [Phase.START]


def test_parking_flicker_shorter_than_grace_does_not_end_the_event() -> None:
    engine = RuleEngine(camera(no_parking(2.0)), "UTC")
    script: list[Step] = []
    for ts in frames(0.0, 20.0):
        visible = not (10.0 <= ts < 12.0)  # 2 s gap < end_grace_s 3 s
        script.append((ts, [track(1, BAY_CAR, ts)] if visible else [], []))
    assert [e.phase for e in drive(engine, script)] == [Phase.START]


def test_parking_needs_stationary_vehicle_inside_the_zone() -> None:
    engine = RuleEngine(camera(no_parking(1.0)), "UTC")
    outside = Rect(0.6, 0.7, 0.8, 0.95)
    script: list[Step] = [
        (
            ts,
            [
                track(1, BAY_CAR, ts, since=None),  # moving through the bay
                track(2, outside, ts),  # parked next to the bay
                track(3, BAY_CAR, ts, label="person"),  # a person standing in the bay
            ],
            [],
        )
        for ts in frames(0.0, 10.0)
    ]
    assert drive(engine, script) == []


def test_parking_schedule_window_without_limit_switches_the_rule_off() -> None:
    window = ScheduleWindow(start=time(11), end=time(13), limit_s=None)
    engine = RuleEngine(camera(no_parking(1.0, schedule=[window])), "UTC")
    script: list[Step] = [(ts, [track(1, BAY_CAR, ts)], []) for ts in frames(0.0, 10.0)]
    assert drive(engine, script) == []


def test_parking_update_every_interval() -> None:
    cam = camera(no_parking(1.0))
    cam = cam.model_copy(update={"rules": RuleParams(update_interval_s=5.0)})
    engine = RuleEngine(cam, "UTC")
    script: list[Step] = [(ts, [track(1, BAY_CAR, ts)], []) for ts in frames(0.0, 12.0)]
    phases = [e.phase for e in drive(engine, script)]
    assert phases == [Phase.START, Phase.UPDATE, Phase.UPDATE]


BAG = Rect(0.6, 0.7, 0.65, 0.78)
SIDEWALK = [(0.0, 0.0), (1.0, 0.0), (1.0, 1.0), (0.0, 1.0)]


def watch_zone(limit: float) -> Zone:
    return Zone(id="walk", kind=ZoneKind.ABANDONED_WATCH, polygon=SIDEWALK, dwell_limit_s=limit)


def test_abandoned_counts_from_when_the_owner_left() -> None:
    engine = RuleEngine(camera(watch_zone(5.0)), "UTC")
    blob = StaticBlob(1, BAG, 0.004, static_since=1.0)
    owner_box = Rect(0.66, 0.5, 0.72, 0.85)  # standing right beside the bag
    script: list[Step] = []
    for ts in frames(1.0, 20.0):
        people = [track(9, owner_box, ts, label="person")] if ts < 8.0 else []
        script.append((ts, people, [blob]))
    events = drive(engine, script)
    assert [(e.kind, e.phase) for e in events] == [(EventKind.ABANDONED_OBJECT, Phase.START)]
    # Owner last seen ~7.8 s, unattended after the 3 s owner grace, then the 5 s limit.
    assert 15.6 < events[0].ts < 16.4
    assert events[0].box == BAG


def test_abandoned_ignores_a_blob_that_is_a_standing_person() -> None:
    engine = RuleEngine(camera(watch_zone(1.0)), "UTC")
    person = Rect(0.58, 0.5, 0.67, 0.8)
    blob = StaticBlob(1, Rect(0.59, 0.55, 0.66, 0.79), 0.01, static_since=0.0)
    script: list[Step] = [
        (ts, [track(9, person, ts, label="person")], [blob]) for ts in frames(0.0, 10.0)
    ]
    assert drive(engine, script) == []


def test_crowding_above_max_people_for_the_limit() -> None:
    zone = Zone(id="sq", kind=ZoneKind.CROWDING, polygon=SIDEWALK, dwell_limit_s=2.0, max_people=3)
    engine = RuleEngine(camera(zone), "UTC")
    script: list[Step] = []
    for ts in frames(0.0, 10.0):
        n = 5 if ts < 6.0 else 2
        people = [
            track(i, Rect(0.1 * i, 0.3, 0.1 * i + 0.05, 0.5), ts, label="person") for i in range(n)
        ]
        script.append((ts, people, []))
    events = drive(engine, script)
    assert [(e.kind, e.phase) for e in events] == [
        (EventKind.CROWDING, Phase.START),
        (EventKind.CROWDING, Phase.END),
    ]
    assert events[0].attributes["people"] == 5


def test_line_crossing_direction_and_counts() -> None:
    line = LineConfig(id="l1", a=(0.0, 0.5), b=(1.0, 0.5), direction="any")
    engine = RuleEngine(camera(lines=[line]), "UTC")
    script: list[Step] = []
    for i, ts in enumerate(frames(0.0, 4.0, fps=10.0)):
        y = 0.3 + 0.01 * i  # one car going down across the line
        up = 0.7 - 0.01 * i  # one person going up across it
        script.append(
            (
                ts,
                [
                    track(1, Rect(0.2, y - 0.02, 0.3, y + 0.02), ts, since=None),
                    track(2, Rect(0.6, up - 0.02, 0.7, up + 0.02), ts, label="person"),
                ],
                [],
            )
        )
    # Jitter back and forth across the line must not count again.
    for ts, jit in ((4.1, 0.505), (4.2, 0.495), (4.3, 0.505)):
        script.append((ts, [track(1, Rect(0.2, jit - 0.02, 0.3, jit + 0.02), ts)], []))
    events = [e for e in drive(engine, script) if e.phase is Phase.START]
    directions = sorted(str(e.attributes["direction"]) for e in events)
    assert directions == ["a_to_b", "b_to_a"]
    assert engine.line_counts["l1"] == {"a_to_b": 1, "b_to_a": 1}


def test_removed_zone_ends_its_episode() -> None:
    engine = RuleEngine(camera(no_parking(1.0)), "UTC")
    events = drive(engine, [(ts, [track(1, BAY_CAR, ts)], []) for ts in frames(0.0, 3.0)])
    assert [e.phase for e in events] == [Phase.START]
    engine.set_config(camera(), "UTC")
    events = drive(engine, [(3.0, [track(1, BAY_CAR, 3.0)], [])])
    assert [e.phase for e in events] == [Phase.END]


def test_ghost_box_over_a_parked_car_joins_its_event() -> None:
    # Issue #19 item 4: a second, overlapping box on the same car (a ghost straddling it and
    # its neighbour) became a second track and a second event in the same second.
    engine = RuleEngine(camera(no_parking(3.0)), "UTC")
    ghost = Rect(0.22, 0.62, 0.49, 0.96)  # covers the car's box almost entirely
    script: list[Step] = [
        (ts, [track(1, BAY_CAR, ts, since=0.0), track(2, ghost, ts, since=0.5)], [])
        for ts in frames(0.0, 10.0)
    ]
    events = drive(engine, script)
    assert [(e.phase, e.ts) for e in events] == [(Phase.START, 3.0)]
    assert events[0].objects[0].track_id == 1  # the older stationary track owns the episode


def test_two_cars_side_by_side_in_one_zone_are_two_events() -> None:
    engine = RuleEngine(camera(no_parking(3.0)), "UTC")
    left, right = Rect(0.21, 0.7, 0.34, 0.95), Rect(0.36, 0.7, 0.49, 0.95)  # boxes just apart
    script: list[Step] = [
        (ts, [track(1, left, ts), track(2, right, ts)], []) for ts in frames(0.0, 6.0)
    ]
    assert [e.phase for e in drive(engine, script)] == [Phase.START, Phase.START]


def test_owner_flicker_within_the_grace_keeps_the_bag_attended() -> None:
    # The detector finds the owner only now and then (night); each sighting renews attendance.
    engine = RuleEngine(camera(watch_zone(5.0)), "UTC")
    blob = StaticBlob(1, BAG, 0.004, static_since=1.0)
    owner_box = Rect(0.66, 0.5, 0.72, 0.85)
    script: list[Step] = []
    for ts in frames(1.0, 30.0):
        seen = ts < 12.0 and int(ts) % 3 == 0  # one second in three, until 12 s
        script.append((ts, [track(9, owner_box, ts, label="person")] if seen else [], [blob]))
    events = drive(engine, script)
    assert [e.phase for e in events] == [Phase.START]
    # Last seen 9.8 s: unattended from 12.8 s (grace 3 s), due at 17.8 s.
    assert 17.6 <= events[0].ts <= 18.0


def test_owner_who_stood_there_before_the_blob_was_a_candidate_still_counts() -> None:
    # While the owner stands over the bag the blob is "a person" and no candidate; when it
    # becomes one, the minute of sightings still says who was there.
    engine = RuleEngine(camera(watch_zone(5.0)), "UTC")
    owner_box = Rect(0.58, 0.4, 0.68, 0.85)  # over the bag
    script: list[Step] = []
    for ts in frames(1.0, 25.0):
        people = [track(9, owner_box, ts, label="person")] if ts < 8.0 else []
        blobs = [StaticBlob(1, BAG, 0.004, static_since=1.0)]
        script.append((ts, people, blobs))
    events = drive(engine, script)
    assert [e.phase for e in events] == [Phase.START]
    assert 15.6 <= events[0].ts <= 16.0  # last seen 7.8 s + 3 s grace + 5 s limit


def test_a_reported_bag_is_not_reported_again_after_its_blob_flickers() -> None:
    engine = RuleEngine(camera(watch_zone(2.0)), "UTC")
    script: list[Step] = []
    for ts in frames(0.0, 40.0):
        gone = 10.0 <= ts < 16.0  # longer than end_grace_s: the first episode ends
        blob_id = 1 if ts < 10.0 else 2  # and the blob comes back under a new id
        blobs = [] if gone else [StaticBlob(blob_id, BAG, 0.004, static_since=0.0)]
        script.append((ts, [], blobs))
    events = drive(engine, script)
    assert [e.phase for e in events] == [Phase.START, Phase.END]
