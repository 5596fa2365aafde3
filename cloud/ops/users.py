"""Human accounts: create, list, disable, set a password, check a sign-in.

Passwords are hashed with argon2id (``argon2-cffi``); the parameters live inside each hash,
so raising them later re-hashes a user's password at their next sign-in.
"""

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Final

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError
from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from cloud.db.users import User, UserSession
from cloud.ops.keys import check_departments
from cloud.ops.roles import ALL_DEPARTMENTS, Principal, Role
from shared.clock import utcnow

USERNAME_PATTERN: Final = r"^[a-z0-9][a-z0-9._-]{0,63}$"
MIN_PASSWORD_LENGTH: Final = 10
USER_KEY_PREFIX: Final = "user:"
"""A user's principal ``key_id`` is ``user:<username>``: the audit trail names the person."""

# OWASP's argon2id minimum (19 MiB, 2 passes, 1 lane): ~50 ms on a 2-core server, and a burst of
# sign-ins cannot take gigabytes (argon2-cffi's default is 64 MiB and 4 lanes per hash).
_hasher = PasswordHasher(time_cost=2, memory_cost=19 * 1024, parallelism=1)
# Verified against when the user is unknown, so an unknown name costs as much as a wrong password.
_DUMMY_HASH: Final = _hasher.hash("not a password of anybody")


class UserError(ValueError):
    """A bad account change; the message starts with the field it is about."""


@dataclass(frozen=True, slots=True)
class UserInfo:
    username: str
    display_name: str
    role: str
    departments: list[str]
    auth_source: str
    disabled_at: datetime | None
    failed_logins: int
    last_login_at: datetime | None
    created_at: datetime


def _check_username(username: str) -> str:
    if not re.fullmatch(USERNAME_PATTERN, username):
        raise UserError(
            f"username: {username!r} must be 1-64 of a-z, 0-9, '.', '_', '-' (lower case)"
        )
    return username


def check_password(password: str) -> str:
    """*password* if it may be a password (length); else ``UserError``. Never logged."""
    if len(password) < MIN_PASSWORD_LENGTH:
        raise UserError(f"password: use at least {MIN_PASSWORD_LENGTH} characters")
    if len(password) > 1024:  # noqa: PLR2004 - hashing megabytes is a denial of service
        raise UserError("password: at most 1024 characters")
    return password


def principal_of_user(row: User) -> Principal:
    return Principal(
        key_id=f"{USER_KEY_PREFIX}{row.username}",
        name=row.display_name or row.username,
        role=Role(row.role),
        departments=frozenset(row.departments),
    )


def user_principal(session: Session, username: str) -> Principal | None:
    """The user's principal as it is now (None once disabled or removed): for open streams."""
    row = session.get(User, username)
    return None if row is None or row.disabled_at is not None else principal_of_user(row)


def create_user(  # noqa: PLR0917 - the fields of one account
    session: Session,
    username: str,
    password: str,
    role: str,
    departments: Sequence[str] = (ALL_DEPARTMENTS,),
    display_name: str = "",
) -> UserInfo:
    _check_username(username)
    try:
        role_value = Role(role)
    except ValueError as exc:
        raise UserError(f"role: {role!r} is not one of {', '.join(r.value for r in Role)}") from exc
    if session.get(User, username) is not None:
        raise UserError(f"username: {username!r} already exists")
    if len(display_name) > 128:  # noqa: PLR2004
        raise UserError("display_name: at most 128 characters")
    try:
        depts = check_departments(departments)
    except ValueError as exc:
        raise UserError(str(exc)) from exc
    now = utcnow()
    row = User(
        username=username,
        display_name=display_name.strip(),
        role=role_value.value,
        departments=depts,
        auth_source="password",
        password_hash=_hasher.hash(check_password(password)),
        created_at=now,
        password_changed_at=now,
    )
    session.add(row)
    session.commit()
    return _info(row)


def _info(row: User) -> UserInfo:
    return UserInfo(
        username=row.username,
        display_name=row.display_name,
        role=row.role,
        departments=list(row.departments),
        auth_source=row.auth_source,
        disabled_at=row.disabled_at,
        failed_logins=row.failed_logins,
        last_login_at=row.last_login_at,
        created_at=row.created_at,
    )


def list_users(session: Session) -> list[UserInfo]:
    return [_info(r) for r in session.scalars(select(User).order_by(User.username))]


def _get(session: Session, username: str) -> User:
    row = session.get(User, username)
    if row is None:
        raise UserError(f"username: no user {username!r}")
    return row


def disable_user(session: Session, username: str) -> None:
    """Refuse the user's sign-ins from now on and end every session they have."""
    row = _get(session, username)
    if row.disabled_at is None:
        row.disabled_at = utcnow()
    session.execute(delete(UserSession).where(UserSession.username == username))
    session.commit()


def enable_user(session: Session, username: str) -> None:
    row = _get(session, username)
    row.disabled_at = None
    row.failed_logins = 0
    session.commit()


def set_password(session: Session, username: str, password: str) -> None:
    """New password; ends the user's sessions (a stolen cookie dies with the old password)."""
    row = _get(session, username)
    row.password_hash = _hasher.hash(check_password(password))
    row.auth_source = "password"
    row.password_changed_at = utcnow()
    row.failed_logins = 0
    session.execute(delete(UserSession).where(UserSession.username == username))
    session.commit()


def check_login(session: Session, username: str, password: str) -> Principal | None:
    """The user's principal if *password* is right and the account enabled; counts failures."""
    row = session.get(User, username) if re.fullmatch(USERNAME_PATTERN, username) else None
    stored = row.password_hash if row is not None and row.password_hash else _DUMMY_HASH
    ok: bool
    try:
        ok = _hasher.verify(stored, password)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        ok = False
    if row is None:
        return None
    now = utcnow()
    if not ok or row.password_hash is None or row.disabled_at is not None:
        row.failed_logins += 1
        row.last_failed_at = now
        session.commit()
        return None
    if _hasher.check_needs_rehash(stored):
        row.password_hash = _hasher.hash(password)
    row.failed_logins = 0
    row.last_login_at = now
    session.commit()
    return principal_of_user(row)
