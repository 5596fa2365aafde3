"""Tables of the operations API: incidents and their events, audit trail, API keys, commands."""

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Boolean, Float, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from cloud.db.base import Base, UtcDateTime
from shared.clock import utcnow


class Incident(Base):
    """A situation that a department must handle, opened from one or more events."""

    __tablename__ = "incidents"
    __table_args__ = (
        Index("ix_incidents_dept_status", "department", "status"),
        Index("ix_incidents_status_id", "status", "id"),  # the queue: newest first, by page
        Index("ix_incidents_situation", "situation_key", "status"),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    """UUIDv7: sorts by creation time, so it is also the list cursor."""
    kind: Mapped[str] = mapped_column(String(32))
    department: Mapped[str] = mapped_column(String(64))
    rule: Mapped[str] = mapped_column(String(64))
    severity: Mapped[str] = mapped_column(String(16))
    status: Mapped[str] = mapped_column(String(16), default="open")
    title: Mapped[str] = mapped_column(String(256), default="")
    device_id: Mapped[str] = mapped_column(String(63), index=True)
    camera_id: Mapped[str | None] = mapped_column(String(63), default=None)
    zone_id: Mapped[str | None] = mapped_column(String(63), default=None)
    situation_key: Mapped[str] = mapped_column(String(256))
    lat: Mapped[float | None] = mapped_column(Float, default=None)
    lon: Mapped[float | None] = mapped_column(Float, default=None)

    first_event_id: Mapped[str] = mapped_column(String(36))
    last_event_id: Mapped[str] = mapped_column(String(36))
    event_count: Mapped[int] = mapped_column(Integer, default=1)
    last_event_at: Mapped[datetime] = mapped_column(UtcDateTime)

    assignee: Mapped[str | None] = mapped_column(String(128), default=None)
    checklist: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    notes: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    auto_resolve_on_end: Mapped[bool] = mapped_column(Boolean, default=False)

    opened_at: Mapped[datetime] = mapped_column(UtcDateTime)
    acknowledged_at: Mapped[datetime | None] = mapped_column(UtcDateTime, default=None)
    dispatched_at: Mapped[datetime | None] = mapped_column(UtcDateTime, default=None)
    closed_at: Mapped[datetime | None] = mapped_column(UtcDateTime, default=None)
    ack_due_at: Mapped[datetime | None] = mapped_column(UtcDateTime, default=None)
    resolve_due_at: Mapped[datetime | None] = mapped_column(UtcDateTime, default=None)
    ack_breached: Mapped[bool] = mapped_column(Boolean, default=False)
    resolve_breached: Mapped[bool] = mapped_column(Boolean, default=False)
    escalation_level: Mapped[int] = mapped_column(Integer, default=0)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)


class IncidentEvent(Base):
    """Which incident an event id went to; the primary key makes a repeated event a no-op."""

    __tablename__ = "incident_events"

    event_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    incident_id: Mapped[str] = mapped_column(
        String(36), ForeignKey("incidents.id", ondelete="CASCADE"), index=True
    )
    phase: Mapped[str] = mapped_column(String(8))
    observed_at: Mapped[datetime] = mapped_column(UtcDateTime)


class AuditEntry(Base):
    """Who did what, when and from where. Rows are only ever added."""

    __tablename__ = "audit_log"
    __table_args__ = (Index("ix_audit_target", "target_type", "target_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    at: Mapped[datetime] = mapped_column(UtcDateTime, index=True)
    actor: Mapped[str] = mapped_column(String(128))
    role: Mapped[str] = mapped_column(String(32))
    source: Mapped[str] = mapped_column(String(128), default="")
    """Client address (or ``ingest``/``sla`` for the system)."""
    user_agent: Mapped[str] = mapped_column(String(256), default="")
    action: Mapped[str] = mapped_column(String(64))
    target_type: Mapped[str] = mapped_column(String(32))
    target_id: Mapped[str] = mapped_column(String(128))
    detail: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)


class ApiKey(Base):
    """An API key: the clear secret is shown once; only its SHA-256 is kept."""

    __tablename__ = "api_keys"

    id: Mapped[str] = mapped_column(String(16), primary_key=True)
    """Public key id, the part of the key before the secret."""
    name: Mapped[str] = mapped_column(String(128))
    role: Mapped[str] = mapped_column(String(32))
    departments: Mapped[list[str]] = mapped_column(JSON, default=list)
    secret_hash: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    revoked_at: Mapped[datetime | None] = mapped_column(UtcDateTime, default=None)
    last_used_at: Mapped[datetime | None] = mapped_column(UtcDateTime, default=None)
    expires_at: Mapped[datetime | None] = mapped_column(UtcDateTime, default=None)
    """After this the key is refused (None: until revoked)."""


class LiveTicket(Base):
    """A short-lived, single-use ticket that opens one live WebSocket for an API key.

    Browsers cannot set headers on a WebSocket; a ticket keeps the key itself out of the URL.
    Kept in the database (as SHA-256) so any API worker can redeem it.
    """

    __tablename__ = "live_tickets"

    id_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    key_id: Mapped[str] = mapped_column(String(16))
    expires_at: Mapped[datetime] = mapped_column(UtcDateTime, index=True)
    used_at: Mapped[datetime | None] = mapped_column(UtcDateTime, default=None)


class CommandRecord(Base):
    """A command sent to a device and, once it arrives, the device's acknowledgement."""

    __tablename__ = "device_commands"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    device_id: Mapped[str] = mapped_column(String(63), index=True)
    name: Mapped[str] = mapped_column(String(32))
    issued_at: Mapped[datetime] = mapped_column(UtcDateTime)
    issued_by: Mapped[str] = mapped_column(String(128), default="")
    acked_at: Mapped[datetime | None] = mapped_column(UtcDateTime, default=None)
    ack: Mapped[str | None] = mapped_column(Text, default=None)
    """The ``CommandAck`` JSON as received (snapshot included)."""
