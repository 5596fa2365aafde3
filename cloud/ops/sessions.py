"""Browser sessions of signed-in users: opaque ids in a cookie, their SHA-256 in the database.

A session ends at logout, after ``idle`` without a request, at ``max_age`` after sign-in (a
shift), when the user is disabled or gets a new password. Each holds its own CSRF token.
"""

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Final

from sqlalchemy import delete
from sqlalchemy.orm import Session

from cloud.db.users import User, UserSession
from cloud.ops.roles import Principal
from cloud.ops.users import principal_of_user
from shared.clock import utcnow

TOUCH_EVERY: Final = timedelta(seconds=30)
"""``last_seen_at`` is written at most this often per session (not on every request)."""


@dataclass(frozen=True, slots=True)
class SessionLimits:
    idle: timedelta = timedelta(minutes=60)
    max_age: timedelta = timedelta(hours=12)


@dataclass(frozen=True, slots=True)
class OpenSession:
    """What a valid cookie stands for."""

    token: str
    """The cookie value (only at creation; empty when resolved from a cookie)."""
    username: str
    principal: Principal
    csrf_token: str
    expires_at: datetime


def _digest(token: str) -> str:
    # Session ids are 32 random bytes: a plain SHA-256 is enough, no stretching needed.
    return hashlib.sha256(token.encode()).hexdigest()


def open_session(
    session: Session,
    principal: Principal,
    username: str,
    limits: SessionLimits,
    *,
    source: str = "",
    user_agent: str = "",
) -> OpenSession:
    token = secrets.token_urlsafe(32)
    csrf = secrets.token_urlsafe(32)
    now = utcnow()
    expires = now + limits.max_age
    session.add(
        UserSession(
            id_hash=_digest(token),
            username=username,
            csrf_token=csrf,
            created_at=now,
            last_seen_at=now,
            expires_at=expires,
            source=source[:128],
            user_agent=user_agent[:256],
        )
    )
    # Sessions that ran out are removed when anybody signs in: the table stays small.
    session.execute(delete(UserSession).where(UserSession.expires_at < now))
    session.commit()
    return OpenSession(token, username, principal, csrf, expires)


def resolve_session(
    session: Session, token: str, limits: SessionLimits, *, now: datetime | None = None
) -> OpenSession | None:
    """The session of cookie value *token*, or None when unknown, expired or the user disabled."""
    if not token or len(token) > 128:  # noqa: PLR2004
        return None
    now = now or utcnow()
    row = session.get(UserSession, _digest(token))
    if row is None:
        return None
    if row.expires_at <= now or row.last_seen_at + limits.idle <= now:
        session.delete(row)
        session.commit()
        return None
    user = session.get(User, row.username)
    if user is None or user.disabled_at is not None:
        return None
    if now - row.last_seen_at >= TOUCH_EVERY:
        row.last_seen_at = now
        session.commit()
    return OpenSession("", user.username, principal_of_user(user), row.csrf_token, row.expires_at)


def close_session(session: Session, token: str) -> str | None:
    """End the session of *token*; the username it belonged to, if any."""
    row = session.get(UserSession, _digest(token))
    if row is None:
        return None
    username = row.username
    session.delete(row)
    session.commit()
    return username


def csrf_matches(expected: str, given: str | None) -> bool:
    return bool(given) and hmac.compare_digest(expected.encode(), (given or "").encode())
