"""Tables of the ingestor: dead letters (refused messages) and the event ids already stored."""

from datetime import datetime
from enum import StrEnum

from sqlalchemy import BigInteger, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from cloud.db.base import Base, UtcDateTime


class RejectReason(StrEnum):
    """Why a message became a dead letter (the ``reason`` column and the metrics label)."""

    INVALID_JSON = "invalid_json"
    SCHEMA = "schema"
    TOO_LARGE = "too_large"
    DEVICE_MISMATCH = "device_mismatch"
    FUTURE_TIMESTAMP = "future_timestamp"
    REPLAY = "replay"
    BAD_TOPIC = "bad_topic"
    STORE_REJECTED = "store_rejected"
    """The store refused the message itself (not an outage), e.g. InfluxDB answered 400."""


class DeadLetter(Base):
    """A message the ingestor refused, with a truncated copy of its payload."""

    __tablename__ = "dead_letters"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    received_at: Mapped[datetime] = mapped_column(UtcDateTime, index=True)
    topic: Mapped[str] = mapped_column(String(256))
    device_id: Mapped[str | None] = mapped_column(String(63), default=None, index=True)
    reason: Mapped[str] = mapped_column(String(32), index=True)
    field: Mapped[str | None] = mapped_column(String(128), default=None)
    detail: Mapped[str] = mapped_column(Text, default="")
    payload: Mapped[str] = mapped_column(Text, default="")
    """At most ``IngestSettings.dead_letter_payload_bytes`` of the raw payload, as text."""


class SeenEvent(Base):
    """An event id already stored; makes hooks see each event once and catches replays."""

    __tablename__ = "ingest_seen_events"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    id_ms: Mapped[int] = mapped_column(BigInteger, index=True)
    """Milliseconds encoded in the UUIDv7, used to forget ids older than the dedup window."""
