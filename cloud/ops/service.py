"""``OpsService``: opens incidents from events by routing rules, runs their lifecycle and SLAs.

Every change is committed together with its audit row and what the notifiers write in the same
transaction (``add_notifier``: the dispatch outbox, the PostgreSQL fan-out), then announced to
listeners (``add_listener``: this process's live hub, metrics, the dispatch loop's wake-up).
"""

import asyncio
import logging
import threading
from collections.abc import Awaitable, Callable, Sequence
from datetime import timedelta
from typing import Any

from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import ColumnElement, Row, and_, case, func, or_, select, text
from sqlalchemy.orm import Session, sessionmaker

from cloud.db.devices import Device
from cloud.db.ops import Incident, IncidentEvent
from cloud.ops import audit
from cloud.ops.clock import Clock, SystemClock
from cloud.ops.errors import InvalidQueryError, InvalidTransitionError, NotFoundError
from cloud.ops.models import (
    TRANSITIONS,
    ChangeType,
    IncidentChange,
    IncidentOut,
    IncidentStatus,
)
from cloud.ops.roles import SYSTEM_INGEST, SYSTEM_SLA, Actor
from cloud.ops.rules import DeviceFacts, Escalation, Route, Router
from shared.events import Event, EventKind, Phase, Severity
from shared.ids import new_id

logger = logging.getLogger(__name__)

IncidentListener = Callable[[IncidentChange], Awaitable[None]]
ChangeNotifier = Callable[[Session, Sequence[IncidentChange]], None]
"""Called inside the transaction of the changes, just before commit: what it writes (dispatch
deliveries, PostgreSQL ``NOTIFY``) is committed if and only if the changes are."""
_SEVERITIES = list(Severity)
_OPEN_STATES = [
    IncidentStatus.OPEN.value,
    IncidentStatus.ACKNOWLEDGED.value,
    IncidentStatus.DISPATCHED.value,
]
_severity_rank = case({s.value: s.rank for s in Severity}, value=Incident.severity, else_=0)
_CURSOR_RANKS = frozenset(str(s.rank) for s in Severity)
_CHANGE_OF_STATUS = {
    IncidentStatus.ACKNOWLEDGED: ChangeType.ACKNOWLEDGED,
    IncidentStatus.DISPATCHED: ChangeType.DISPATCHED,
    IncidentStatus.RESOLVED: ChangeType.RESOLVED,
    IncidentStatus.FALSE_ALARM: ChangeType.FALSE_ALARM,
}


class IncidentFilter(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")
    statuses: list[IncidentStatus] = Field(default_factory=list)
    departments: list[str] = Field(default_factory=list)
    kinds: list[EventKind] = Field(default_factory=list)
    severities: list[Severity] = Field(default_factory=list)
    device_id: str | None = None
    breached: bool | None = None
    cursor: str | None = None
    limit: int = Field(default=50, ge=1, le=500)
    by_severity: bool = False
    """Most severe first, then newest (the console's queue); the cursor is ``<rank>:<id>``."""


class IncidentPage(BaseModel):
    model_config = ConfigDict(frozen=True)
    items: list[IncidentOut]
    next_cursor: str | None = None


def situation_key(event: Event) -> str:
    """Events with the same key describe one situation (same place, same tracked object)."""
    tracks = sorted(o.track_id for o in event.objects if o.track_id is not None)
    track = str(tracks[0]) if tracks else ""
    return "|".join(
        (event.kind.value, event.device_id, event.camera_id or "", event.zone_id or "", track)
    )


SLA_LOCK_KEY = 0x43_4F_53_4C_41  # "COSLA": the advisory lock of the SLA check


_LOCK_KEYS = text(
    "SELECT count(pg_advisory_xact_lock(hashtextextended(k, 0))) "
    "FROM (SELECT unnest(CAST(:keys AS text[])) AS k ORDER BY 1) AS s"
)


def _on_postgres(session: Session) -> bool:
    return session.get_bind().dialect.name == "postgresql"


def _lock_situations(session: Session, keys: Sequence[str]) -> None:
    """PostgreSQL: hold one transaction lock per situation key until commit.

    Two ingest processes with events of one situation then run the look-up-or-open one after
    the other, so the second sees the first's incident: one incident, never two. Keys are taken
    in sorted order, so two batches never wait on each other in a cycle. (SQLite: one process,
    serialised by ``OpsService._event_lock``.)
    """
    if keys:
        session.execute(_LOCK_KEYS, {"keys": sorted(set(keys))})


class OpsService:
    def __init__(
        self,
        sessions: sessionmaker[Session],
        router: Router,
        clock: Clock | None = None,
        *,
        notifiers: Sequence[ChangeNotifier] = (),
    ) -> None:
        self.sessions = sessions
        self.router = router
        self.clock: Clock = clock or SystemClock()
        self._notifiers: list[ChangeNotifier] = list(notifiers)
        self._listeners: list[IncidentListener] = []
        # One writer of incidents from events at a time: keeps dedup race-free across hooks.
        self._event_lock = threading.Lock()

    # ------------------------------------------------------------------ listeners

    def add_notifier(self, notifier: ChangeNotifier) -> None:
        """``notifier(session, changes)`` inside every transaction that commits changes."""
        self._notifiers.append(notifier)

    def add_listener(self, callback: IncidentListener) -> None:
        """``await callback(change)`` after every committed incident change."""
        self._listeners.append(callback)

    async def _announce(self, changes: Sequence[IncidentChange]) -> None:
        for change in changes:
            for listener in self._listeners:
                try:
                    await listener(change)
                except Exception:
                    logger.exception("incident listener %r failed", listener)

    # ------------------------------------------------------------------ events

    async def on_events(self, events: Sequence[Event]) -> None:
        """``EventHook`` for the ingestor: route new events to incidents."""
        if not events:
            return
        changes = await asyncio.to_thread(self.apply_events, events)
        await self._announce(changes)

    def apply_events(self, events: Sequence[Event]) -> list[IncidentChange]:
        with self._event_lock, self.sessions() as session:
            changes: list[IncidentChange] = []
            facts: dict[str, DeviceFacts] = {}
            if _on_postgres(session):
                _lock_situations(session, [situation_key(e) for e in events])
            for event in events:
                change = self._apply_event(session, event, facts)
                if change is not None:
                    changes.append(change)
            self._commit(session, changes)
            return changes

    def _commit(self, session: Session, changes: Sequence[IncidentChange]) -> None:
        if changes:
            # Flushed first: the rows are locked before the notifiers run, so what they write
            # (e.g. dispatch deliveries, ordered by id) follows the order changes commit in.
            session.flush()
            for notifier in self._notifiers:
                notifier(session, changes)
        session.commit()

    def _device_facts(self, session: Session, device_id: str) -> DeviceFacts:
        row = session.get(Device, device_id)
        if row is None:
            return DeviceFacts()
        return DeviceFacts(site=row.site, lat=row.lat, lon=row.lon)

    def _apply_event(
        self, session: Session, event: Event, facts: dict[str, DeviceFacts]
    ) -> IncidentChange | None:
        if session.get(IncidentEvent, event.id) is not None:
            return None  # the same event again: already counted
        if event.device_id not in facts:
            facts[event.device_id] = self._device_facts(session, event.device_id)
        device = facts[event.device_id]
        route = self.router.route(event, device)
        if route is None:
            return None
        key = situation_key(event)
        since = event.observed_at - timedelta(seconds=route.rule.dedup_window_s)
        current = session.scalars(
            select(Incident)
            .where(
                Incident.situation_key == key,
                Incident.status.in_(_OPEN_STATES),
                Incident.last_event_at >= since,
            )
            .order_by(Incident.id.desc())
            .limit(1)
        ).first()
        now = self.clock.now()
        if current is None:
            if event.phase is Phase.END:
                return None  # the end of a situation nobody opened (or already closed)
            incident = self._open(session, event, route, key, device, now)
            session.add(
                IncidentEvent(
                    event_id=event.id,
                    incident_id=incident.id,
                    phase=event.phase.value,
                    observed_at=event.observed_at,
                )
            )
            session.flush()
            return _change(ChangeType.CREATED, incident, SYSTEM_INGEST, now, {"event_id": event.id})
        return self._attach(session, current, event, now)

    def _open(  # noqa: PLR0917 - private helper, all parts of one opening
        self,
        session: Session,
        event: Event,
        route: Route,
        key: str,
        device: DeviceFacts,
        now: Any,
    ) -> Incident:
        rule = route.rule
        lat = event.location.lat if event.location else device.lat
        lon = event.location.lon if event.location else device.lon
        place = device.site or event.device_id
        zone = f", zone {event.zone_id}" if event.zone_id else ""
        title = event.summary or f"{event.kind.value.replace('_', ' ')} at {place}{zone}"
        incident = Incident(
            id=new_id(),
            kind=event.kind.value,
            department=rule.department,
            rule=rule.name,
            severity=route.severity.value,
            status=IncidentStatus.OPEN.value,
            title=title[:256],
            device_id=event.device_id,
            camera_id=event.camera_id,
            zone_id=event.zone_id,
            situation_key=key,
            lat=lat,
            lon=lon,
            first_event_id=event.id,
            last_event_id=event.id,
            event_count=1,
            last_event_at=event.observed_at,
            checklist=[{"text": step, "done": False} for step in rule.checklist],
            notes=[],
            auto_resolve_on_end=rule.auto_resolve_on_end,
            opened_at=now,
            ack_due_at=now + timedelta(minutes=rule.sla.ack_minutes)
            if rule.sla.ack_minutes
            else None,
            resolve_due_at=now + timedelta(minutes=rule.sla.resolve_minutes)
            if rule.sla.resolve_minutes
            else None,
            updated_at=now,
        )
        session.add(incident)
        detail = {"event_id": event.id, "rule": rule.name, "department": rule.department}
        _audit(session, SYSTEM_INGEST, "created", incident, now, detail)
        return incident

    def _attach(
        self, session: Session, incident: Incident, event: Event, now: Any
    ) -> IncidentChange:
        session.add(
            IncidentEvent(
                event_id=event.id,
                incident_id=incident.id,
                phase=event.phase.value,
                observed_at=event.observed_at,
            )
        )
        incident.event_count += 1
        incident.last_event_id = event.id
        incident.last_event_at = max(incident.last_event_at, event.observed_at)
        incident.updated_at = now
        if event.severity.rank > Severity(incident.severity).rank:
            incident.severity = event.severity.value
        change_type = ChangeType.ATTACHED
        detail: dict[str, Any] = {"event_id": event.id, "phase": event.phase.value}
        if event.phase is Phase.END and incident.auto_resolve_on_end:
            incident.status = IncidentStatus.RESOLVED.value
            incident.closed_at = now
            change_type = ChangeType.RESOLVED
            detail["reason"] = "the situation ended (auto_resolve_on_end)"
            _audit(session, SYSTEM_INGEST, "resolved", incident, now, detail)
        session.flush()
        return _change(change_type, incident, SYSTEM_INGEST, now, detail)

    # ------------------------------------------------------------------ reads

    def get(self, incident_id: str) -> IncidentOut | None:
        with self.sessions() as session:
            row = session.get(Incident, incident_id)
            return None if row is None else IncidentOut.of(row)

    def event_ids(self, incident_id: str) -> list[str]:
        with self.sessions() as session:
            return list(
                session.scalars(
                    select(IncidentEvent.event_id)
                    .where(IncidentEvent.incident_id == incident_id)
                    .order_by(IncidentEvent.observed_at)
                )
            )

    def list_incidents(
        self, query: IncidentFilter, visible: frozenset[str] | None = None
    ) -> IncidentPage:
        """Newest first (or ``by_severity``); *visible* limits departments (None: all)."""
        first = (_severity_rank.desc(),) if query.by_severity else ()
        # Rows, not ORM objects: a page is read, never changed, and validated in one step each.
        stmt = (
            select(*Incident.__table__.columns)
            .order_by(*first, Incident.id.desc())
            .limit(query.limit + 1)
        )
        if query.statuses:
            stmt = stmt.where(Incident.status.in_([s.value for s in query.statuses]))
        departments = set(query.departments) if query.departments else None
        if visible is not None:
            departments = departments & visible if departments is not None else set(visible)
        if departments is not None:
            stmt = stmt.where(Incident.department.in_(sorted(departments)))
        if query.kinds:
            stmt = stmt.where(Incident.kind.in_([k.value for k in query.kinds]))
        if query.severities:
            stmt = stmt.where(Incident.severity.in_([s.value for s in query.severities]))
        if query.device_id is not None:
            stmt = stmt.where(Incident.device_id == query.device_id)
        if query.breached is not None:
            either = Incident.ack_breached | Incident.resolve_breached
            stmt = stmt.where(either if query.breached else ~either)
        if query.cursor:
            stmt = stmt.where(_after(query.cursor, by_severity=query.by_severity))
        with self.sessions() as session:
            rows = list(session.execute(stmt))
        more = len(rows) > query.limit
        rows = rows[: query.limit]
        return IncidentPage(
            items=[IncidentOut.of(r) for r in rows],
            next_cursor=_cursor(rows[-1], by_severity=query.by_severity) if more and rows else None,
        )

    # ------------------------------------------------------------------ changes by people

    async def transition(
        self,
        incident_id: str,
        target: IncidentStatus,
        actor: Actor,
        *,
        note: str | None = None,
        assignee: str | None = None,
    ) -> IncidentOut:
        change = await asyncio.to_thread(
            self._transition, incident_id, target, actor, note, assignee
        )
        await self._announce([change])
        return change.incident

    def _load(self, session: Session, incident_id: str) -> Incident:
        row = session.get(Incident, incident_id)
        if row is None:
            raise NotFoundError(f"no incident {incident_id!r}", field="incident_id")
        return row

    def _transition(
        self,
        incident_id: str,
        target: IncidentStatus,
        actor: Actor,
        note: str | None,
        assignee: str | None,
    ) -> IncidentChange:
        now = self.clock.now()
        with self.sessions() as session:
            row = self._load(session, incident_id)
            current = IncidentStatus(row.status)
            if target not in TRANSITIONS[current]:
                raise InvalidTransitionError(
                    f"cannot go from {current.value} to {target.value}", field="status"
                )
            row.status = target.value
            if target is IncidentStatus.ACKNOWLEDGED:
                row.acknowledged_at = now
            elif target is IncidentStatus.DISPATCHED:
                row.dispatched_at = now
            else:
                row.closed_at = now
            detail: dict[str, Any] = {"from": current.value, "to": target.value}
            if assignee is not None:
                row.assignee = assignee
                detail["assignee"] = assignee
            if note:
                row.notes = [*row.notes, _note(now, actor, note)]
                detail["note"] = note
            row.updated_at = now
            _audit(session, actor, target.value, row, now, detail)
            change = _change(_CHANGE_OF_STATUS[target], row, actor, now, detail)
            self._commit(session, [change])
            return change

    async def add_note(self, incident_id: str, text: str, actor: Actor) -> IncidentOut:
        def work(row: Incident, now: Any) -> dict[str, Any]:
            row.notes = [*row.notes, _note(now, actor, text)]
            return {"note": text}

        return await self._edit(incident_id, actor, ChangeType.NOTE, work)

    async def assign(self, incident_id: str, assignee: str | None, actor: Actor) -> IncidentOut:
        def work(row: Incident, _now: Any) -> dict[str, Any]:
            before = row.assignee
            row.assignee = assignee
            return {"from": before, "to": assignee}

        return await self._edit(incident_id, actor, ChangeType.ASSIGNED, work)

    async def set_checklist(
        self, incident_id: str, index: int, *, done: bool, actor: Actor
    ) -> IncidentOut:
        def work(row: Incident, now: Any) -> dict[str, Any]:
            items = [dict(item) for item in row.checklist]
            if not 0 <= index < len(items):
                raise NotFoundError(
                    f"checklist has {len(items)} items; no item {index}", field="index"
                )
            items[index].update(
                done=done,
                done_by=actor.name if done else None,
                done_at=now.isoformat() if done else None,
            )
            row.checklist = items
            return {"index": index, "text": items[index]["text"], "done": done}

        return await self._edit(incident_id, actor, ChangeType.CHECKLIST, work)

    async def _edit(
        self,
        incident_id: str,
        actor: Actor,
        change_type: ChangeType,
        work: Callable[[Incident, Any], dict[str, Any]],
    ) -> IncidentOut:
        def run() -> IncidentChange:
            now = self.clock.now()
            with self.sessions() as session:
                row = self._load(session, incident_id)
                detail = work(row, now)
                row.updated_at = now
                _audit(session, actor, change_type.value, row, now, detail)
                change = _change(change_type, row, actor, now, detail)
                self._commit(session, [change])
                return change

        change = await asyncio.to_thread(run)
        await self._announce([change])
        return change.incident

    # ------------------------------------------------------------------ SLA

    async def check_sla(self) -> list[IncidentChange]:
        """Mark every deadline passed at ``clock.now()`` and escalate; announce the breaches."""
        changes = await asyncio.to_thread(self.apply_sla)
        await self._announce(changes)
        return changes

    def apply_sla(self) -> list[IncidentChange]:
        now = self.clock.now()
        changes: list[IncidentChange] = []
        with self.sessions() as session:
            if _on_postgres(session) and not session.scalar(
                select(func.pg_try_advisory_xact_lock(SLA_LOCK_KEY))
            ):
                return []  # another process is checking right now; it escalates, once
            ack_late = session.scalars(
                select(Incident).where(
                    Incident.status == IncidentStatus.OPEN.value,
                    Incident.ack_breached.is_(False),
                    Incident.ack_due_at <= now,
                )
            ).all()
            for row in ack_late:
                row.ack_breached = True
                changes.append(self._escalate(session, row, "ack", now))
            resolve_late = session.scalars(
                select(Incident).where(
                    Incident.status.in_(_OPEN_STATES),
                    Incident.resolve_breached.is_(False),
                    Incident.resolve_due_at <= now,
                )
            ).all()
            for row in resolve_late:
                row.resolve_breached = True
                changes.append(self._escalate(session, row, "resolve", now))
            self._commit(session, changes)
        return changes

    def _escalate(self, session: Session, row: Incident, deadline: str, now: Any) -> IncidentChange:
        rule = next((r for r in self.router.config.rules if r.name == row.rule), None)
        escalation = rule.escalation if rule is not None else Escalation()
        before = Severity(row.severity)
        if escalation.raise_severity:
            row.severity = _SEVERITIES[min(before.rank + 1, len(_SEVERITIES) - 1)].value
        row.escalation_level += 1
        row.updated_at = now
        due = row.ack_due_at if deadline == "ack" else row.resolve_due_at
        detail: dict[str, Any] = {
            "deadline": deadline,
            "due_at": due.isoformat() if due else None,
            "severity_from": before.value,
            "severity_to": row.severity,
            "escalation_level": row.escalation_level,
            "notify": list(escalation.notify),
        }
        _audit(session, SYSTEM_SLA, "sla_breached", row, now, detail)
        session.flush()
        return _change(
            ChangeType.SLA_BREACHED, row, SYSTEM_SLA, now, detail, notify=escalation.notify
        )


def _audit(  # noqa: PLR0917 - the parts of one audit row
    session: Session, actor: Actor, action: str, row: Incident, now: Any, detail: dict[str, Any]
) -> None:
    """Audit ``incident.<action>`` on *row*, committed with the change itself."""
    audit.record(
        session,
        actor,
        action=f"incident.{action}",
        target_type="incident",
        target_id=row.id,
        at=now,
        detail=detail,
    )


def _change(
    change_type: ChangeType,
    row: Incident,
    actor: Actor,
    now: Any,
    detail: dict[str, Any],
    *,
    notify: Sequence[str] = (),
) -> IncidentChange:
    """What listeners (live stream, dispatch) are told about a change to *row*."""
    return IncidentChange(
        type=change_type,
        incident=IncidentOut.of(row),
        actor=actor.name,
        at=now,
        detail=detail,
        notify=list(notify),
    )


def _note(now: Any, actor: Actor, text: str) -> dict[str, Any]:
    return {"at": now.isoformat(), "author": actor.name, "text": text}


def _after(cursor: str, *, by_severity: bool) -> ColumnElement[bool]:
    """The rows of a listing past *cursor*, the ``next_cursor`` of its previous page."""
    if not by_severity:
        return Incident.id < cursor
    rank_text, _, last_id = cursor.partition(":")
    if rank_text not in _CURSOR_RANKS or not last_id:
        raise InvalidQueryError("cursor: not a cursor of this queue", field="cursor")
    rank = int(rank_text)
    return or_(_severity_rank < rank, and_(_severity_rank == rank, Incident.id < last_id))


def _cursor(row: Incident | Row[Any], *, by_severity: bool) -> str:
    return f"{Severity(row.severity).rank}:{row.id}" if by_severity else row.id
