"""``InfluxEventStore``: events and telemetry in InfluxDB through the v1 HTTP API (httpx).

``/write`` (gzip line protocol, precision ns) and InfluxQL ``GET /query`` are the endpoints that
InfluxDB 1.x, 2.x (v1 compatibility) and 3 Core all serve. Auth: HTTP Basic for 1.x users, or
``Authorization: Token`` for 2.x/3.x. Schema and idempotency: see ``cloud.store.line_protocol``.
"""

import asyncio
import base64
import gzip
import logging
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

import httpx

from cloud.settings import InfluxSettings
from cloud.store.base import (
    CountBucket,
    EventPage,
    EventQuery,
    StoreRejectedError,
    StoreUnavailableError,
)
from cloud.store.line_protocol import (
    EVENTS,
    SNAPSHOT_FIELDS,
    TELEMETRY,
    event_line,
    lines,
    telemetry_line,
)
from cloud.store.records import (
    Cursor,
    check_group_by,
    event_from_body,
    telemetry_from_body,
    to_us,
)
from shared.events import Event, Snapshot
from shared.ids import is_uuid7, uuid7_ms
from shared.telemetry import Telemetry

log = logging.getLogger(__name__)

_GROUP_TAG = {"kind": "kind", "zone_id": "zone", "device_id": "device"}
_HTTP_BAD_REQUEST = 400
_HTTP_NOT_FOUND = 404
_HTTP_NO_CONTENT = 204
T = TypeVar("T")
WRITE_CHUNK = 1000
"""Points per ``/write`` request. The chunks of one batch are sent as soon as each is built, so
InfluxDB parses and indexes chunk k while the line protocol of chunk k+1 is being made."""
_MS = 1_000_000
_EDGE_MARGIN = 32
"""Extra rows fetched so that events dropped by the exact bound check do not shorten a page."""


def quote_ident(name: str) -> str:
    return '"' + name.replace("\\", "\\\\").replace('"', '\\"') + '"'


def quote_str(value: str) -> str:
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def _ns(value: datetime) -> int:
    return to_us(value) * 1000


class InfluxEventStore:
    """``EventStore`` on InfluxDB; measurements ``events`` and ``telemetry``."""

    def __init__(self, settings: InfluxSettings) -> None:
        self.settings = settings
        headers = {}
        auth: httpx.BasicAuth | None = None
        if settings.token is not None:
            headers["Authorization"] = f"Token {settings.token.get_secret_value()}"
        elif settings.username is not None:
            password = settings.password.get_secret_value() if settings.password else ""
            auth = httpx.BasicAuth(settings.username, password)
        self._client = httpx.AsyncClient(
            base_url=settings.url.rstrip("/"),
            headers=headers,
            auth=auth,
            timeout=settings.timeout_s,
        )
        db = quote_ident(settings.database)
        rp = quote_ident(settings.retention_policy) if settings.retention_policy else ""
        self._from_events = f"{db}.{rp}.{EVENTS}"
        self._from_telemetry = f"{db}.{rp}.{TELEMETRY}"

    # ------------------------------------------------------------------ transport

    async def _request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        try:
            return await self._client.request(method, path, **kwargs)
        except httpx.HTTPError as exc:
            raise StoreUnavailableError(
                f"InfluxDB at {self.settings.url} unreachable: {type(exc).__name__}: {exc}"
            ) from exc

    async def _query(self, q: str, *, post: bool = False) -> list[dict[str, Any]]:
        """Run InfluxQL; return the ``series`` of the first result (``[]`` when empty)."""
        params = {"db": self.settings.database, "q": q, "epoch": "ns"}
        if self.settings.retention_policy:
            params["rp"] = self.settings.retention_policy
        resp = await self._request("POST" if post else "GET", "/query", params=params)
        if resp.status_code >= _HTTP_BAD_REQUEST:
            raise _error(resp, "query")
        results = resp.json().get("results", [])
        if not results:
            return []
        first: dict[str, Any] = results[0]
        if "error" in first:
            if first["error"].startswith("database not found"):
                raise StoreUnavailableError(f"InfluxDB query: {first['error']}")
            raise ValueError(f"InfluxDB query refused: {first['error']}")
        series: list[dict[str, Any]] = first.get("series", [])
        return series

    async def _write(self, body: bytes) -> None:
        params = {"db": self.settings.database, "precision": "ns"}
        if self.settings.retention_policy:
            params["rp"] = self.settings.retention_policy
        headers = {"Content-Type": "text/plain; charset=utf-8"}
        if self.settings.gzip:
            body = gzip.compress(body, compresslevel=1)
            headers["Content-Encoding"] = "gzip"
        resp = await self._request("POST", "/write", params=params, content=body, headers=headers)
        if resp.status_code != _HTTP_NO_CONTENT:
            raise _error(resp, "write")

    # ------------------------------------------------------------------ EventStore

    async def setup(self) -> None:
        """Create the database and retention policy on 1.x; 2.x/3.x buckets are made by admins."""
        resp = await self._request("GET", "/ping")
        if resp.status_code != _HTTP_NO_CONTENT:
            raise _error(resp, "ping")
        if self.settings.token is not None:
            return
        db = quote_ident(self.settings.database)
        await self._admin(f"CREATE DATABASE {db}")
        s = self.settings
        if s.retention_policy and s.retention_duration:
            rp = quote_ident(s.retention_policy)
            existing = await self._admin(f"SHOW RETENTION POLICIES ON {db}")
            names = {row[0] for series in existing for row in series.get("values", [])}
            verb = "ALTER" if s.retention_policy in names else "CREATE"
            await self._admin(
                f"{verb} RETENTION POLICY {rp} ON {db} DURATION {s.retention_duration}"
                " REPLICATION 1"
            )

    async def _admin(self, q: str) -> list[dict[str, Any]]:
        resp = await self._request("POST", "/query", params={"q": q})
        if resp.status_code >= _HTTP_BAD_REQUEST:
            raise _error(resp, "setup")
        first = resp.json().get("results", [{}])[0]
        if "error" in first:
            verb = q.split(maxsplit=1)[0]
            raise StoreUnavailableError(f"InfluxDB setup {verb}: {first['error']}")
        series: list[dict[str, Any]] = first.get("series", [])
        return series

    async def close(self) -> None:
        await self._client.aclose()

    async def write_events(self, events: Sequence[Event]) -> None:
        await self._write_chunked(events, event_line)

    async def write_events_with_sources(
        self, events: Sequence[Event], sources: Sequence[bytes]
    ) -> None:
        """``write_events``, keeping each event's source JSON as its body where it can."""
        pairs = list(zip(events, sources, strict=True))
        await self._write_chunked(pairs, _sourced_line)

    async def write_telemetry(self, items: Sequence[Telemetry]) -> None:
        await self._write_chunked(items, telemetry_line)

    async def _write_chunked(self, items: Sequence[T], line: Callable[[T], str]) -> None:
        """Write *items* in chunks sent concurrently; done only when every chunk is written.

        A chunk that fails fails the whole call (the caller retries all of it: rewriting a point
        is idempotent). ``StoreUnavailableError`` wins over ``StoreRejectedError``, so that an
        outage is retried rather than turned into dead letters.
        """
        sent: list[asyncio.Task[None]] = []
        try:
            for start in range(0, len(items), WRITE_CHUNK):
                body = lines(line(item) for item in items[start : start + WRITE_CHUNK])
                sent.append(asyncio.create_task(self._write(body)))
                await asyncio.sleep(0)  # let the request go out before building the next chunk
            results = await asyncio.gather(*sent, return_exceptions=True)
        finally:
            for task in sent:
                task.cancel()  # no-op for finished ones; on cancellation, abandons the rest
        errors = [r for r in results if isinstance(r, BaseException)]
        for error in errors:
            if isinstance(error, StoreUnavailableError):
                raise error
        if errors:
            raise errors[0]

    async def query_events(self, query: EventQuery) -> EventPage:
        """Newest first, paged by the point time.

        Point times are observed_at to the millisecond (see ``line_protocol``), so the time
        bounds are widened to whole milliseconds in InfluxQL and applied exactly here.
        """
        where = _where(query)
        if query.cursor is not None:
            where.append(f"time < {Cursor.decode(query.cursor).ts}")
        q = (
            f'SELECT "id", "body" FROM {self._from_events}'  # noqa: S608 - values are quoted
            + (" WHERE " + " AND ".join(where) if where else "")
            + f" ORDER BY time DESC LIMIT {query.limit + 1 + _EDGE_MARGIN}"
        )
        series = await self._query(q)
        rows: list[list[Any]] = series[0]["values"] if series else []
        kept = [
            (row, event)
            for row in rows
            if _within(event := event_from_body(row[2]), query.start, query.end)
        ]
        items = [event for _, event in kept[: query.limit]]
        next_cursor = None
        if len(kept) > query.limit:
            last = kept[query.limit - 1][0]
            next_cursor = Cursor(ts=int(last[0]), event_id=str(last[1])).encode()
        return EventPage(items=items, next_cursor=next_cursor)

    async def get_event(self, event_id: str) -> Event | None:
        if not is_uuid7(event_id):
            return None
        snaps = ", ".join(f'"snap_{i}"' for i in range(SNAPSHOT_FIELDS))
        base = (
            f'SELECT "body", "snap_w", "snap_h", {snaps} FROM {self._from_events}'  # noqa: S608
            f' WHERE "id" = {quote_str(event_id)}'
        )
        # The id is minted when the event is emitted, near observed_at; look there first, then
        # everywhere (replayed footage can carry an observed_at far before its id).
        id_ns = uuid7_ms(event_id) * 1_000_000
        day = int(timedelta(days=1).total_seconds() * 1e9)
        series = await self._query(f"{base} AND time >= {id_ns - day} AND time <= {id_ns + day}")
        if not series:
            series = await self._query(base)
        if not series:
            return None
        row = series[0]["values"][0]
        body, width, height, *chunks = row[1:]
        snapshot = None
        if width is not None:
            data = base64.b64decode("".join(c for c in chunks if c))
            snapshot = Snapshot(data=data, width=int(width), height=int(height))
        return event_from_body(body, snapshot)

    async def count_events(
        self, query: EventQuery, group_by: str, interval_s: int | None = None
    ) -> list[CountBucket]:
        key = _GROUP_TAG[check_group_by(group_by)]
        where = _where(query)
        group = quote_ident(key)
        if interval_s is not None:
            if interval_s < 1:
                raise ValueError("interval_s: must be at least 1 second")
            if query.start is None:
                where.append("time >= 0")
            group = f"time({interval_s}s), {group} fill(none)"
        q = (
            f'SELECT count("id") FROM {self._from_events}'  # noqa: S608
            + (" WHERE " + " AND ".join(where) if where else "")
            + f" GROUP BY {group}"
        )
        buckets: list[CountBucket] = []
        for series in await self._query(q):
            name = str(series.get("tags", {}).get(key, ""))
            for ts, count in series["values"]:
                start = None
                if interval_s is not None:
                    start = datetime.fromtimestamp(ts / 1e9, tz=UTC)
                buckets.append(CountBucket(key=name, start=start, count=int(count)))
        buckets.sort(key=lambda b: (b.start or _EPOCH_MIN, b.key))
        return buckets

    async def recent_telemetry(self, device_id: str, limit: int = 20) -> list[Telemetry]:
        q = (
            f'SELECT "body" FROM {self._from_telemetry}'  # noqa: S608
            f' WHERE "device" = {quote_str(device_id)} ORDER BY time DESC LIMIT {int(limit)}'
        )
        series = await self._query(q)
        rows = series[0]["values"] if series else []
        return [telemetry_from_body(row[1]) for row in rows]


_EPOCH_MIN = datetime.fromtimestamp(0, tz=UTC)


def _error(resp: httpx.Response, what: str) -> Exception:
    text = resp.text[:300]
    if resp.status_code == _HTTP_BAD_REQUEST:
        return StoreRejectedError(f"InfluxDB {what} refused (400): {text}")
    if resp.status_code == _HTTP_NOT_FOUND:
        return StoreUnavailableError(f"InfluxDB {what}: 404 {text}")
    return StoreUnavailableError(f"InfluxDB {what} failed ({resp.status_code}): {text}")


def _sourced_line(pair: tuple[Event, bytes]) -> str:
    return event_line(pair[0], pair[1])


def _within(event: Event, start: datetime | None, end: datetime | None) -> bool:
    t = event.observed_at
    return (start is None or t >= start) and (end is None or t < end)


def _or(tag_name: str, values: Sequence[str]) -> str:
    return "(" + " OR ".join(f"{quote_ident(tag_name)} = {quote_str(v)}" for v in values) + ")"


def _where(query: EventQuery) -> list[str]:
    where: list[str] = []
    if query.start is not None:
        where.append(f"time >= {_ns(query.start) // _MS * _MS}")
    if query.end is not None:
        where.append(f"time < {-(-_ns(query.end) // _MS) * _MS}")
    if query.kinds:
        where.append(_or("kind", [k.value for k in query.kinds]))
    if query.device_ids:
        where.append(_or("device", query.device_ids))
    if query.zone_ids:
        where.append(_or("zone", query.zone_ids))
    if query.severities:
        where.append(_or("severity", [s.value for s in query.severities]))
    if query.bbox is not None:
        b = query.bbox
        where.append(
            f'"lat" >= {b.min_lat!r} AND "lat" <= {b.max_lat!r}'
            f' AND "lon" >= {b.min_lon!r} AND "lon" <= {b.max_lon!r}'
        )
    return where
