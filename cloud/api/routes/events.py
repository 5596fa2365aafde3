"""Events from the store: filtered, paged, one with its snapshot, and aggregates."""

from datetime import UTC, datetime
from typing import Annotated, Final, Literal

from fastapi import APIRouter, Depends, Path, Query, Response
from pydantic import ValidationError
from sqlalchemy import select

from cloud.api.context import ApiContext
from cloud.api.deps import Ctx, Kinds, Require, Severities, visible_devices
from cloud.api.problems import ApiError, Problem
from cloud.api.schemas import Hotspot
from cloud.db.devices import Device
from cloud.ops.roles import Permission, Principal
from cloud.store.base import BBox, CountBucket, EventPage, EventQuery
from shared.events import Event, EventKind, Severity

router = APIRouter(prefix="/api/v1/events", tags=["events"])
_ERRORS: dict[int | str, dict[str, object]] = {
    401: {"model": Problem},
    403: {"model": Problem},
    422: {"model": Problem},
}
Reader = Annotated[Principal, Depends(Require(Permission.EVENTS_READ))]
_ID = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$"


def parse_bbox(text: str | None) -> BBox | None:
    if text is None:
        return None
    parts = text.split(",")
    if len(parts) != 4:  # noqa: PLR2004
        raise ApiError(422, "bbox: give min_lat,min_lon,max_lat,max_lon", field="bbox")
    try:
        min_lat, min_lon, max_lat, max_lon = (float(p) for p in parts)
        box = BBox(min_lat=min_lat, min_lon=min_lon, max_lat=max_lat, max_lon=max_lon)
    except (ValueError, ValidationError) as exc:
        raise ApiError(422, f"bbox: {exc.__class__.__name__}: not 4 valid numbers", "bbox") from exc
    if box.min_lat > box.max_lat or box.min_lon > box.max_lon:
        raise ApiError(422, "bbox: min must not exceed max", field="bbox")
    return box


EARLIEST: Final = datetime(1970, 1, 1, tzinfo=UTC)
LATEST: Final = datetime(2262, 4, 11, tzinfo=UTC)
"""The stores keep nanoseconds since 1970 in 64 bits (InfluxDB): times outside are refused."""


def checked_time(name: str, value: datetime | None) -> datetime | None:
    """*value* in UTC; 422 naming *name* without a time zone or outside 1970-2262."""
    if value is None:
        return None
    if value.tzinfo is None or value.utcoffset() is None:
        raise ApiError(422, f"{name}: give a time zone (e.g. Z)", field=name)
    try:
        value = value.astimezone(UTC)
    except OverflowError as exc:
        raise ApiError(422, f"{name}: out of range", field=name) from exc
    if not EARLIEST <= value < LATEST:
        raise ApiError(422, f"{name}: must be between 1970 and 2262", field=name)
    return value


def build_query(
    ctx: ApiContext,
    principal: Principal,
    *,
    start: datetime | None,
    end: datetime | None,
    kind: list[EventKind],
    device_id: list[str],
    zone_id: list[str],
    severity: list[Severity],
    bbox: str | None,
    limit: int = 100,
    cursor: str | None = None,
) -> EventQuery | None:
    """The store query, narrowed to the caller's devices; None when nothing can match."""
    start, end = checked_time("start", start), checked_time("end", end)
    if start is not None and end is not None and end < start:
        raise ApiError(422, "end: must not be before start", field="end")
    devices = list(device_id)
    allowed = visible_devices(ctx, principal)
    if allowed is not None:
        devices = [d for d in devices if d in allowed] if devices else sorted(allowed)
        if not devices:
            return None
    return EventQuery(
        start=start,
        end=end,
        kinds=kind,
        device_ids=devices,
        zone_ids=zone_id,
        severities=severity,
        bbox=parse_bbox(bbox),
        limit=limit,
        cursor=cursor,
    )


Start = Annotated[datetime | None, Query(description="From (inclusive), ISO 8601 with zone.")]
End = Annotated[datetime | None, Query(description="Until (exclusive), ISO 8601 with zone.")]
DeviceIds = Annotated[list[Annotated[str, Query(pattern=r"^[a-z0-9][a-z0-9_-]{0,62}$")]], Query()]
ZoneIds = Annotated[list[Annotated[str, Query(pattern=_ID)]], Query()]
BBoxText = Annotated[
    str | None,
    Query(
        max_length=100,
        description="min_lat,min_lon,max_lat,max_lon",
        examples=["38.70,-9.15,38.72,-9.12"],
    ),
]


@router.get("", responses=_ERRORS)
async def list_events(
    *,
    ctx: Ctx,
    principal: Reader,
    start: Start = None,
    end: End = None,
    kind: Kinds = [],  # noqa: B006 - FastAPI copies defaults
    device_id: DeviceIds = [],  # noqa: B006
    zone_id: ZoneIds = [],  # noqa: B006
    severity: Severities = [],  # noqa: B006
    bbox: BBoxText = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    cursor: Annotated[str | None, Query(max_length=200)] = None,
) -> EventPage:
    """Events newest first, with cursor paging; snapshots are left out (see ``/{id}``)."""
    query = build_query(
        ctx,
        principal,
        start=start,
        end=end,
        kind=kind,
        device_id=device_id,
        zone_id=zone_id,
        severity=severity,
        bbox=bbox,
        limit=limit,
        cursor=cursor,
    )
    if query is None:
        return EventPage(items=[])
    try:
        page = await ctx.store.query_events(query)
    except ValueError as exc:  # a cursor from elsewhere
        raise ApiError(422, f"cursor: {exc}", field="cursor") from exc
    return EventPage(
        items=[e.model_copy(update={"snapshot": None}) for e in page.items],
        next_cursor=page.next_cursor,
    )


@router.get("/counts", responses=_ERRORS)
async def count_events(
    *,
    ctx: Ctx,
    principal: Reader,
    group_by: Literal["kind", "zone_id", "device_id"] = "kind",
    interval_s: Annotated[int | None, Query(ge=60, le=31 * 86400)] = None,
    start: Start = None,
    end: End = None,
    kind: Kinds = [],  # noqa: B006
    device_id: DeviceIds = [],  # noqa: B006
    zone_id: ZoneIds = [],  # noqa: B006
    severity: Severities = [],  # noqa: B006
    bbox: BBoxText = None,
) -> list[CountBucket]:
    """Counts per kind, zone or device, optionally per time interval, from the store."""
    query = build_query(
        ctx,
        principal,
        start=start,
        end=end,
        kind=kind,
        device_id=device_id,
        zone_id=zone_id,
        severity=severity,
        bbox=bbox,
    )
    if query is None:
        return []
    return await ctx.store.count_events(query, group_by, interval_s)


@router.get("/hotspots", responses=_ERRORS)
async def hotspots(
    *,
    ctx: Ctx,
    principal: Reader,
    start: Start = None,
    end: End = None,
    kind: Kinds = [],  # noqa: B006
    severity: Severities = [],  # noqa: B006
    bbox: BBoxText = None,
    top: Annotated[int, Query(ge=1, le=100)] = 10,
) -> list[Hotspot]:
    """The devices with the most events, with their place on the map."""
    query = build_query(
        ctx,
        principal,
        start=start,
        end=end,
        kind=kind,
        device_id=[],
        zone_id=[],
        severity=severity,
        bbox=bbox,
    )
    if query is None:
        return []
    buckets = await ctx.store.count_events(query, "device_id", None)
    buckets = sorted(buckets, key=lambda b: b.count, reverse=True)[:top]
    with ctx.sessions() as session:
        rows = {
            r.id: r
            for r in session.scalars(select(Device).where(Device.id.in_([b.key for b in buckets])))
        }
    return [
        Hotspot(
            device_id=b.key,
            count=b.count,
            site=rows[b.key].site if b.key in rows else "",
            lat=rows[b.key].lat if b.key in rows else None,
            lon=rows[b.key].lon if b.key in rows else None,
        )
        for b in buckets
    ]


async def _event(ctx: ApiContext, principal: Principal, event_id: str) -> Event:
    event = await ctx.store.get_event(event_id)
    if event is None:
        raise ApiError(404, f"no event {event_id!r}", field="event_id")
    allowed = visible_devices(ctx, principal)
    if allowed is not None and event.device_id not in allowed:
        raise ApiError(403, "event of a device in another department")
    return event


EventIdPath = Annotated[str, Path(min_length=1, max_length=36)]


@router.get("/{event_id}", responses={**_ERRORS, 404: {"model": Problem}})
async def get_event(*, ctx: Ctx, principal: Reader, event_id: EventIdPath) -> Event:
    """One event, snapshot included (base64 JPEG)."""
    return await _event(ctx, principal, event_id)


@router.get(
    "/{event_id}/snapshot",
    responses={
        **_ERRORS,
        404: {"model": Problem},
        200: {"content": {"image/jpeg": {}}, "description": "The JPEG."},
    },
    response_class=Response,
)
async def get_snapshot(*, ctx: Ctx, principal: Reader, event_id: EventIdPath) -> Response:
    """The event's snapshot as ``image/jpeg``."""
    event = await _event(ctx, principal, event_id)
    if event.snapshot is None:
        raise ApiError(404, "this event has no snapshot", field="event_id")
    return Response(event.snapshot.data, media_type="image/jpeg")
