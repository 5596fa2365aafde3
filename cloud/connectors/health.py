"""Per-source health: last success, errors, lag; shown by ``GET /api/v1/connectors/sources``."""

from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict

from shared.clock import utcnow

_MAX_ERROR_TEXT = 300


class SourceHealthOut(BaseModel):
    model_config = ConfigDict(frozen=True)

    source_id: str
    type: str
    device_id: str
    state: Literal["ok", "failing", "idle"]
    """``failing`` after an error with no success since; ``idle`` before the first record."""
    last_success_at: datetime | None
    last_error_at: datetime | None
    last_error: str | None
    consecutive_errors: int
    errors_total: int
    records_total: int
    events_total: int
    telemetry_total: int
    duplicates_total: int
    rejected_total: int
    last_record_at: datetime | None
    """Source time of the newest record taken in."""
    lag_s: float | None
    """Now minus ``last_record_at``: how far behind the source this connector is."""


@dataclass
class SourceHealth:
    source_id: str
    type: str
    device_id: str
    last_success_at: datetime | None = None
    last_error_at: datetime | None = None
    last_error: str | None = None
    consecutive_errors: int = 0
    errors_total: int = 0
    records_total: int = 0
    events_total: int = 0
    telemetry_total: int = 0
    duplicates_total: int = 0
    rejected_total: int = 0
    last_record_at: datetime | None = None

    def success(self, at: datetime | None = None) -> None:
        self.last_success_at = at or utcnow()
        self.consecutive_errors = 0

    def error(self, reason: str, at: datetime | None = None) -> None:
        self.last_error_at = at or utcnow()
        self.last_error = reason[:_MAX_ERROR_TEXT]
        self.consecutive_errors += 1
        self.errors_total += 1

    def saw_record_time(self, at: datetime) -> None:
        if self.last_record_at is None or at > self.last_record_at:
            self.last_record_at = at

    def snapshot(self, now: datetime | None = None) -> SourceHealthOut:
        now = now or utcnow()
        state: Literal["ok", "failing", "idle"] = "idle"
        if self.consecutive_errors:
            state = "failing"
        elif self.last_success_at is not None:
            state = "ok"
        lag = None if self.last_record_at is None else (now - self.last_record_at).total_seconds()
        return SourceHealthOut(
            source_id=self.source_id,
            type=self.type,
            device_id=self.device_id,
            state=state,
            last_success_at=self.last_success_at,
            last_error_at=self.last_error_at,
            last_error=self.last_error,
            consecutive_errors=self.consecutive_errors,
            errors_total=self.errors_total,
            records_total=self.records_total,
            events_total=self.events_total,
            telemetry_total=self.telemetry_total,
            duplicates_total=self.duplicates_total,
            rejected_total=self.rejected_total,
            last_record_at=self.last_record_at,
            lag_s=None if lag is None else max(0.0, lag),
        )
