"""Typed views of incidents, their changes and audit entries (what listeners and the API see)."""

from datetime import datetime
from enum import StrEnum
from typing import Any, Final

from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import Row

from cloud.db.ops import AuditEntry, Incident
from shared.events import EventKind, Severity


class IncidentStatus(StrEnum):
    OPEN = "open"
    ACKNOWLEDGED = "acknowledged"
    DISPATCHED = "dispatched"
    RESOLVED = "resolved"
    FALSE_ALARM = "false_alarm"

    @property
    def closed(self) -> bool:
        return self in {IncidentStatus.RESOLVED, IncidentStatus.FALSE_ALARM}


TRANSITIONS: Final[dict[IncidentStatus, frozenset[IncidentStatus]]] = {
    IncidentStatus.OPEN: frozenset(
        {IncidentStatus.ACKNOWLEDGED, IncidentStatus.RESOLVED, IncidentStatus.FALSE_ALARM}
    ),
    IncidentStatus.ACKNOWLEDGED: frozenset(
        {IncidentStatus.DISPATCHED, IncidentStatus.RESOLVED, IncidentStatus.FALSE_ALARM}
    ),
    IncidentStatus.DISPATCHED: frozenset({IncidentStatus.RESOLVED, IncidentStatus.FALSE_ALARM}),
    IncidentStatus.RESOLVED: frozenset(),
    IncidentStatus.FALSE_ALARM: frozenset(),
}


class ChangeType(StrEnum):
    CREATED = "created"
    ATTACHED = "attached"
    """Another event of the same situation was added."""
    ACKNOWLEDGED = "acknowledged"
    DISPATCHED = "dispatched"
    RESOLVED = "resolved"
    FALSE_ALARM = "false_alarm"
    ASSIGNED = "assigned"
    NOTE = "note"
    CHECKLIST = "checklist"
    SLA_BREACHED = "sla_breached"
    """A deadline passed; ``detail.deadline`` is ``ack`` or ``resolve``; severity may have risen."""


class _Out(BaseModel):
    model_config = ConfigDict(frozen=True)


class ChecklistItem(_Out):
    text: str
    done: bool = False
    done_by: str | None = None
    done_at: datetime | None = None


class Note(_Out):
    at: datetime
    author: str
    text: str


class IncidentOut(_Out):
    id: str
    kind: EventKind
    department: str
    rule: str
    severity: Severity
    status: IncidentStatus
    title: str
    device_id: str
    camera_id: str | None
    zone_id: str | None
    lat: float | None
    lon: float | None
    first_event_id: str
    last_event_id: str
    event_count: int
    last_event_at: datetime
    assignee: str | None
    checklist: list[ChecklistItem]
    notes: list[Note]
    opened_at: datetime
    acknowledged_at: datetime | None
    dispatched_at: datetime | None
    closed_at: datetime | None
    ack_due_at: datetime | None
    resolve_due_at: datetime | None
    ack_breached: bool
    resolve_breached: bool
    escalation_level: int
    updated_at: datetime

    @classmethod
    def of(cls, row: Incident | Row[Any]) -> "IncidentOut":
        """From the database row: one validation in pydantic-core (the queue's hot path)."""
        return cls.model_validate(row, from_attributes=True)


class IncidentChange(_Out):
    """Sent to every ``OpsService`` listener after a change is committed."""

    type: ChangeType
    incident: IncidentOut
    actor: str
    at: datetime
    detail: dict[str, Any] = Field(default_factory=dict)
    notify: list[str] = Field(
        default_factory=list, description="Roles to alert (e.g. supervisor on an SLA breach)."
    )


class AuditOut(_Out):
    id: int
    at: datetime
    actor: str
    role: str
    source: str
    user_agent: str
    action: str
    target_type: str
    target_id: str
    detail: dict[str, Any]

    @classmethod
    def of(cls, row: AuditEntry) -> "AuditOut":
        return cls(
            id=row.id,
            at=row.at,
            actor=row.actor,
            role=row.role,
            source=row.source,
            user_agent=row.user_agent,
            action=row.action,
            target_type=row.target_type,
            target_id=row.target_id,
            detail=dict(row.detail),
        )
