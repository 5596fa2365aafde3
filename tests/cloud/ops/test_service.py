"""OpsService on a real SQLite state database: incidents from events, lifecycle, SLA, audit."""

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from cloud.db.ops import AuditEntry, IncidentEvent
from cloud.ops.audit import list_audit
from cloud.ops.clock import ManualClock
from cloud.ops.errors import InvalidQueryError, InvalidTransitionError, NotFoundError
from cloud.ops.models import ChangeType, IncidentChange, IncidentStatus
from cloud.ops.roles import Actor
from cloud.ops.rules import Router, RoutingConfig
from cloud.ops.service import IncidentFilter, OpsService
from shared.events import EventKind, Phase, Severity
from tests.cloud.ops.builders import add_device, event, ops_database

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
OPERATOR = Actor(name="ana (k1)", role="operator", source="10.0.0.7", user_agent="console/1")


@pytest.fixture
def sessions(tmp_path: Path) -> sessionmaker[Session]:
    db = ops_database(tmp_path / "ops.sqlite")
    add_device(db, "dev-a", site="Cais do Sodré", department="civil-protection")
    return db


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(T0)


@pytest.fixture
def ops(sessions: sessionmaker[Session], clock: ManualClock) -> OpsService:
    return OpsService(sessions, Router(RoutingConfig.default()), clock)


def _changes(ops: OpsService) -> list[IncidentChange]:
    seen: list[IncidentChange] = []

    async def listener(change: IncidentChange) -> None:
        seen.append(change)

    ops.add_listener(listener)
    return seen


async def test_event_opens_incident_in_rule_department(ops: OpsService) -> None:
    seen = _changes(ops)
    start = event(EventKind.ABANDONED_OBJECT, observed_at=T0 - timedelta(seconds=5))
    await ops.on_events([start])
    assert [c.type for c in seen] == [ChangeType.CREATED]
    incident = seen[0].incident
    assert incident.department == "civil-protection"
    assert incident.severity is Severity.HIGH
    assert incident.status is IncidentStatus.OPEN
    assert incident.ack_due_at == T0 + timedelta(minutes=2)
    assert incident.resolve_due_at == T0 + timedelta(minutes=30)
    assert incident.checklist[0].text.startswith("Check the snapshot")
    assert "Cais do Sodré" in incident.title


async def test_duplicates_attach_to_one_incident(
    ops: OpsService, sessions: sessionmaker[Session]
) -> None:
    seen = _changes(ops)
    start = event(observed_at=T0 - timedelta(seconds=30))
    update = event(phase=Phase.UPDATE, observed_at=T0 - timedelta(seconds=10))
    await ops.on_events([start])
    await ops.on_events([start, update])  # a redelivered start and an update of it
    await ops.on_events([update])
    assert [c.type for c in seen] == [ChangeType.CREATED, ChangeType.ATTACHED]
    page = ops.list_incidents(IncidentFilter())
    assert len(page.items) == 1
    assert page.items[0].event_count == 2
    with sessions() as session:
        assert session.scalar(select(func.count()).select_from(IncidentEvent)) == 2


async def test_other_track_or_zone_is_another_situation(ops: OpsService) -> None:
    await ops.on_events([event(track_id=3)])
    await ops.on_events([event(track_id=4)])
    await ops.on_events([event(track_id=3, zone_id="platform-2")])
    assert len(ops.list_incidents(IncidentFilter()).items) == 3


async def test_event_outside_dedup_window_opens_new_incident(ops: OpsService) -> None:
    await ops.on_events([event(observed_at=T0 - timedelta(hours=2))])
    await ops.on_events([event(observed_at=T0 - timedelta(minutes=1))])  # window is 30 min
    assert len(ops.list_incidents(IncidentFilter()).items) == 2


async def test_end_auto_resolves_only_where_rule_says(ops: OpsService) -> None:
    before = T0 - timedelta(seconds=60)
    parking = event(EventKind.ILLEGAL_PARKING, zone_id="bay-1", observed_at=before)
    end = event(EventKind.ILLEGAL_PARKING, zone_id="bay-1", phase=Phase.END, observed_at=T0)
    await ops.on_events([parking])
    await ops.on_events([end])
    abandoned = event(EventKind.ABANDONED_OBJECT, observed_at=before)
    gone = event(EventKind.ABANDONED_OBJECT, phase=Phase.END, observed_at=T0)
    await ops.on_events([abandoned, gone])
    by_kind = {i.kind: i for i in ops.list_incidents(IncidentFilter()).items}
    assert by_kind[EventKind.ILLEGAL_PARKING].status is IncidentStatus.RESOLVED
    assert by_kind[EventKind.ABANDONED_OBJECT].status is IncidentStatus.OPEN
    assert by_kind[EventKind.ABANDONED_OBJECT].event_count == 2


async def test_end_without_open_incident_opens_nothing(ops: OpsService) -> None:
    await ops.on_events([event(phase=Phase.END)])
    assert ops.list_incidents(IncidentFilter()).items == []


async def test_lifecycle_is_audited_with_who_and_where(
    ops: OpsService, sessions: sessionmaker[Session], clock: ManualClock
) -> None:
    await ops.on_events([event()])
    incident_id = ops.list_incidents(IncidentFilter()).items[0].id
    clock.advance(timedelta(minutes=1))
    await ops.transition(incident_id, IncidentStatus.ACKNOWLEDGED, OPERATOR, note="seen it")
    clock.advance(timedelta(minutes=1))
    await ops.transition(incident_id, IncidentStatus.DISPATCHED, OPERATOR, assignee="patrol-12")
    await ops.set_checklist(incident_id, 1, done=True, actor=OPERATOR)
    clock.advance(timedelta(minutes=5))
    done = await ops.transition(incident_id, IncidentStatus.RESOLVED, OPERATOR)
    assert done.acknowledged_at == T0 + timedelta(minutes=1)
    assert done.dispatched_at == T0 + timedelta(minutes=2)
    assert done.closed_at == T0 + timedelta(minutes=7)
    assert done.assignee == "patrol-12"
    assert done.checklist[1].done
    assert done.checklist[1].done_by == OPERATOR.name
    assert done.notes[0].text == "seen it"
    with sessions() as session:
        trail = list(reversed(list_audit(session, target_id=incident_id)))
    assert [a.action for a in trail] == [
        "incident.created",
        "incident.acknowledged",
        "incident.dispatched",
        "incident.checklist",
        "incident.resolved",
    ]
    assert {(a.actor, a.source) for a in trail[1:]} == {(OPERATOR.name, "10.0.0.7")}
    assert trail[0].actor == "system"
    assert trail[2].at == T0 + timedelta(minutes=2)
    with pytest.raises(InvalidTransitionError, match="resolved to acknowledged"):
        await ops.transition(incident_id, IncidentStatus.ACKNOWLEDGED, OPERATOR)


async def test_unknown_incident_and_checklist_item_are_named(ops: OpsService) -> None:
    with pytest.raises(NotFoundError) as missing:
        await ops.transition("nope", IncidentStatus.ACKNOWLEDGED, OPERATOR)
    assert missing.value.field == "incident_id"
    await ops.on_events([event()])
    incident_id = ops.list_incidents(IncidentFilter()).items[0].id
    with pytest.raises(NotFoundError) as item:
        await ops.set_checklist(incident_id, 99, done=True, actor=OPERATOR)
    assert item.value.field == "index"


async def test_sla_breach_escalates_at_configured_time(
    ops: OpsService, clock: ManualClock, sessions: sessionmaker[Session]
) -> None:
    seen = _changes(ops)
    await ops.on_events([event()])  # abandoned_object: ack 2 min, resolve 30 min, high
    incident_id = seen[0].incident.id
    clock.set(T0 + timedelta(minutes=2) - timedelta(seconds=1))
    assert await ops.check_sla() == []
    clock.set(T0 + timedelta(minutes=2))
    breached = await ops.check_sla()
    assert len(breached) == 1
    assert breached[0].type is ChangeType.SLA_BREACHED
    assert breached[0].detail["deadline"] == "ack"
    assert breached[0].notify == ["supervisor"]
    assert breached[0].incident.severity is Severity.CRITICAL
    assert breached[0].incident.ack_breached
    assert breached[0].incident.escalation_level == 1
    clock.advance(timedelta(minutes=5))
    assert await ops.check_sla() == []  # a breach fires once
    await ops.transition(incident_id, IncidentStatus.ACKNOWLEDGED, OPERATOR)
    clock.set(T0 + timedelta(minutes=30))
    late = await ops.check_sla()
    assert [c.detail["deadline"] for c in late] == ["resolve"]
    assert late[0].incident.escalation_level == 2
    assert late[0].incident.severity is Severity.CRITICAL  # capped
    with sessions() as session:
        actions = [
            a.action for a in session.scalars(select(AuditEntry).where(AuditEntry.source == "sla"))
        ]
    assert actions == ["incident.sla_breached", "incident.sla_breached"]
    assert [i.id for i in ops.list_incidents(IncidentFilter(breached=True)).items] == [incident_id]


async def test_acknowledged_in_time_is_not_breached(ops: OpsService, clock: ManualClock) -> None:
    await ops.on_events([event()])
    incident_id = ops.list_incidents(IncidentFilter()).items[0].id
    clock.advance(timedelta(minutes=1))
    await ops.transition(incident_id, IncidentStatus.ACKNOWLEDGED, OPERATOR)
    clock.advance(timedelta(minutes=10))
    assert await ops.check_sla() == []


async def test_failing_listener_does_not_stop_the_others(ops: OpsService) -> None:
    async def broken(_change: IncidentChange) -> None:
        raise RuntimeError("department system down")

    ops.add_listener(broken)
    seen = _changes(ops)
    await ops.on_events([event()])
    assert len(seen) == 1


async def test_list_is_scoped_and_paged(ops: OpsService) -> None:
    for track in range(5):
        await ops.on_events([event(track_id=track)])
    await ops.on_events([event(EventKind.ILLEGAL_PARKING, zone_id="bay-1")])
    police = ops.list_incidents(IncidentFilter(), frozenset({"traffic-enforcement"}))
    assert [i.kind for i in police.items] == [EventKind.ILLEGAL_PARKING]
    first = ops.list_incidents(IncidentFilter(limit=4), frozenset({"civil-protection"}))
    assert len(first.items) == 4
    assert first.next_cursor is not None
    rest = ops.list_incidents(
        IncidentFilter(limit=4, cursor=first.next_cursor), frozenset({"civil-protection"})
    )
    assert len(rest.items) == 1
    assert rest.next_cursor is None
    ids = [i.id for i in first.items + rest.items]
    assert ids == sorted(ids, reverse=True)


async def test_list_by_severity_pages_most_severe_first(ops: OpsService) -> None:
    severities = [Severity.LOW, Severity.CRITICAL, Severity.LOW, Severity.MEDIUM, Severity.CRITICAL]
    for track, severity in enumerate(severities):  # crowding: the event's severity is kept
        await ops.on_events([event(EventKind.CROWDING, track_id=track, severity=severity)])
    pages = [ops.list_incidents(IncidentFilter(by_severity=True, limit=2))]
    while pages[-1].next_cursor is not None:
        query = IncidentFilter(by_severity=True, limit=2, cursor=pages[-1].next_cursor)
        pages.append(ops.list_incidents(query))
    rows = [i for page in pages for i in page.items]
    assert [p.next_cursor is None for p in pages] == [False, False, True]
    assert [(i.severity.rank, i.id) for i in rows] == sorted(
        ((i.severity.rank, i.id) for i in rows), reverse=True
    )
    assert [i.severity for i in rows[:2]] == [Severity.CRITICAL, Severity.CRITICAL]
    assert pages[0].next_cursor == f"{rows[1].severity.rank}:{rows[1].id}"


@pytest.mark.parametrize("cursor", ["x", "9:0190", "3:", ":0190", "²:0190"])
def test_list_by_severity_refuses_a_forged_cursor(ops: OpsService, cursor: str) -> None:
    with pytest.raises(InvalidQueryError, match="cursor: not a cursor of this queue") as caught:
        ops.list_incidents(IncidentFilter(by_severity=True, cursor=cursor))
    assert caught.value.status == 422
    assert caught.value.field == "cursor"
