"""The durable outbox: order, durability across reopen, bounds and the drop order."""

import sqlite3
from pathlib import Path

import pytest

from edge.uplink.outbox import MessageKind, Outbox, OutboxMessage, read_stats
from edge.uplink.settings import OutboxSettings
from shared.events import Severity


class FakeClock:
    def __init__(self) -> None:
        self.now = 1_700_000_000.0

    def __call__(self) -> float:
        return self.now


def event(severity: Severity, tag: str, size: int = 10) -> OutboxMessage:
    return OutboxMessage(
        kind=MessageKind.EVENT,
        topic="cityops/v1/dev-a/event",
        payload=tag.encode().ljust(size, b"."),
        severity=severity,
        message_id=tag,
    )


def telemetry(tag: str) -> OutboxMessage:
    return OutboxMessage(
        kind=MessageKind.TELEMETRY, topic="cityops/v1/dev-a/telemetry", payload=tag.encode()
    )


def tags(box: Outbox) -> list[str | None]:
    return [row.message_id or row.payload.decode() for row in box.peek(limit=1000)]


def test_outbox_keeps_order_and_deletes_only_acked(tmp_path: Path) -> None:
    with Outbox(OutboxSettings(path=tmp_path / "o.db")) as box:
        for i in range(5):
            assert box.put(event(Severity.HIGH, f"e{i}"))
        rows = box.peek(limit=3)
        assert [r.message_id for r in rows] == ["e0", "e1", "e2"]
        assert [r.message_id for r in box.peek(after_seq=rows[-1].seq)] == ["e3", "e4"]
        box.ack([rows[0].seq, rows[2].seq])
        assert tags(box) == ["e1", "e3", "e4"]
        assert box.depth == 3


def test_outbox_survives_reopen_with_wal_and_full_sync(tmp_path: Path) -> None:
    path = tmp_path / "o.db"
    box = Outbox(OutboxSettings(path=path))
    box.put(event(Severity.LOW, "kept"))
    box.reject([box.peek()[0].seq])
    box.put(event(Severity.LOW, "kept-2"))
    # No close(): like a crash, the committed rows must already be in the file (WAL).
    other = sqlite3.connect(path)
    assert other.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    other.close()
    reopened = Outbox(OutboxSettings(path=path))
    assert tags(reopened) == ["kept-2"]
    assert reopened.stats().rejected == 1
    assert box._db.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL
    box.close()
    reopened.close()


def test_outbox_drops_telemetry_first_then_low_severity_oldest_first(tmp_path: Path) -> None:
    with Outbox(OutboxSettings(path=tmp_path / "o.db", max_rows=10)) as box:
        box.put(event(Severity.HIGH, "high-0"))
        box.put(telemetry("tel-0"))
        box.put(event(Severity.LOW, "low-0"))
        box.put(event(Severity.CRITICAL, "crit-0"))
        box.put(telemetry("tel-1"))
        box.put(event(Severity.LOW, "low-1"))
        box.put(event(Severity.INFO, "info-0"))
        box.put(event(Severity.MEDIUM, "med-0"))
        box.put(event(Severity.HIGH, "high-1"))
        box.put(event(Severity.LOW, "low-2"))
        assert box.depth == 10
        # Full: each new message pushes out the lowest class, oldest first.
        for i in range(7):
            assert box.put(event(Severity.HIGH, f"new-{i}"))
        assert tags(box) == [
            "high-0",
            "crit-0",
            "high-1",
            *[f"new-{i}" for i in range(7)],
        ]
        stats = box.stats()
        # tel-0, tel-1, then info-0, then low-0, low-1, low-2, then med-0.
        assert stats.dropped_telemetry == 2
        assert stats.dropped_events == 5
        assert stats.depth == 10


def test_outbox_refuses_a_new_message_lower_than_everything_kept(tmp_path: Path) -> None:
    with Outbox(OutboxSettings(path=tmp_path / "o.db", max_rows=10)) as box:
        for i in range(10):
            box.put(event(Severity.CRITICAL, f"c{i}"))
        assert not box.put(telemetry("t"))
        assert not box.put(event(Severity.INFO, "i"))
        assert box.put(event(Severity.CRITICAL, "c10"))
        assert tags(box) == [f"c{i}" for i in range(1, 11)]
        stats = box.stats()
        assert (stats.dropped_telemetry, stats.dropped_events) == (1, 2)


def test_outbox_byte_bound(tmp_path: Path) -> None:
    settings = OutboxSettings(path=tmp_path / "o.db", max_bytes=64 * 1024)
    with Outbox(settings) as box:
        for i in range(10):
            box.put(event(Severity.MEDIUM, f"m{i}", size=10_000))
        stats = box.stats()
        assert stats.bytes <= 64 * 1024
        assert stats.depth == 6
        assert stats.dropped_events == 4
        assert tags(box) == [f"m{i}" for i in range(4, 10)]


def test_outbox_drops_messages_older_than_max_age(tmp_path: Path) -> None:
    clock = FakeClock()
    settings = OutboxSettings(path=tmp_path / "o.db", max_age_s=60)
    with Outbox(settings, clock=clock) as box:
        box.put(event(Severity.HIGH, "old"))
        box.put(telemetry("old-tel"))
        clock.now += 30
        box.put(event(Severity.HIGH, "younger"))
        assert box.stats().oldest_age_s == pytest.approx(30)
        clock.now += 45
        box.put(event(Severity.HIGH, "new"))
        assert tags(box) == ["younger", "new"]
        stats = box.stats()
        assert (stats.dropped_events, stats.dropped_telemetry) == (1, 1)


def test_read_stats_from_another_connection(tmp_path: Path) -> None:
    path = tmp_path / "o.db"
    with Outbox(OutboxSettings(path=path, max_rows=10)) as box:
        for i in range(12):
            box.put(event(Severity.MEDIUM, f"m{i}"))
        box.put(telemetry("t"))
        stats = read_stats(path)
        assert (stats.depth, stats.events, stats.telemetry) == (10, 10, 0)
        assert stats.dropped_events == 2
        assert stats.dropped_telemetry == 1
        assert stats.oldest_age_s is not None
    with pytest.raises(FileNotFoundError, match="no outbox"):
        read_stats(tmp_path / "missing.db")
