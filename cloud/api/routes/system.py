"""Health, readiness, Prometheus metrics, the caller's identity and the ingest dead letters."""

import asyncio
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Response
from sqlalchemy import select, text

from cloud.api.deps import MAX_ROW_ID, Ctx, Require, visible_devices
from cloud.api.problems import ApiError, Problem
from cloud.api.schemas import DeadLetterOut, DeadLetterPage, Health200, Me, Ready
from cloud.ops.roles import ROLE_PERMISSIONS, Permission, Principal
from cloud.store.base import EventQuery

router = APIRouter(tags=["system"])
_READY_TIMEOUT_S = 3.0


@router.get("/healthz")
async def healthz() -> Health200:
    """The process is up."""
    return Health200()


@router.get("/readyz", responses={503: {"model": Ready}})
async def readyz(ctx: Ctx, response: Response) -> Ready:
    """Database, store and (when enabled) MQTT answer."""
    checks: dict[str, Any] = {}
    try:
        with ctx.sessions() as session:
            session.execute(text("SELECT 1"))
        checks["database"] = "ok"
    except Exception as exc:  # noqa: BLE001 - any failure means not ready; reported, not raised
        checks["database"] = f"error: {exc.__class__.__name__}"
    try:
        await asyncio.wait_for(ctx.store.query_events(EventQuery(limit=1)), _READY_TIMEOUT_S)
        checks["store"] = "ok"
    except Exception as exc:  # noqa: BLE001 - idem
        checks["store"] = f"error: {exc.__class__.__name__}"
    if ctx.mqtt is not None:
        checks["mqtt"] = "ok" if ctx.mqtt.connected.is_set() else "disconnected"
    ready = all(v == "ok" for v in checks.values())
    response.status_code = 200 if ready else 503
    return Ready(status="ready" if ready else "not_ready", checks=checks)


@router.get(
    "/metrics",
    response_class=Response,
    responses={200: {"content": {"text/plain": {}}, "description": "Prometheus text format."}},
)
def metrics(ctx: Ctx) -> Response:
    """Prometheus metrics of the API (and of the ingestor when it runs in this process)."""
    return Response(ctx.metrics.render(), media_type="text/plain; version=0.0.4")


@router.get("/api/v1/me", responses={401: {"model": Problem}})
def me(
    principal: Annotated[Principal, Depends(Require(Permission.DEVICES_READ))],
) -> Me:
    """Who the API key belongs to and what it may do."""
    return Me(
        key_id=principal.key_id,
        name=principal.name,
        role=principal.role.value,
        departments=sorted(principal.departments),
        permissions=sorted(p.value for p in ROLE_PERMISSIONS[principal.role]),
    )


@router.get(
    "/api/v1/dead-letters",
    tags=["ingest"],
    responses={401: {"model": Problem}, 403: {"model": Problem}, 503: {"model": Problem}},
)
def dead_letters(
    *,
    ctx: Ctx,
    principal: Annotated[Principal, Depends(Require(Permission.DEAD_LETTERS_READ))],
    device_id: Annotated[str | None, Query(max_length=63)] = None,
    reason: Annotated[str | None, Query(max_length=32)] = None,
    cursor: Annotated[
        int | None, Query(ge=1, le=MAX_ROW_ID, description="Older than this id.")
    ] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> DeadLetterPage:
    """Messages ingest refused (reason, field, truncated payload), newest first.

    A department-scoped key sees those of its departments' devices only (none without a
    device id: a refused topic names no registered device).
    """
    try:
        from cloud.db.ingest import DeadLetter
    except ImportError as exc:
        raise ApiError(503, "dead letters are not available in this build") from exc
    stmt = select(DeadLetter).order_by(DeadLetter.id.desc()).limit(limit + 1)
    if device_id is not None:
        stmt = stmt.where(DeadLetter.device_id == device_id)
    if reason is not None:
        stmt = stmt.where(DeadLetter.reason == reason)
    if cursor is not None:
        stmt = stmt.where(DeadLetter.id < cursor)
    allowed = visible_devices(ctx, principal)
    if allowed is not None:
        stmt = stmt.where(DeadLetter.device_id.in_(sorted(allowed)))
    with ctx.sessions() as session:
        rows = list(session.scalars(stmt))
    more = len(rows) > limit
    rows = rows[:limit]
    items = [
        DeadLetterOut(
            id=r.id,
            received_at=r.received_at,
            topic=r.topic,
            device_id=r.device_id,
            reason=r.reason,
            field=r.field,
            detail=r.detail,
            payload=r.payload,
        )
        for r in rows
    ]
    return DeadLetterPage(items=items, next_cursor=str(rows[-1].id) if more and rows else None)
