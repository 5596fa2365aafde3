"""The optimised ``Event`` validation accepts, rejects and names fields exactly like the original.

``_Ref*`` below are the original models, check for check: a Python validator per rule (UUIDv7
regex, ``ensure_utc``, not in the future, order of the timestamps, attribute length, box order,
end phase needs ``ended_at``). ``shared.events`` now runs most of them inside pydantic-core or
in fewer Python calls. Both are fed the same generated and mutated payloads, JSON and Python,
and must give the same decision: the same stored event when accepted; when rejected, the same
field, reason and reject class (the first error is what the ingestor reports, so it must not
move when several fields are bad at once).
"""

import json
import re
from datetime import UTC, datetime, timedelta, timezone, tzinfo
from typing import Annotated, Any, Literal, Self
from zoneinfo import ZoneInfo

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import (
    Field,
    StringConstraints,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from cloud.db.ingest import RejectReason
from cloud.ingest.validate import _classify
from shared.base import DeviceId, LocalId, ShortText, Unit, UtcDatetime, WireModel
from shared.clock import utcnow
from shared.codec import decode, field_of
from shared.errors import ContractError
from shared.events import (
    AttributeValue,
    Event,
    EventKind,
    Location,
    ModelInfo,
    Phase,
    Severity,
    Snapshot,
)
from shared.ids import is_uuid7, new_id
from shared.limits import MAX_ATTRIBUTES, MAX_FUTURE_SKEW_S, MAX_OBJECTS

# --- the reference: shared/events.py as it was, one Python validator per rule ---------------


class _RefBox(WireModel):
    x1: Unit
    y1: Unit
    x2: Unit
    y2: Unit

    @model_validator(mode="after")
    def _ordered(self) -> Self:
        if self.x2 < self.x1:
            raise ValueError("x2 must be >= x1")
        if self.y2 < self.y1:
            raise ValueError("y2 must be >= y1")
        return self


class _RefDetectedObject(WireModel):
    label: Annotated[str, StringConstraints(min_length=1, max_length=64)]
    score: Unit
    box: _RefBox
    track_id: int | None = Field(default=None, ge=0)


def _ref_not_in_future(value: datetime, field: str) -> datetime:
    skew = (value - utcnow()).total_seconds()
    if skew > MAX_FUTURE_SKEW_S:
        raise ValueError(
            f"{field} is {skew:.0f} s in the future "
            f"(limit {MAX_FUTURE_SKEW_S:.0f} s): check the device clock"
        )
    return value


class _RefEvent(WireModel):
    v: Literal[1] = 1
    id: str
    device_id: DeviceId
    camera_id: LocalId | None = None
    kind: EventKind
    phase: Phase = Phase.START
    severity: Severity = Severity.MEDIUM
    started_at: UtcDatetime
    observed_at: UtcDatetime
    ended_at: UtcDatetime | None = None
    zone_id: LocalId | None = None
    location: Location | None = None
    objects: list[_RefDetectedObject] = Field(default_factory=list, max_length=MAX_OBJECTS)
    dwell_s: float = Field(default=0.0, ge=0.0, le=10 * 365 * 86400)
    snapshot: Snapshot | None = None
    model: ModelInfo | None = None
    summary: ShortText = ""
    attributes: dict[
        Annotated[str, StringConstraints(min_length=1, max_length=64)], AttributeValue
    ] = Field(default_factory=dict, max_length=MAX_ATTRIBUTES)

    @field_validator("id")
    @classmethod
    def _uuid7(cls, value: str) -> str:
        if not is_uuid7(value):
            raise ValueError("id must be a lower-case UUIDv7 string")
        return value

    @field_validator("attributes")
    @classmethod
    def _short_values(cls, value: dict[str, AttributeValue]) -> dict[str, AttributeValue]:
        for key, item in value.items():
            if isinstance(item, str) and len(item) > 256:
                raise ValueError(f"attribute {key!r} is longer than 256 characters")
        return value

    @field_validator("started_at", "observed_at", "ended_at")
    @classmethod
    def _not_future(cls, value: datetime | None, info: ValidationInfo) -> datetime | None:
        if value is not None:
            _ref_not_in_future(value, info.field_name or "timestamp")
        return value

    @field_validator("observed_at")
    @classmethod
    def _observed_after_start(cls, value: datetime, info: ValidationInfo) -> datetime:
        started = info.data.get("started_at")
        if started is not None and started > value:
            raise ValueError("observed_at must not be before started_at")
        return value

    @field_validator("ended_at")
    @classmethod
    def _ended_after_start(cls, value: datetime | None, info: ValidationInfo) -> datetime | None:
        started = info.data.get("started_at")
        if value is not None and started is not None and value < started:
            raise ValueError("ended_at must not be before started_at")
        return value

    @model_validator(mode="after")
    def _end_has_time(self) -> Self:
        if self.phase is Phase.END and self.ended_at is None:
            raise ValueError("ended_at: an 'end' event needs ended_at")
        return self


# --- outcomes -----------------------------------------------------------------------------------

Outcome = tuple[str, ...]
_NUMBER = re.compile(r"-?\d+")


def _reason(reason: str) -> str:
    # "N s in the future" is measured against the clock twice, a few ms apart: compare the words.
    return _NUMBER.sub("N", reason) if "in the future" in reason else reason


def _accepted(model: WireModel) -> Outcome:
    times = tuple(
        repr(getattr(model, name).tzinfo)
        for name in ("started_at", "observed_at", "ended_at")
        if getattr(model, name) is not None
    )
    return ("accepted", model.model_dump_json(), repr(model.model_dump()), *times)


def json_outcome(model: type[WireModel], payload: str | bytes) -> Outcome:
    """What the ingestor makes of *payload*: the stored event, or the rejection it records."""
    try:
        return _accepted(decode(model, payload))
    except ContractError as exc:
        return ("rejected", exc.field, _reason(exc.reason), _classify(exc).value)


def python_outcome(model: type[WireModel], data: dict[str, Any]) -> Outcome:
    """What a connector makes of *data* (``model_validate`` on Python objects, then field_of)."""
    try:
        return _accepted(model.model_validate(data))
    except ValidationError as exc:
        field, reason = field_of(exc)
        return ("rejected", field, _reason(reason), exc.errors()[0]["type"])


# --- payloads -----------------------------------------------------------------------------------

NOW = utcnow()
# Offsets from now, in seconds, kept away from the future-skew limit (300 s) by more than the
# time a test takes, so both models see the same side of it.
OFFSETS = st.one_of(
    st.floats(min_value=-10 * 86400, max_value=290, allow_nan=False),
    st.floats(min_value=310, max_value=10 * 86400),
    st.sampled_from([-1e-6, 0.0, 1e-6, 3600.0, -3600.0]),
)
TZS: list[tzinfo | None] = [
    UTC,
    timezone(timedelta(hours=5, minutes=30)),
    timezone(timedelta(hours=-8)),
    ZoneInfo("Europe/Rome"),
    None,
]


@st.composite
def timestamps(draw: st.DrawFn) -> str:
    """An ISO timestamp near now: Z, an offset, naive, or something that is not a timestamp."""
    at = NOW + timedelta(seconds=draw(OFFSETS))
    form = draw(st.sampled_from(["z", "offset", "naive", "date", "junk", "epoch"]))
    if form == "z":
        return at.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    if form == "offset":
        tz = draw(st.sampled_from(TZS[1:4]))
        return at.astimezone(tz).isoformat()
    if form == "naive":
        return at.replace(tzinfo=None).isoformat()
    if form == "date":
        return at.date().isoformat()
    if form == "epoch":
        return str(int(at.timestamp()))
    return draw(st.sampled_from(["", "yesterday", "2026-13-01T00:00:00Z", "0001-01-01T00:00:00Z"]))


def _id_from(base: str, kind: str) -> Any:
    variants: dict[str, Any] = {
        "valid": base,
        "upper": base.upper(),
        "version4": base[:14] + "4" + base[15:],
        "variant": base[:19] + "c" + base[20:],
        "no_dashes": base.replace("-", ""),
        "newline": base + "\n",
        "two_newlines": base + "\n\n",
        "leading_space": " " + base,
        "trailing_x": base + "x",
        "short": base[:-1],
        "braces": "{" + base + "}",
        "number": 7,
        "null": None,
        "unicode_digit": base[:-1] + "\u0663",
    }
    return variants[kind]


ID_KINDS = st.sampled_from(
    [
        "valid",
        "valid",
        "upper",
        "version4",
        "variant",
        "no_dashes",
        "newline",
        "two_newlines",
        "leading_space",
        "trailing_x",
        "short",
        "braces",
        "number",
        "null",
        "unicode_digit",
    ]
)
JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=12),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner),
    max_leaves=8,
)


def _valid_event_json(i: int = 0) -> dict[str, Any]:
    started = NOW - timedelta(seconds=40)
    return {
        "v": 1,
        "id": new_id(),
        "device_id": "dev-a",
        "camera_id": "cam-1",
        "kind": "illegal_parking",
        "phase": "start",
        "severity": "medium",
        "started_at": started.isoformat(),
        "observed_at": (started + timedelta(seconds=20)).isoformat(),
        "zone_id": f"zone-{i % 5}",
        "location": {"lat": 45.46, "lon": 9.19},
        "objects": [
            {"label": "car", "score": 0.8, "box": {"x1": 0.1, "y1": 0.2, "x2": 0.3, "y2": 0.5}}
        ],
        "dwell_s": 20.0,
        "model": {"name": "ssd", "version": "1"},
        "summary": 'car "in" bay\\1',
        "attributes": {"plate": "AB123", "n": 3},
    }


@st.composite
def mutated_events(draw: st.DrawFn) -> dict[str, Any]:
    """A valid event with 0-4 of the mutations the optimised checks are about."""
    data = _valid_event_json(draw(st.integers(0, 4)))
    mutations = draw(
        st.lists(
            st.sampled_from(
                [
                    "id",
                    "started_at",
                    "observed_at",
                    "ended_at",
                    "ended_null",
                    "phase_end",
                    "box",
                    "attribute",
                    "summary",
                    "other_field",
                    "drop_field",
                ]
            ),
            max_size=4,
        )
    )
    for mutation in mutations:
        if mutation == "id":
            data["id"] = _id_from(new_id(), draw(ID_KINDS))
        elif mutation in {"started_at", "observed_at", "ended_at"}:
            data[mutation] = draw(timestamps())
        elif mutation == "ended_null":
            data["ended_at"] = None
        elif mutation == "phase_end":
            data["phase"] = "end"
        elif mutation == "box":
            box = {"x1": 0.1, "y1": 0.2, "x2": 0.3, "y2": 0.5}
            axis = draw(st.sampled_from(["x", "y"]))
            box[f"{axis}1"], box[f"{axis}2"] = box[f"{axis}2"], box[f"{axis}1"]
            data["objects"] = [{"label": "car", "score": 0.5, "box": box}]
        elif mutation == "attribute":
            size = draw(st.sampled_from([0, 1, 256, 257, 400]))
            digits = draw(st.booleans())  # a long numeric string would also pass as an int
            data["attributes"] = {"n": 1, "long": ("1" if digits else "a") * size}
        elif mutation == "summary":
            data["summary"] = "s" * draw(st.sampled_from([256, 257]))
        elif mutation == "other_field":
            key = draw(st.sampled_from(sorted(Event.model_fields)))
            data[key] = draw(JSON_VALUES)
        else:
            data.pop(draw(st.sampled_from(sorted(data))), None)
    return data


# --- the properties -----------------------------------------------------------------------------


@settings(max_examples=1500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=mutated_events())
def test_json_payloads_decide_like_the_reference(data: dict[str, Any]) -> None:
    payload = json.dumps(data)
    assert json_outcome(Event, payload) == json_outcome(_RefEvent, payload)


@settings(max_examples=300, deadline=None)
@given(payload=st.binary(max_size=400))
def test_random_bytes_decide_like_the_reference(payload: bytes) -> None:
    assert json_outcome(Event, payload) == json_outcome(_RefEvent, payload)


@st.composite
def python_events(draw: st.DrawFn) -> dict[str, Any]:
    """Connector-style input: datetime objects in any zone (or none), enums, nested dicts."""
    data = _valid_event_json()
    for name in ("started_at", "observed_at", "ended_at"):
        if draw(st.booleans()):
            at = NOW + timedelta(seconds=draw(OFFSETS))
            tz = draw(st.sampled_from(TZS))
            data[name] = at.astimezone(tz) if tz is not None else at.replace(tzinfo=None)
    if draw(st.booleans()):
        data["phase"] = draw(st.sampled_from(Phase))
    if draw(st.booleans()):
        data["id"] = _id_from(new_id(), draw(ID_KINDS))
    return data


@settings(max_examples=500, deadline=None)
@given(data=python_events())
def test_python_input_decides_like_the_reference(data: dict[str, Any]) -> None:
    assert python_outcome(Event, data) == python_outcome(_RefEvent, data)


# --- named cases (each one a rule the optimisation moved) -------------------------------------


def _patched(**patch: Any) -> str:
    return json.dumps({**_valid_event_json(), **patch})


FUTURE = (NOW + timedelta(hours=2)).isoformat()
PAST = (NOW - timedelta(hours=2)).isoformat()


@pytest.mark.parametrize(
    ("payload", "field", "reason"),
    [
        (_patched(id="not-a-uuid"), "id", RejectReason.SCHEMA),
        (_patched(id=new_id().upper()), "id", RejectReason.SCHEMA),
        (_patched(id=7), "id", RejectReason.SCHEMA),
        (_patched(started_at="2026-01-01T00:00:00"), "started_at", RejectReason.SCHEMA),
        (_patched(started_at=FUTURE), "started_at", RejectReason.FUTURE_TIMESTAMP),
        (_patched(observed_at=FUTURE), "observed_at", RejectReason.FUTURE_TIMESTAMP),
        (_patched(observed_at=PAST), "observed_at", RejectReason.SCHEMA),
        (_patched(ended_at=PAST), "ended_at", RejectReason.SCHEMA),
        (_patched(ended_at=FUTURE), "ended_at", RejectReason.FUTURE_TIMESTAMP),
        (_patched(phase="end"), "ended_at", RejectReason.SCHEMA),
        (_patched(attributes={"k": "x" * 257}), "attributes", RejectReason.SCHEMA),
        # Several bad fields: the first one in field order is reported, as before.
        (
            _patched(started_at=FUTURE, summary="s" * 300),
            "started_at",
            RejectReason.FUTURE_TIMESTAMP,
        ),
        (
            _patched(observed_at=PAST, attributes={"k": "x" * 257}),
            "observed_at",
            RejectReason.SCHEMA,
        ),
        (_patched(phase="end", summary="s" * 300), "summary", RejectReason.SCHEMA),
    ],
)
def test_named_rejections_match_the_reference(
    payload: str, field: str, reason: RejectReason
) -> None:
    outcome = json_outcome(Event, payload)
    assert outcome == json_outcome(_RefEvent, payload)
    assert outcome[1:2] == (field,)
    assert outcome[3] == reason.value


def test_box_order_is_still_reported_at_the_box() -> None:
    data = _valid_event_json()
    data["objects"][0]["box"] = {"x1": 0.5, "y1": 0.2, "x2": 0.3, "y2": 0.5}
    outcome = json_outcome(Event, json.dumps(data))
    assert outcome == json_outcome(_RefEvent, json.dumps(data))
    assert outcome[:3] == ("rejected", "objects.0.box", "Value error, x2 must be >= x1")


def test_accepted_timestamps_are_converted_to_utc() -> None:
    at = (NOW - timedelta(minutes=1)).astimezone(timezone(timedelta(hours=5, minutes=30)))
    payload = _patched(started_at=at.isoformat(), observed_at=at.isoformat())
    event = decode(Event, payload)
    assert event.started_at.tzinfo is UTC
    assert event.observed_at.tzinfo is UTC
    assert event.observed_at == at
    assert json_outcome(Event, payload) == json_outcome(_RefEvent, payload)


def test_an_id_with_a_trailing_newline_is_refused() -> None:
    # Python's "$" matches before a final newline; ``is_uuid7`` uses fullmatch and the core
    # pattern has no "\n?": such an id used to pass and then broke the SQL state.
    payload = _patched(id=new_id() + "\n")
    assert json_outcome(Event, payload)[:2] == ("rejected", "id")
    assert json_outcome(Event, payload) == json_outcome(_RefEvent, payload)


def test_non_finite_attribute_values_are_refused() -> None:
    for text in ("NaN", "Infinity", "-Infinity"):
        payload = _patched(attributes={"n": 1}).replace('"n": 1', f'"n": {text}')
        outcome = json_outcome(Event, payload)
        assert outcome[0] == "rejected", text
        assert str(outcome[1]).startswith("attributes.n"), outcome


def test_a_timestamp_that_overflows_in_utc_is_refused_with_its_field() -> None:
    payload = _patched(started_at="0001-01-01T00:00:00+05:00")
    assert json_outcome(Event, payload)[:2] == ("rejected", "started_at")


def test_free_text_with_a_nul_is_refused_with_its_field() -> None:
    # PostgreSQL cannot store U+0000 in text or JSONB: an event summary becomes an incident title.
    outcome = json_outcome(Event, _patched(summary="bad\u0000title"))
    assert outcome[:2] == ("rejected", "summary")
    assert "NUL" in str(outcome[2])
    assert json_outcome(Event, _patched(summary="fine \u00e9"))[0] == "accepted"
