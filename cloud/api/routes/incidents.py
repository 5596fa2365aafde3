"""Incidents: the department queues, the lifecycle, notes, checklist, audit trail."""

# ruff: noqa: FAST003 - ``incident_id`` is read by the IncidentScope dependency (scope check)

import asyncio
from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query, Request, Response

from cloud.api.context import ApiContext
from cloud.api.deps import (
    MAX_ROW_ID,
    Ctx,
    Departments,
    IncidentScope,
    Kinds,
    Require,
    Severities,
    Statuses,
    request_actor,
    visible_devices,
)
from cloud.api.problems import ApiError, Problem
from cloud.api.schemas import (
    ActionBody,
    AssignBody,
    ChecklistBody,
    DispatchBody,
    IncidentDetail,
    NoteBody,
)
from cloud.ops.audit import list_audit
from cloud.ops.models import AuditOut, IncidentOut, IncidentStatus
from cloud.ops.roles import Permission, Principal
from cloud.ops.rules import Department
from cloud.ops.service import IncidentFilter, IncidentPage

router = APIRouter(prefix="/api/v1", tags=["incidents"])
_ERRORS: dict[int | str, dict[str, object]] = {
    401: {"model": Problem},
    403: {"model": Problem},
    404: {"model": Problem},
    422: {"model": Problem},
}
_ACTION_ERRORS: dict[int | str, dict[str, object]] = {**_ERRORS, 409: {"model": Problem}}
Readable = Annotated[IncidentOut, Depends(IncidentScope(Permission.INCIDENTS_READ))]
Writable = Annotated[IncidentOut, Depends(IncidentScope(Permission.INCIDENTS_WRITE))]


@router.get("/departments", tags=["incidents"], responses=_ERRORS)
def list_departments(
    *, ctx: Ctx, principal: Annotated[Principal, Depends(Require(Permission.INCIDENTS_READ))]
) -> list[Department]:
    """The municipal services incidents are routed to (those the caller may see)."""
    return [d for d in ctx.ops.router.departments if principal.sees(d.id)]


@router.get("/incidents", responses=_ERRORS, response_model=IncidentPage)
def list_incidents(
    *,
    ctx: Ctx,
    principal: Annotated[Principal, Depends(Require(Permission.INCIDENTS_READ))],
    status: Statuses = [],  # noqa: B006 - FastAPI copies
    department: Departments = [],  # noqa: B006
    kind: Kinds = [],  # noqa: B006
    severity: Severities = [],  # noqa: B006
    device_id: Annotated[str | None, Query(pattern=r"^[a-z0-9][a-z0-9_-]{0,62}$")] = None,
    breached: Annotated[bool | None, Query(description="Only (not) past an SLA.")] = None,
    cursor: Annotated[str | None, Query(max_length=36)] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
) -> Response:
    """A department queue: incidents newest first, only of the caller's departments."""
    query = IncidentFilter(
        statuses=status,
        departments=department,
        kinds=kind,
        severities=severity,
        device_id=device_id,
        breached=breached,
        cursor=cursor,
        limit=limit,
    )
    page = ctx.ops.list_incidents(query, principal.department_scope)
    # The hottest read of a console: serialised once here instead of re-validated by FastAPI.
    return Response(page.model_dump_json(), media_type="application/json")


@router.get("/incidents/{incident_id}", responses=_ERRORS)
def get_incident(*, ctx: Ctx, incident: Readable) -> IncidentDetail:
    """One incident with the ids of its events."""
    return IncidentDetail(**incident.model_dump(), event_ids=ctx.ops.event_ids(incident.id))


@router.get("/incidents/{incident_id}/audit", responses=_ERRORS)
def incident_audit(
    *,
    ctx: Ctx,
    incident: Readable,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> list[AuditOut]:
    """Every change of the incident: who, what, when, from where (newest first)."""
    with ctx.sessions() as session:
        return list_audit(session, target_type="incident", target_id=incident.id, limit=limit)


async def _transition(
    ctx: Ctx,
    request: Request,
    incident: IncidentOut,
    target: IncidentStatus,
    body: ActionBody | None,
    *,
    assignee: str | None = None,
) -> IncidentOut:
    note = body.note if body is not None else None
    actor = request_actor(request)
    return await ctx.ops.transition(incident.id, target, actor, note=note, assignee=assignee)


@router.post("/incidents/{incident_id}/acknowledge", responses=_ACTION_ERRORS)
async def acknowledge(
    *, ctx: Ctx, request: Request, incident: Writable, body: ActionBody | None = None
) -> IncidentOut:
    """``open`` → ``acknowledged``; stops the acknowledgement SLA."""
    return await _transition(ctx, request, incident, IncidentStatus.ACKNOWLEDGED, body)


@router.post("/incidents/{incident_id}/dispatch", responses=_ACTION_ERRORS)
async def dispatch(
    *, ctx: Ctx, request: Request, incident: Writable, body: DispatchBody | None = None
) -> IncidentOut:
    """``acknowledged`` → ``dispatched``, optionally naming the assignee (a patrol, a team)."""
    target = IncidentStatus.DISPATCHED
    assignee = body.assignee if body is not None else None
    return await _transition(ctx, request, incident, target, body, assignee=assignee)


@router.post("/incidents/{incident_id}/resolve", responses=_ACTION_ERRORS)
async def resolve(
    *, ctx: Ctx, request: Request, incident: Writable, body: ActionBody | None = None
) -> IncidentOut:
    """Close the incident as handled."""
    return await _transition(ctx, request, incident, IncidentStatus.RESOLVED, body)


@router.post("/incidents/{incident_id}/false-alarm", responses=_ACTION_ERRORS)
async def false_alarm(
    *, ctx: Ctx, request: Request, incident: Writable, body: ActionBody | None = None
) -> IncidentOut:
    """Close the incident as a false alarm."""
    return await _transition(ctx, request, incident, IncidentStatus.FALSE_ALARM, body)


@router.post("/incidents/{incident_id}/notes", responses=_ERRORS)
async def add_note(
    *, ctx: Ctx, request: Request, incident: Writable, body: NoteBody
) -> IncidentOut:
    """Add a note to the incident's log."""
    actor = request_actor(request)
    return await ctx.ops.add_note(incident.id, body.text, actor)


@router.put("/incidents/{incident_id}/assignee", responses=_ERRORS)
async def assign(
    *, ctx: Ctx, request: Request, incident: Writable, body: AssignBody
) -> IncidentOut:
    """Set (or clear, with null) who is handling the incident."""
    actor = request_actor(request)
    return await ctx.ops.assign(incident.id, body.assignee, actor)


@router.put("/incidents/{incident_id}/checklist/{index}", responses=_ERRORS)
async def set_checklist(
    *,
    ctx: Ctx,
    request: Request,
    incident: Writable,
    index: Annotated[int, Path(ge=0, le=100)],
    body: ChecklistBody,
) -> IncidentOut:
    """Tick (or untick) a step of the incident's SOP checklist."""
    if incident.status.closed:
        raise ApiError(409, "the incident is closed", field="status")
    actor = request_actor(request)
    return await ctx.ops.set_checklist(incident.id, index, done=body.done, actor=actor)


@router.get("/audit", tags=["audit"], responses=_ERRORS)
async def audit_log(
    *,
    ctx: Ctx,
    principal: Annotated[Principal, Depends(Require(Permission.AUDIT_READ))],
    target_type: Annotated[str | None, Query(max_length=32)] = None,
    target_id: Annotated[str | None, Query(max_length=128)] = None,
    actor: Annotated[str | None, Query(max_length=128)] = None,
    before_id: Annotated[int | None, Query(ge=1, le=MAX_ROW_ID)] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> list[AuditOut]:
    """The whole audit trail, newest first (supervisors and admins).

    A department-scoped key sees the rows of its departments' incidents and devices only.
    """
    return await asyncio.to_thread(
        _scoped_audit,
        ctx,
        principal,
        {"target_type": target_type, "target_id": target_id, "actor": actor},
        before_id,
        limit,
    )


def _scoped_audit(
    ctx: ApiContext,
    principal: Principal,
    filters: dict[str, str | None],
    before_id: int | None,
    limit: int,
) -> list[AuditOut]:
    if principal.all_departments:
        with ctx.sessions() as session:
            return list_audit(session, **filters, before_id=before_id, limit=limit)
    devices = visible_devices(ctx, principal) or frozenset()
    kept: list[AuditOut] = []
    # Rows out of scope are skipped, so read on in pages until the page is full.
    while len(kept) < limit:
        with ctx.sessions() as session:
            batch = list_audit(session, **filters, before_id=before_id, limit=limit)
        kept.extend(e for e in batch if _audit_visible(ctx, principal, devices, e))
        if len(batch) < limit:
            break
        before_id = batch[-1].id
    return kept[:limit]


def _audit_visible(
    ctx: ApiContext, principal: Principal, devices: frozenset[str], entry: AuditOut
) -> bool:
    if entry.target_type == "incident":
        incident = ctx.ops.get(entry.target_id)
        return incident is not None and principal.sees(incident.department)
    if entry.target_type == "device":
        return entry.target_id in devices
    return False  # no department to judge by: all-department callers only
