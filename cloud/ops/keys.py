"""API keys: ``cok_<id>_<secret>``; the secret is shown once and stored as its SHA-256."""

import hashlib
import hmac
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session

from cloud.db.ops import ApiKey, LiveTicket
from cloud.ops.roles import ALL_DEPARTMENTS, Principal, Role
from shared.clock import utcnow

KEY_PREFIX = "cok"
TICKET_PREFIX = "cot"
TICKET_TTL_S = 30.0
"""A live-stream ticket must be redeemed this soon after it was issued, and only once."""
_DEPARTMENT_CHARS = frozenset("abcdefghijklmnopqrstuvwxyz0123456789-_")


@dataclass(frozen=True, slots=True)
class KeyInfo:
    id: str
    name: str
    role: str
    departments: list[str]
    created_at: datetime
    revoked_at: datetime | None
    last_used_at: datetime | None
    expires_at: datetime | None = None


def _digest(secret: str) -> str:
    # API secrets are 32 random bytes, so a plain SHA-256 is enough (no stretching needed).
    return hashlib.sha256(secret.encode()).hexdigest()


def check_departments(departments: Sequence[str]) -> list[str]:
    if not departments:
        raise ValueError("departments: give at least one department or '*'")
    for dept in departments:
        if dept != ALL_DEPARTMENTS and (not dept or not set(dept) <= _DEPARTMENT_CHARS):
            raise ValueError(f"departments: {dept!r} is not a department id (a-z, 0-9, '-', '_')")
    return sorted(set(departments))


def _check_role(role: str) -> Role:
    try:
        return Role(role)
    except ValueError as exc:
        raise ValueError(
            f"role: {role!r} is not one of {', '.join(r.value for r in Role)}"
        ) from exc


def create_api_key(
    session: Session,
    *,
    name: str,
    role: str,
    departments: Sequence[str] = (ALL_DEPARTMENTS,),
    expires_at: datetime | None = None,
) -> str:
    """Store a new key and return it in clear (the only time it is available)."""
    role_value = _check_role(role)
    if not name.strip() or len(name) > 128:  # noqa: PLR2004
        raise ValueError("name: give a name of 1-128 characters")
    key_id = secrets.token_hex(6)
    secret = secrets.token_urlsafe(32)
    session.add(
        ApiKey(
            id=key_id,
            name=name.strip(),
            role=role_value.value,
            departments=check_departments(departments),
            secret_hash=_digest(secret),
            created_at=utcnow(),
            expires_at=expires_at,
        )
    )
    session.commit()
    return f"{KEY_PREFIX}_{key_id}_{secret}"


def authenticate(session: Session, token: str, *, touch: bool = False) -> Principal | None:
    """The principal of *token*, or None if it is malformed, unknown or revoked."""
    prefix, sep, rest = token.partition("_")
    key_id, sep2, secret = rest.partition("_")
    if prefix != KEY_PREFIX or not sep or not sep2 or not key_id or not secret:
        return None
    row = session.get(ApiKey, key_id)
    if row is None or not _active(row):
        return None
    if not hmac.compare_digest(row.secret_hash, _digest(secret)):
        return None
    if touch:
        row.last_used_at = utcnow()
        session.commit()
    return _principal(row)


def _active(row: ApiKey) -> bool:
    return row.revoked_at is None and (row.expires_at is None or row.expires_at > utcnow())


def _principal(row: ApiKey) -> Principal:
    return Principal(
        key_id=row.id,
        name=row.name,
        role=Role(row.role),
        departments=frozenset(row.departments),
        expires_at=row.expires_at,
    )


def principal_by_id(session: Session, key_id: str) -> Principal | None:
    """The key's principal as it is now (None once revoked or expired): for open streams."""
    row = session.get(ApiKey, key_id)
    return _principal(row) if row is not None and _active(row) else None


def update_api_key(
    session: Session,
    key_id: str,
    *,
    role: str | None = None,
    departments: Sequence[str] | None = None,
    expires_at: datetime | None = None,
) -> Principal | None:
    """Change an active key's role, departments or expiry (None if no such active key)."""
    row = session.get(ApiKey, key_id)
    if row is None or not _active(row):
        return None
    if role is not None:
        row.role = _check_role(role).value
    if departments is not None:
        row.departments = check_departments(departments)
    if expires_at is not None:
        row.expires_at = expires_at
    session.commit()
    return _principal(row)


def issue_ticket(session: Session, key_id: str, ttl_s: float = TICKET_TTL_S) -> str:
    """A single-use ticket for opening one live WebSocket as *key_id* (stored hashed)."""
    now = utcnow()
    session.execute(delete(LiveTicket).where(LiveTicket.expires_at < now))
    ticket = f"{TICKET_PREFIX}_{secrets.token_urlsafe(24)}"
    session.add(
        LiveTicket(
            id_hash=_digest(ticket), key_id=key_id, expires_at=now + timedelta(seconds=ttl_s)
        )
    )
    session.commit()
    return ticket


def redeem_ticket(session: Session, ticket: str) -> Principal | None:
    """The principal of an unexpired, unused *ticket*, which is used up by this call."""
    now = utcnow()
    used = session.execute(
        update(LiveTicket)
        .where(
            LiveTicket.id_hash == _digest(ticket),
            LiveTicket.used_at.is_(None),
            LiveTicket.expires_at > now,
        )
        .values(used_at=now)
        .returning(LiveTicket.key_id)
    ).scalar_one_or_none()
    session.commit()
    return None if used is None else principal_by_id(session, used)


def list_api_keys(session: Session) -> list[KeyInfo]:
    rows = session.scalars(select(ApiKey).order_by(ApiKey.created_at))
    return [
        KeyInfo(
            id=r.id,
            name=r.name,
            role=r.role,
            departments=list(r.departments),
            created_at=r.created_at,
            revoked_at=r.revoked_at,
            last_used_at=r.last_used_at,
            expires_at=r.expires_at,
        )
        for r in rows
    ]


def revoke_api_key(session: Session, key_id: str) -> bool:
    """Revoke by id (or by the full key); False if no such active key."""
    if key_id.startswith(KEY_PREFIX + "_"):
        key_id = key_id.split("_")[1]
    row = session.get(ApiKey, key_id)
    if row is None or row.revoked_at is not None:
        return False
    row.revoked_at = utcnow()
    session.commit()
    return True
