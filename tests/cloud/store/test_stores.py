"""The ``EventStore`` contract, run against SQLite and the real InfluxDB."""

from datetime import timedelta

import pytest

from cloud.store.base import BBox, EventQuery, EventStore
from shared.clock import utcnow
from shared.events import EventKind, Location, Severity
from tests.cloud.store.factories import make_event, make_telemetry


async def test_round_trip_keeps_every_field_and_the_snapshot(store: EventStore) -> None:
    event = make_event(snapshot=True)
    await store.write_events([event])
    assert await store.get_event(event.id) == event
    page = await store.query_events(EventQuery())
    assert [e.id for e in page.items] == [event.id]
    assert page.items[0].snapshot is None  # lists stay light; get_event carries the JPEG
    assert page.items[0] == event.model_copy(update={"snapshot": None})


async def test_same_event_twice_is_stored_once(store: EventStore) -> None:
    event = make_event()
    await store.write_events([event, event])
    await store.write_events([event])
    counts = await store.count_events(EventQuery(), "device_id")
    assert [(c.key, c.count) for c in counts] == [("dev-a", 1)]


async def test_unknown_event_is_none(store: EventStore) -> None:
    assert await store.get_event(make_event().id) is None


async def test_filters_and_newest_first_pages(store: EventStore) -> None:
    now = utcnow() - timedelta(minutes=10)
    events = [
        make_event(
            "dev-a" if i % 2 else "dev-b",
            observed_at=now + timedelta(seconds=i),
            kind=EventKind.CROWDING if i % 3 == 0 else EventKind.ILLEGAL_PARKING,
            severity=Severity.HIGH if i < 5 else Severity.LOW,
            zone_id=f"z{i % 4}",
            location=Location(lat=45.0 + i * 0.01, lon=9.0),
        )
        for i in range(25)
    ]
    await store.write_events(events)
    newest_first = sorted(events, key=lambda e: e.observed_at, reverse=True)

    seen: list[str] = []
    cursor = None
    while True:
        page = await store.query_events(EventQuery(limit=7, cursor=cursor))
        seen += [e.id for e in page.items]
        if page.next_cursor is None:
            break
        cursor = page.next_cursor
    assert seen == [e.id for e in newest_first]

    def ids(q: EventQuery) -> list[str]:
        return [e.id for e in newest_first if _matches(e, q)]

    queries = [
        EventQuery(kinds=[EventKind.CROWDING]),
        EventQuery(device_ids=["dev-b"]),
        EventQuery(zone_ids=["z1", "z2"]),
        EventQuery(severities=[Severity.HIGH]),
        EventQuery(start=now + timedelta(seconds=5), end=now + timedelta(seconds=12)),
        EventQuery(bbox=BBox(min_lat=45.05, max_lat=45.105, min_lon=8.9, max_lon=9.1)),
        EventQuery(device_ids=["dev-a"], kinds=[EventKind.ILLEGAL_PARKING], limit=1000),
    ]
    for q in queries:
        got = await store.query_events(q)
        assert [e.id for e in got.items] == ids(q), q


def _matches(e: "object", q: EventQuery) -> bool:
    from shared.events import Event

    assert isinstance(e, Event)
    return (
        (not q.kinds or e.kind in q.kinds)
        and (not q.device_ids or e.device_id in q.device_ids)
        and (not q.zone_ids or e.zone_id in q.zone_ids)
        and (not q.severities or e.severity in q.severities)
        and (q.start is None or e.observed_at >= q.start)
        and (q.end is None or e.observed_at < q.end)
        and (
            q.bbox is None
            or (
                e.location is not None
                and q.bbox.min_lat <= e.location.lat <= q.bbox.max_lat
                and q.bbox.min_lon <= e.location.lon <= q.bbox.max_lon
            )
        )
    )


async def test_counts_by_key_and_interval(store: EventStore) -> None:
    base = (utcnow() - timedelta(hours=2)).replace(minute=0, second=0, microsecond=0)
    events = [
        make_event(observed_at=base + timedelta(minutes=m), zone_id=z)
        for m, z in [(1, "a"), (2, "a"), (3, "b"), (61, "a"), (62, None)]
    ]
    await store.write_events(events)
    by_zone = await store.count_events(EventQuery(), "zone_id")
    assert {(c.key, c.count) for c in by_zone} == {("a", 3), ("b", 1), ("", 1)}
    hourly = await store.count_events(EventQuery(start=base), "kind", interval_s=3600)
    assert [(c.key, c.start, c.count) for c in hourly] == [
        ("illegal_parking", base, 3),
        ("illegal_parking", base + timedelta(hours=1), 2),
    ]
    with pytest.raises(ValueError, match="group_by"):
        await store.count_events(EventQuery(), "summary")


async def test_recent_telemetry_newest_first(store: EventStore) -> None:
    now = utcnow() - timedelta(minutes=1)
    items = [make_telemetry(ts=now + timedelta(seconds=i), outbox_depth=i) for i in range(5)]
    await store.write_telemetry(items)
    await store.write_telemetry(items[:2])  # idempotent
    got = await store.recent_telemetry("dev-a", limit=3)
    assert got == list(reversed(items))[:3]
    assert await store.recent_telemetry("dev-b") == []


async def test_bad_cursor_names_the_field(store: EventStore) -> None:
    with pytest.raises(ValueError, match="cursor"):
        await store.query_events(EventQuery(cursor="not-a-cursor"))
