"""The console's main screen: open incidents, most urgent (severity) first, then newest."""

from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import and_, case, or_, select
from sqlalchemy.orm import Session

from cloud.db.ops import Incident
from cloud.ops.models import IncidentOut, IncidentStatus
from shared.events import EventKind, Severity

OPEN_STATUSES = (IncidentStatus.OPEN, IncidentStatus.ACKNOWLEDGED, IncidentStatus.DISPATCHED)
_rank = case({s.value: s.rank for s in Severity}, value=Incident.severity, else_=0)


class QueueFilter(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")
    statuses: list[IncidentStatus] = Field(default_factory=list)
    """Empty: every open status."""
    departments: list[str] = Field(default_factory=list)
    kinds: list[EventKind] = Field(default_factory=list)
    severities: list[Severity] = Field(default_factory=list)
    cursor: str | None = Field(default=None, max_length=64)
    """``<severity rank>:<incident id>`` of the last row of the previous page."""
    limit: int = Field(default=100, ge=1, le=500)


class QueuePage(BaseModel):
    model_config = ConfigDict(frozen=True)
    items: list[IncidentOut]
    next_cursor: str | None = None


def open_queue(session: Session, query: QueueFilter, visible: frozenset[str] | None) -> QueuePage:
    """A page of the queue; *visible* limits departments (None: all)."""
    statuses = [s for s in query.statuses if s in OPEN_STATUSES] or list(OPEN_STATUSES)
    stmt = (
        select(Incident, _rank)
        .where(Incident.status.in_([s.value for s in statuses]))
        .order_by(_rank.desc(), Incident.id.desc())
        .limit(query.limit + 1)
    )
    departments = set(query.departments) if query.departments else None
    if visible is not None:
        departments = departments & visible if departments is not None else set(visible)
    if departments is not None:
        stmt = stmt.where(Incident.department.in_(sorted(departments)))
    if query.kinds:
        stmt = stmt.where(Incident.kind.in_([k.value for k in query.kinds]))
    if query.severities:
        stmt = stmt.where(Incident.severity.in_([s.value for s in query.severities]))
    if query.cursor:
        rank_text, _, last_id = query.cursor.partition(":")
        if not rank_text.isdigit() or not last_id:
            raise ValueError("cursor: not a cursor of this queue")
        rank = int(rank_text)
        stmt = stmt.where(or_(_rank < rank, and_(_rank == rank, Incident.id < last_id)))
    rows = session.execute(stmt).all()
    more = len(rows) > query.limit
    rows = rows[: query.limit]
    last = rows[-1] if rows else None
    return QueuePage(
        items=[IncidentOut.of(row[0]) for row in rows],
        next_cursor=f"{last[1]}:{last[0].id}" if more and last is not None else None,
    )
