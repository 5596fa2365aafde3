"""The ingestor's SQL side: ids already stored, dead letters, and the device registry.

Synchronous SQLAlchemy; the service calls it through ``asyncio.to_thread``.
"""

from collections.abc import Iterable, Sequence
from datetime import datetime

from sqlalchemy import Connection, Engine, Executable, delete, func, insert, select, text
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from cloud.db.devices import Device
from cloud.db.ingest import DeadLetter, SeenEvent
from cloud.ingest.batch import DeviceUpdate, Rejection
from shared.ids import canonical_uuid7_ms

_CHUNK = 500
"""Ids per ``IN (...)``: well under SQLite's bound-parameter limit."""


_SQLITE_INSERT_SEEN = (
    f"INSERT INTO {SeenEvent.__tablename__} ({SeenEvent.id.key}, {SeenEvent.id_ms.key})"  # noqa: S608 - names from the model, values bound
    " VALUES (?, ?) ON CONFLICT DO NOTHING"
)
"""``sqlite.insert(SeenEvent).on_conflict_do_nothing()`` as ``sqlite3`` takes it (qmark style)."""
_POSTGRES_INSERT_SEEN = text(
    f"INSERT INTO {SeenEvent.__tablename__} ({SeenEvent.id.key}, {SeenEvent.id_ms.key})"  # noqa: S608 - names from the model, values bound
    " SELECT * FROM unnest(CAST(:ids AS VARCHAR[]), CAST(:ms AS BIGINT[]))"
    " ON CONFLICT DO NOTHING"
)
"""``postgresql.insert(SeenEvent).on_conflict_do_nothing()`` for a whole batch in one statement."""


def _chunks(items: Sequence[str]) -> Iterable[Sequence[str]]:
    for i in range(0, len(items), _CHUNK):
        yield items[i : i + _CHUNK]


class IngestState:
    def __init__(self, engine: Engine, dead_letter_payload_bytes: int = 2048) -> None:
        self.engine = engine
        self.payload_bytes = dead_letter_payload_bytes
        self._insert_seen = self._insert_ignore()

    def known_ids(self, ids: Sequence[str]) -> set[str]:
        """The subset of *ids* already stored by this or an earlier run."""
        known: set[str] = set()
        with self.engine.connect() as conn:
            for chunk in _chunks(ids):
                rows = conn.execute(select(SeenEvent.id).where(SeenEvent.id.in_(chunk)))
                known.update(row[0] for row in rows)
        return known

    def commit(
        self,
        new_ids: Sequence[str],
        rejections: Sequence[Rejection],
        devices: Iterable[DeviceUpdate],
    ) -> None:
        """Record one stored batch in a single transaction."""
        with Session(self.engine) as session, session.begin():
            if new_ids:
                self._remember(session.connection(), new_ids)
            if rejections:
                session.execute(insert(DeadLetter), [self._dead_letter(r) for r in rejections])
            self._update_devices(session, list(devices))

    def _remember(self, conn: Connection, ids: Sequence[str]) -> None:
        """Insert *ids* (validated UUIDv7 strings) into the seen ids, skipping ones already there.

        Core statements, not an ORM bulk insert (no per-row ORM bookkeeping), and the id's
        milliseconds read from its hex digits rather than parsed into a ``uuid.UUID``.
        SQLite: one ``sqlite3`` executemany of tuples (it loops in C). PostgreSQL: one statement
        for the whole batch, two arrays unnested (an executemany is a round trip or a pipelined
        statement per id). Others: SQLAlchemy's executemany of the dialect's insert-or-ignore.
        """
        dialect = conn.dialect.name
        if dialect == "sqlite":
            # canonical_uuid7_ms(i), inlined: one call less per id.
            rows = [(i, int(i[:8] + i[9:13], 16)) for i in ids]
            conn.exec_driver_sql(_SQLITE_INSERT_SEEN, rows)
        elif dialect == "postgresql":
            ms = [canonical_uuid7_ms(i) for i in ids]
            conn.execute(_POSTGRES_INSERT_SEEN, {"ids": list(ids), "ms": ms})
        else:
            rows_ = [{"id": i, "id_ms": canonical_uuid7_ms(i)} for i in ids]
            conn.execute(self._insert_seen, rows_)

    def _insert_ignore(self) -> Executable:
        if self.engine.dialect.name == "postgresql":
            return postgresql.insert(SeenEvent).on_conflict_do_nothing()
        if self.engine.dialect.name == "sqlite":
            return sqlite.insert(SeenEvent).on_conflict_do_nothing()
        return insert(SeenEvent).prefix_with("IGNORE")  # MySQL/MariaDB

    def _dead_letter(self, r: Rejection) -> dict[str, object]:
        payload = r.received.payload[: self.payload_bytes].decode("utf-8", errors="replace")
        return {
            "received_at": r.received.received_at,
            "topic": _text(r.received.topic[:256]),
            "device_id": r.device_id,
            "reason": r.reason.value,
            "field": None if r.field is None else _text(r.field[:128]),
            "detail": _text(r.detail),
            "payload": _text(payload),
        }

    @staticmethod
    def _update_devices(session: Session, updates: list[DeviceUpdate]) -> None:
        if not updates:
            return
        ids = [u.device_id for u in updates]
        rows = {d.id: d for d in session.scalars(select(Device).where(Device.id.in_(ids)))}
        for u in updates:
            device = rows.get(u.device_id)
            if device is None:
                device = Device(id=u.device_id)
                session.add(device)
            _apply(device, u)

    def trim_dead_letters(self, keep: int) -> int:
        """Delete all but the newest *keep* dead letters; return how many went."""
        with Session(self.engine) as session, session.begin():
            newest = session.scalar(select(func.max(DeadLetter.id)))
            if newest is None or newest <= keep:
                return 0
            result = session.execute(delete(DeadLetter).where(DeadLetter.id <= newest - keep))
            return int(getattr(result, "rowcount", 0) or 0)

    def forget_before(self, oldest: datetime) -> int:
        """Drop remembered ids minted before *oldest* (outside the dedup window)."""
        with Session(self.engine) as session, session.begin():
            result = session.execute(
                delete(SeenEvent).where(SeenEvent.id_ms < int(oldest.timestamp() * 1000))
            )
            return int(getattr(result, "rowcount", 0) or 0)


def _text(value: str) -> str:
    """*value* without U+0000: PostgreSQL text cannot hold it (the commit would fail for good)."""
    return value.replace("\x00", "\ufffd")


def _newer(new: datetime | None, old: datetime | None) -> bool:
    return new is not None and (old is None or new >= old)


def _apply(device: Device, u: DeviceUpdate) -> None:
    if _newer(u.last_seen, device.last_seen):
        device.last_seen = u.last_seen
    if u.online is not None and _newer(u.last_status_at, device.last_status_at):
        device.online = u.online
        device.last_status_at = u.last_status_at
    t = u.last_telemetry
    if t is not None and _newer(t.ts, device.last_telemetry_at):
        device.last_telemetry_at = t.ts
        device.last_telemetry = t.model_dump(mode="json", exclude_none=True)
    if _newer(u.last_event_at, device.last_event_at):
        device.last_event_at = u.last_event_at
    if u.config_acked_version is not None:
        device.config_acked_version = u.config_acked_version
    if u.config_ack_message is not None:
        device.config_ack_message = _text(u.config_ack_message)
