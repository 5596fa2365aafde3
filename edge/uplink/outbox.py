"""The durable outbox: SQLite (WAL, fsync on commit).

An event leaves it when the cloud confirms it stored it (``confirm``, delivery contract 2), or on
its PUBACK with ``uplink.delivery: broker`` (contract 1); telemetry leaves on its PUBACK. A
message the broker can never take (larger than its Maximum Packet Size) is moved to the
``dead_letters`` table, so the messages behind it flow.

Drop order when a bound is hit: expired messages, then telemetry, then events from low to high
severity; oldest first within each class. Every drop is counted, across restarts.
"""

import sqlite3
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from types import TracebackType
from typing import Final, Self

from edge.uplink.settings import OutboxSettings
from shared.events import Severity

TELEMETRY_PRIORITY: Final = -1
"""Below every severity rank: telemetry is dropped first."""
_AGE_CHECK_EVERY_S: Final = 1.0
ClockFn = Callable[[], float]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS outbox (
    seq        INTEGER PRIMARY KEY AUTOINCREMENT,
    kind       TEXT    NOT NULL,
    priority   INTEGER NOT NULL,
    topic      TEXT    NOT NULL,
    payload    BLOB    NOT NULL,
    size       INTEGER NOT NULL,
    message_id TEXT,
    created_at REAL    NOT NULL
);
CREATE INDEX IF NOT EXISTS outbox_drop_order ON outbox (priority, seq);
CREATE INDEX IF NOT EXISTS outbox_age ON outbox (created_at);
CREATE INDEX IF NOT EXISTS outbox_message_id ON outbox (message_id);
CREATE TABLE IF NOT EXISTS counters (name TEXT PRIMARY KEY, value INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS dead_letters (
    seq        INTEGER PRIMARY KEY,
    kind       TEXT    NOT NULL,
    topic      TEXT    NOT NULL,
    payload    BLOB    NOT NULL,
    size       INTEGER NOT NULL,
    message_id TEXT,
    created_at REAL    NOT NULL,
    moved_at   REAL    NOT NULL,
    reason     TEXT    NOT NULL
);
"""


class MessageKind(StrEnum):
    EVENT = "event"
    TELEMETRY = "telemetry"


@dataclass(frozen=True, slots=True)
class OutboxMessage:
    """What goes in: a topic and payload, with what decides its drop order."""

    kind: MessageKind
    topic: str
    payload: bytes
    severity: Severity | None = None
    message_id: str | None = None

    @property
    def priority(self) -> int:
        if self.kind is MessageKind.TELEMETRY or self.severity is None:
            return TELEMETRY_PRIORITY
        return self.severity.rank


@dataclass(frozen=True, slots=True)
class OutboxRow:
    """What comes out: the stored message with its sequence number (oldest is lowest)."""

    seq: int
    kind: MessageKind
    topic: str
    payload: bytes
    message_id: str | None


@dataclass(frozen=True, slots=True)
class OutboxStats:
    depth: int
    events: int
    telemetry: int
    bytes: int
    oldest_age_s: float | None
    dropped_events: int
    dropped_telemetry: int
    rejected: int
    """Messages the broker refused (e.g. reason code 135, not authorised): never retried."""
    dead_letters: int = 0
    """Messages moved to the ``dead_letters`` table (e.g. too large for the broker)."""


@dataclass(frozen=True, slots=True)
class DeadLetter:
    seq: int
    kind: str
    message_id: str | None
    size: int
    reason: str


class Outbox:
    """One writer per file (the agent); ``read_stats`` may read it from another process."""

    def __init__(self, settings: OutboxSettings, *, clock: ClockFn | None = None) -> None:
        self.settings = settings
        self.path = settings.path
        self._clock: ClockFn = clock or time.time
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._db = _connect(self.path)
        self._db.executescript(_SCHEMA)
        rows, size = self._db.execute(
            "SELECT COUNT(*), COALESCE(SUM(size), 0) FROM outbox"
        ).fetchone()
        self._rows: int = rows
        self._bytes: int = size
        self._next_age_check = 0.0

    # ------------------------------------------------------------------------------ writing

    def put(self, message: OutboxMessage) -> bool:
        """Store *message* durably; False if the bounds made it the one to drop."""
        return self.put_many([message]) == 1

    def put_many(self, messages: Sequence[OutboxMessage]) -> int:
        """Store *messages* in one fsync'd commit; how many of them the bounds kept."""
        now = self._clock()
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                if now >= self._next_age_check:
                    self._expire(now)
                    self._next_age_check = now + _AGE_CHECK_EVERY_S
                seqs = [self._insert(message, now) for message in messages]
                dropped = self._enforce_bounds()
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                self._reload_totals()
                raise
        return sum(1 for seq in seqs if seq not in dropped)

    def _insert(self, message: OutboxMessage, now: float) -> int | None:
        cur = self._db.execute(
            "INSERT INTO outbox (kind, priority, topic, payload, size, message_id, created_at) "
            "VALUES (?, ?, ?, ?, ?, ?, ?)",
            (
                message.kind.value,
                message.priority,
                message.topic,
                message.payload,
                len(message.payload),
                message.message_id,
                now,
            ),
        )
        self._rows += 1
        self._bytes += len(message.payload)
        return cur.lastrowid

    def peek(self, after_seq: int = 0, limit: int = 100) -> list[OutboxRow]:
        """Oldest messages with ``seq > after_seq``."""
        with self._lock:
            cur = self._db.execute(
                "SELECT seq, kind, topic, payload, message_id FROM outbox WHERE seq > ? "
                "ORDER BY seq LIMIT ?",
                (after_seq, limit),
            )
            return [
                OutboxRow(seq, MessageKind(kind), topic, bytes(payload), mid)
                for seq, kind, topic, payload, mid in cur.fetchall()
            ]

    def rows(self, seqs: Sequence[int]) -> list[OutboxRow]:
        """The rows of *seqs* still in the outbox (to send again), oldest first."""
        if not seqs:
            return []
        marks = ",".join("?" * len(seqs))
        with self._lock:
            cur = self._db.execute(
                "SELECT seq, kind, topic, payload, message_id FROM outbox "  # noqa: S608 - marks only
                f"WHERE seq IN ({marks}) ORDER BY seq",
                list(seqs),
            )
            return [
                OutboxRow(seq, MessageKind(kind), topic, bytes(payload), mid)
                for seq, kind, topic, payload, mid in cur.fetchall()
            ]

    def ack(self, seqs: Sequence[int]) -> None:
        """The broker acknowledged these: delete them (one transaction)."""
        self._delete(seqs)

    def confirm(self, message_ids: Sequence[str], *, refused: bool = False) -> int:
        """The cloud stored (or, *refused*, refused for good) these events: delete them by id.

        Returns how many were still here; refused ones are counted like broker refusals.
        """
        if not message_ids:
            return 0
        with self._lock:
            seqs = [
                row[0]
                for mid in message_ids
                for row in self._db.execute(
                    "SELECT seq FROM outbox WHERE message_id = ?", (mid,)
                ).fetchall()
            ]
        if refused:
            self.reject(seqs)
        else:
            self._delete(seqs)
        return len(seqs)

    def dead_letter(self, seq: int, reason: str) -> bool:
        """Move a message the broker can never take out of the queue, with the reason."""
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                moved = self._db.execute(
                    "INSERT INTO dead_letters (seq, kind, topic, payload, size, message_id, "
                    "created_at, moved_at, reason) SELECT seq, kind, topic, payload, size, "
                    "message_id, created_at, ?, ? FROM outbox WHERE seq = ?",
                    (self._clock(), reason, seq),
                ).rowcount
                if moved:
                    self._delete_locked([seq])
                    self._bump("dead_letters", 1)
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                self._reload_totals()
                raise
        return bool(moved)

    def dead_letters(self) -> list[DeadLetter]:
        with self._lock:
            return _dead_letters(self._db)

    def reject(self, seqs: Sequence[int]) -> None:
        """The broker refused these for good: delete and count them."""
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                removed = self._delete_locked(seqs)
                self._bump("rejected", removed)
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                self._reload_totals()
                raise

    def _delete(self, seqs: Sequence[int]) -> None:
        if not seqs:
            return
        with self._lock:
            # A delete lost in a power cut only means a re-send (a duplicate by id, which the
            # cloud drops), so deletes skip the fsync that puts must have.
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.execute("BEGIN IMMEDIATE")
            try:
                self._delete_locked(seqs)
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                self._reload_totals()
                raise
            finally:
                self._db.execute("PRAGMA synchronous=FULL")

    def _delete_locked(self, seqs: Sequence[int]) -> int:
        removed = 0
        for seq in seqs:
            row = self._db.execute(
                "DELETE FROM outbox WHERE seq = ? RETURNING size", (seq,)
            ).fetchone()
            if row is not None:
                removed += 1
                self._rows -= 1
                self._bytes -= row[0]
        return removed

    # ------------------------------------------------------------------------------ bounds

    def _expire(self, now: float) -> None:
        cutoff = now - self.settings.max_age_s
        rows = self._db.execute(
            "DELETE FROM outbox WHERE created_at < ? RETURNING kind, size", (cutoff,)
        ).fetchall()
        self._count_drops(rows)

    def _enforce_bounds(self) -> set[int]:
        dropped: set[int] = set()
        while self._rows > self.settings.max_rows or self._bytes > self.settings.max_bytes:
            excess = max(1, self._rows - self.settings.max_rows)
            victims = self._db.execute(
                "SELECT seq, kind, size FROM outbox ORDER BY priority, seq LIMIT ?", (excess,)
            ).fetchall()
            if not victims:
                break
            for seq, _kind, _size in victims:
                if self._rows <= self.settings.max_rows and self._bytes <= self.settings.max_bytes:
                    break
                row = self._db.execute(
                    "DELETE FROM outbox WHERE seq = ? RETURNING kind, size", (seq,)
                ).fetchone()
                dropped.add(seq)
                self._count_drops([row])
        return dropped

    def _count_drops(self, rows: Sequence[tuple[str, int]]) -> None:
        events = sum(1 for kind, _ in rows if kind == MessageKind.EVENT.value)
        self._bump("dropped_events", events)
        self._bump("dropped_telemetry", len(rows) - events)
        self._rows -= len(rows)
        self._bytes -= sum(size for _, size in rows)

    def _bump(self, name: str, by: int) -> None:
        if by:
            self._db.execute(
                "INSERT INTO counters (name, value) VALUES (?, ?) "
                "ON CONFLICT (name) DO UPDATE SET value = value + excluded.value",
                (name, by),
            )

    def _reload_totals(self) -> None:
        rows, size = self._db.execute(
            "SELECT COUNT(*), COALESCE(SUM(size), 0) FROM outbox"
        ).fetchone()
        self._rows, self._bytes = rows, size

    # ------------------------------------------------------------------------------ reading

    @property
    def depth(self) -> int:
        return self._rows

    def stats(self) -> OutboxStats:
        with self._lock:
            return _stats(self._db, self._clock())

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def _connect(path: Path) -> sqlite3.Connection:
    db = sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=30)
    db.execute("PRAGMA journal_mode=WAL")
    # FULL: every COMMIT fsyncs the WAL, so an event stored here survives a power cut.
    db.execute("PRAGMA synchronous=FULL")
    return db


def _stats(db: sqlite3.Connection, now: float) -> OutboxStats:
    counts = dict(db.execute("SELECT kind, COUNT(*) FROM outbox GROUP BY kind").fetchall())
    size, oldest = db.execute(
        "SELECT COALESCE(SUM(size), 0), MIN(created_at) FROM outbox"
    ).fetchone()
    counters = dict(db.execute("SELECT name, value FROM counters").fetchall())
    events = int(counts.get(MessageKind.EVENT.value, 0))
    telemetry = int(counts.get(MessageKind.TELEMETRY.value, 0))
    return OutboxStats(
        depth=events + telemetry,
        events=events,
        telemetry=telemetry,
        bytes=int(size),
        oldest_age_s=None if oldest is None else max(0.0, now - float(oldest)),
        dropped_events=int(counters.get("dropped_events", 0)),
        dropped_telemetry=int(counters.get("dropped_telemetry", 0)),
        rejected=int(counters.get("rejected", 0)),
        dead_letters=int(counters.get("dead_letters", 0)),
    )


def _dead_letters(db: sqlite3.Connection) -> list[DeadLetter]:
    cur = db.execute("SELECT seq, kind, message_id, size, reason FROM dead_letters ORDER BY seq")
    return [DeadLetter(*row) for row in cur.fetchall()]


def read_dead_letters(path: Path) -> list[DeadLetter]:
    """Dead letters of an outbox file another process may be writing."""
    if not path.exists():
        raise FileNotFoundError(f"no outbox at {path}")
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True, isolation_level=None, timeout=30)
    try:
        has = db.execute(
            "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'dead_letters'"
        ).fetchone()
        return _dead_letters(db) if has else []
    finally:
        db.close()


def read_stats(path: Path) -> OutboxStats:
    """Stats of an outbox file another process may be writing (``cityops edge outbox``)."""
    if not path.exists():
        raise FileNotFoundError(f"no outbox at {path}")
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True, isolation_level=None, timeout=30)
    try:
        return _stats(db, time.time())
    finally:
        db.close()
