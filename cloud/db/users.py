"""Tables of human accounts of the console: users and their browser sessions."""

from datetime import datetime

from sqlalchemy import JSON, ForeignKey, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from cloud.db.base import Base, UtcDateTime
from shared.clock import utcnow


class User(Base):
    """A person who signs in to the console: same roles and department scope as an API key."""

    __tablename__ = "users"

    username: Mapped[str] = mapped_column(String(64), primary_key=True)
    display_name: Mapped[str] = mapped_column(String(128), default="")
    role: Mapped[str] = mapped_column(String(32))
    departments: Mapped[list[str]] = mapped_column(JSON, default=list)
    auth_source: Mapped[str] = mapped_column(String(16), default="password")
    """``password`` today; ``oidc`` (single sign-on, next) keeps no password hash."""
    password_hash: Mapped[str | None] = mapped_column(String(256), default=None)
    """argon2id (``argon2-cffi``), parameters inside the hash."""
    disabled_at: Mapped[datetime | None] = mapped_column(UtcDateTime, default=None)
    failed_logins: Mapped[int] = mapped_column(Integer, default=0)
    """Failed sign-ins since the last success (reset by a success or a new password)."""
    last_failed_at: Mapped[datetime | None] = mapped_column(UtcDateTime, default=None)
    last_login_at: Mapped[datetime | None] = mapped_column(UtcDateTime, default=None)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    password_changed_at: Mapped[datetime | None] = mapped_column(UtcDateTime, default=None)


class UserSession(Base):
    """A signed-in browser; the cookie carries the id in clear, the table its SHA-256."""

    __tablename__ = "user_sessions"

    id_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    username: Mapped[str] = mapped_column(
        String(64), ForeignKey("users.username", ondelete="CASCADE"), index=True
    )
    csrf_token: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)
    last_seen_at: Mapped[datetime] = mapped_column(UtcDateTime)
    expires_at: Mapped[datetime] = mapped_column(UtcDateTime)
    """Absolute end (a shift); idle expiry is ``last_seen_at`` + the idle limit."""
    source: Mapped[str] = mapped_column(String(128), default="")
    user_agent: Mapped[str] = mapped_column(String(256), default="")
