"""Aware-UTC time helpers; every timestamp on the wire is timezone-aware UTC."""

from datetime import UTC, datetime
from typing import Final

NAIVE_TIMESTAMP: Final = "timestamp must carry a timezone (use UTC, e.g. 2026-01-01T12:00:00Z)"


def utcnow() -> datetime:
    return datetime.now(UTC)


def ensure_utc(value: datetime) -> datetime:
    """Return *value* in UTC; naive datetimes are refused, not guessed."""
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(NAIVE_TIMESTAMP)
    return value.astimezone(UTC)
