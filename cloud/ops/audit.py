"""The audit trail: one row per change, written in the same transaction as the change."""

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from cloud.db.ops import AuditEntry
from cloud.ops.models import AuditOut
from cloud.ops.roles import Actor


def record(
    session: Session,
    actor: Actor,
    *,
    action: str,
    target_type: str,
    target_id: str,
    at: datetime,
    detail: Mapping[str, Any] | None = None,
) -> None:
    """Add an audit row to *session*; the caller commits it together with the change."""
    session.add(
        AuditEntry(
            at=at,
            actor=actor.name,
            role=actor.role,
            source=actor.source[:128],
            user_agent=actor.user_agent[:256],
            action=action,
            target_type=target_type,
            target_id=target_id,
            detail=dict(detail or {}),
        )
    )


def list_audit(
    session: Session,
    *,
    target_type: str | None = None,
    target_id: str | None = None,
    actor: str | None = None,
    before_id: int | None = None,
    limit: int = 100,
) -> list[AuditOut]:
    """Newest first."""
    stmt = select(AuditEntry).order_by(AuditEntry.id.desc()).limit(limit)
    if target_type is not None:
        stmt = stmt.where(AuditEntry.target_type == target_type)
    if target_id is not None:
        stmt = stmt.where(AuditEntry.target_id == target_id)
    if actor is not None:
        stmt = stmt.where(AuditEntry.actor.contains(actor))
    if before_id is not None:
        stmt = stmt.where(AuditEntry.id < before_id)
    return [AuditOut.of(row) for row in session.scalars(stmt)]
