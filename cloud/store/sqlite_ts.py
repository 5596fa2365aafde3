"""``SqliteEventStore``: an embedded time-series store in one SQLite file (demo, small sites).

Events are rows keyed by their id (``INSERT OR IGNORE``: the same id twice is one row); the
snapshot JPEG lives in a side table read only by ``get_event``. Indexes put each filter column
before the time, so a filtered "newest first" page is an index range scan even at millions of rows.
"""

import asyncio
import sqlite3
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

from cloud.store.base import CountBucket, EventPage, EventQuery, StoreUnavailableError
from cloud.store.records import (
    Cursor,
    check_group_by,
    event_body,
    event_from_body,
    from_us,
    telemetry_body,
    telemetry_from_body,
    to_us,
)
from shared.events import Event, Snapshot
from shared.telemetry import Telemetry

T = TypeVar("T")

SCHEMA = """
CREATE TABLE IF NOT EXISTS events (
    id TEXT NOT NULL UNIQUE,
    ts_us INTEGER NOT NULL,
    device_id TEXT NOT NULL,
    camera_id TEXT,
    kind TEXT NOT NULL,
    zone_id TEXT,
    severity TEXT NOT NULL,
    phase TEXT NOT NULL,
    lat REAL,
    lon REAL,
    body TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS events_ts ON events (ts_us, id);
CREATE INDEX IF NOT EXISTS events_device_ts ON events (device_id, ts_us, id);
CREATE INDEX IF NOT EXISTS events_kind_ts ON events (kind, ts_us, id);
CREATE INDEX IF NOT EXISTS events_zone_ts ON events (zone_id, ts_us, id);
CREATE INDEX IF NOT EXISTS events_severity_ts ON events (severity, ts_us, id);
CREATE INDEX IF NOT EXISTS events_lat_lon ON events (lat, lon) WHERE lat IS NOT NULL;
CREATE TABLE IF NOT EXISTS event_snapshots (
    id TEXT PRIMARY KEY,
    content_type TEXT NOT NULL,
    width INTEGER NOT NULL,
    height INTEGER NOT NULL,
    data BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS telemetry (
    device_id TEXT NOT NULL,
    ts_us INTEGER NOT NULL,
    body TEXT NOT NULL,
    PRIMARY KEY (device_id, ts_us)
) WITHOUT ROWID;
"""

_GROUP_COLUMN = {"kind": "kind", "zone_id": "zone_id", "device_id": "device_id"}


class SqliteEventStore:
    """``EventStore`` in one SQLite file; writes are fsync'd (WAL, ``synchronous=FULL``)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._conn: sqlite3.Connection | None = None
        self._lock = threading.Lock()

    def _connect(self) -> sqlite3.Connection:
        if self._conn is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            conn = sqlite3.connect(self.path, check_same_thread=False, timeout=30)
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=FULL")
            conn.execute("PRAGMA cache_size=-65536")
            self._conn = conn
        return self._conn

    async def _run(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        def call() -> T:
            with self._lock:
                try:
                    return fn(self._connect())
                except sqlite3.OperationalError as exc:
                    raise StoreUnavailableError(f"sqlite store {self.path}: {exc}") from exc

        return await asyncio.to_thread(call)

    async def setup(self) -> None:
        await self._run(lambda conn: conn.executescript(SCHEMA))

    async def close(self) -> None:
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None

    async def write_events(self, events: Sequence[Event]) -> None:
        if not events:
            return
        rows = [
            (
                e.id,
                to_us(e.observed_at),
                e.device_id,
                e.camera_id,
                e.kind.value,
                e.zone_id,
                e.severity.value,
                e.phase.value,
                e.location.lat if e.location else None,
                e.location.lon if e.location else None,
                event_body(e),
            )
            for e in events
        ]
        snaps = [
            (e.id, e.snapshot.content_type, e.snapshot.width, e.snapshot.height, e.snapshot.data)
            for e in events
            if e.snapshot is not None
        ]

        def write(conn: sqlite3.Connection) -> None:
            with conn:
                conn.executemany(
                    "INSERT OR IGNORE INTO events (id, ts_us, device_id, camera_id, kind, zone_id,"
                    " severity, phase, lat, lon, body) VALUES (?,?,?,?,?,?,?,?,?,?,?)",
                    rows,
                )
                if snaps:
                    conn.executemany(
                        "INSERT OR IGNORE INTO event_snapshots (id, content_type, width, height,"
                        " data) VALUES (?,?,?,?,?)",
                        snaps,
                    )

        await self._run(write)

    async def write_telemetry(self, items: Sequence[Telemetry]) -> None:
        if not items:
            return
        rows = [(t.device_id, to_us(t.ts), telemetry_body(t)) for t in items]

        def write(conn: sqlite3.Connection) -> None:
            with conn:
                conn.executemany(
                    "INSERT OR REPLACE INTO telemetry (device_id, ts_us, body) VALUES (?,?,?)",
                    rows,
                )

        await self._run(write)

    async def query_events(self, query: EventQuery) -> EventPage:
        where, params = _where(query)
        if query.cursor is not None:
            cursor = Cursor.decode(query.cursor)
            where.append("(ts_us < ? OR (ts_us = ? AND id < ?))")
            params += [cursor.ts, cursor.ts, cursor.event_id]
        sql = (
            "SELECT id, ts_us, body FROM events"  # noqa: S608 - placeholders only
            + (" WHERE " + " AND ".join(where) if where else "")
            + " ORDER BY ts_us DESC, id DESC LIMIT ?"
        )
        params.append(query.limit + 1)
        rows: list[tuple[str, int, str]] = await self._run(
            lambda conn: conn.execute(sql, params).fetchall()
        )
        items = [event_from_body(body) for _, _, body in rows[: query.limit]]
        next_cursor = None
        if len(rows) > query.limit:
            last_id, last_ts, _ = rows[query.limit - 1]
            next_cursor = Cursor(ts=last_ts, event_id=last_id).encode()
        return EventPage(items=items, next_cursor=next_cursor)

    async def get_event(self, event_id: str) -> Event | None:
        def read(conn: sqlite3.Connection) -> tuple[Any, ...] | None:
            row: tuple[Any, ...] | None = conn.execute(
                "SELECT e.body, s.content_type, s.width, s.height, s.data FROM events e"
                " LEFT JOIN event_snapshots s ON s.id = e.id WHERE e.id = ?",
                (event_id,),
            ).fetchone()
            return row

        row = await self._run(read)
        if row is None:
            return None
        body, content_type, width, height, data = row
        snapshot = None
        if data is not None:
            snapshot = Snapshot(content_type=content_type, width=width, height=height, data=data)
        return event_from_body(body, snapshot)

    async def count_events(
        self, query: EventQuery, group_by: str, interval_s: int | None = None
    ) -> list[CountBucket]:
        column = _GROUP_COLUMN[check_group_by(group_by)]
        where, params = _where(query)
        clause = " WHERE " + " AND ".join(where) if where else ""
        if interval_s is None:
            sql = (
                f"SELECT COALESCE({column}, ''), NULL, COUNT(*) FROM events{clause}"  # noqa: S608
                f" GROUP BY 1 ORDER BY 1"
            )
        else:
            if interval_s < 1:
                raise ValueError("interval_s: must be at least 1 second")
            step = interval_s * 1_000_000
            sql = (
                f"SELECT COALESCE({column}, ''), (ts_us / {step}) * {step}, COUNT(*)"  # noqa: S608
                f" FROM events{clause} GROUP BY 1, 2 ORDER BY 2, 1"
            )
        rows: list[tuple[str, int | None, int]] = await self._run(
            lambda conn: conn.execute(sql, params).fetchall()
        )
        return [
            CountBucket(key=key, start=None if start is None else from_us(start), count=count)
            for key, start, count in rows
        ]

    async def recent_telemetry(self, device_id: str, limit: int = 20) -> list[Telemetry]:
        rows: list[tuple[str]] = await self._run(
            lambda conn: conn.execute(
                "SELECT body FROM telemetry WHERE device_id = ? ORDER BY ts_us DESC LIMIT ?",
                (device_id, limit),
            ).fetchall()
        )
        return [telemetry_from_body(body) for (body,) in rows]


def _in(column: str, values: Sequence[str], where: list[str], params: list[Any]) -> None:
    if values:
        where.append(f"{column} IN ({','.join('?' * len(values))})")
        params.extend(values)


def _where(query: EventQuery) -> tuple[list[str], list[Any]]:
    where: list[str] = []
    params: list[Any] = []
    if query.start is not None:
        where.append("ts_us >= ?")
        params.append(to_us(query.start))
    if query.end is not None:
        where.append("ts_us < ?")
        params.append(to_us(query.end))
    _in("kind", [k.value for k in query.kinds], where, params)
    _in("device_id", query.device_ids, where, params)
    _in("zone_id", query.zone_ids, where, params)
    _in("severity", [s.value for s in query.severities], where, params)
    if query.bbox is not None:
        b = query.bbox
        where.append("lat BETWEEN ? AND ? AND lon BETWEEN ? AND ?")
        params += [b.min_lat, b.max_lat, b.min_lon, b.max_lon]
    return where, params
