"""``Validator._time_problem`` (skew and replay) decides exactly like the original loop did."""

from datetime import UTC, datetime, timedelta, timezone

from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import BaseModel

from cloud.db.ingest import RejectReason
from cloud.ingest.validate import Validator
from cloud.settings import IngestSettings
from shared.clock import utcnow
from shared.events import Event, EventKind
from shared.ids import new_id
from shared.telemetry import DeviceStatus, Telemetry

_FIELDS: dict[type[BaseModel], tuple[str, ...]] = {
    Event: ("observed_at", "started_at", "ended_at"),
    Telemetry: ("ts",),
    DeviceStatus: ("ts",),
}


def reference(
    obj: BaseModel, now: datetime, s: IngestSettings
) -> tuple[RejectReason, str, str] | None:
    """The original ``_time_problem``, line for line."""
    limit = s.max_future_skew_s
    for name in _FIELDS[type(obj)]:
        value = getattr(obj, name)
        if value is not None and (skew := (value - now).total_seconds()) > limit:
            detail = f"{name} is {skew:.0f} s ahead of the ingestor (limit {limit:.0f} s)"
            return RejectReason.FUTURE_TIMESTAMP, name, detail
    if isinstance(obj, Event):
        age_s = now.timestamp() - int(obj.id[:8] + obj.id[9:13], 16) / 1000
        if -age_s > limit:
            detail = f"id was minted {-age_s:.0f} s in the future (limit {limit:.0f} s)"
            return RejectReason.FUTURE_TIMESTAMP, "id", detail
        if age_s > s.dedup_window_s:
            detail = (
                f"id is {age_s:.0f} s old, beyond the dedup window of "
                f"{s.dedup_window_s:.0f} s: refused as a replay"
            )
            return RejectReason.REPLAY, "id", detail
    return None


OFFSET = st.one_of(
    st.none(),
    st.sampled_from([0, 1e-6, -1e-6, 60, 60.000001, 300, 300.000001]),
    st.floats(min_value=-30 * 86400, max_value=2 * 86400, allow_nan=False),
)
ZONES = [UTC, timezone(timedelta(hours=5, minutes=30)), timezone(timedelta(hours=-7))]
LIMITS = st.sampled_from([0.0, 0.5, 60.0, 300.0, 86_400.0])
WINDOWS = st.sampled_from([1.0, 3600.0, 7 * 86_400.0])


def _at(now: datetime, offset: float | None, zone: timezone) -> datetime | None:
    return None if offset is None else (now + timedelta(seconds=offset)).astimezone(zone)


@settings(max_examples=600, deadline=None)
@given(
    offsets=st.tuples(OFFSET, OFFSET, OFFSET, OFFSET),
    zone=st.sampled_from(ZONES),
    limit=LIMITS,
    window=WINDOWS,
    channel=st.sampled_from([Event, Telemetry, DeviceStatus]),
)
def test_time_problem_matches_the_original(
    offsets: tuple[float | None, ...],
    zone: timezone,
    limit: float,
    window: float,
    channel: type[BaseModel],
) -> None:
    now = utcnow()
    s = IngestSettings(max_future_skew_s=limit, dedup_window_s=window)
    observed, started, ended, minted = (_at(now, o, zone) for o in offsets)
    obj: BaseModel
    if channel is Event:
        id_ms = int(
            ((minted or now) - datetime(1970, 1, 1, tzinfo=UTC)) / timedelta(milliseconds=1)
        )
        obj = Event.model_construct(
            id=new_id(at_ms=max(id_ms, 0)),
            device_id="dev-a",
            kind=EventKind.CROWDING,
            observed_at=observed or now,
            started_at=started or now,
            ended_at=ended,
        )
    else:
        obj = channel.model_construct(ts=observed)
    assert Validator(s)._time_problem(obj, now) == reference(obj, now, s)
