"""The fast ``event_line``/``event_body`` write exactly what the plain versions wrote.

``reference_event_line`` is ``cloud.store.line_protocol.event_line`` as it was (tags and fields
appended one by one, ``string_field`` for every string, ``model_dump_json(exclude=...)`` for
the body). Events with and without snapshot, location, camera and zone, and strings full of
quotes, backslashes, newlines, commas and non-ASCII go through both.
"""

import base64
import math
from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cloud.store import line_protocol
from cloud.store.line_protocol import (
    EVENTS,
    SNAPSHOT_CHUNK,
    event_line,
    event_time_ns,
    float_field,
    string_field,
    tag,
)
from cloud.store.records import event_body, event_from_body, to_us
from shared.events import Event, EventKind, Phase, Severity
from tests.cloud.store.factories import make_event

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def reference_body(event: Event) -> str:
    return event.model_dump_json(exclude={"snapshot"}, exclude_none=True)


def reference_to_us(value: datetime) -> int:
    delta = value.astimezone(UTC) - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def reference_event_line(event: Event) -> str:
    tags = [f"{EVENTS},device={tag(event.device_id)}"]
    if event.camera_id is not None:
        tags.append(f"camera={tag(event.camera_id)}")
    tags.append(f"kind={tag(event.kind.value)}")
    tags.append(f"severity={tag(event.severity.value)}")
    if event.zone_id is not None:
        tags.append(f"zone={tag(event.zone_id)}")
    fields = [
        f"id={string_field(event.id)}",
        f"phase={string_field(event.phase.value)}",
        f"dwell_s={float_field(event.dwell_s) or '0.0'}",
        f"objects={len(event.objects)}i",
        f"body={string_field(reference_body(event))}",
    ]
    if event.location is not None:
        fields.append(f"lat={event.location.lat!r}")
        fields.append(f"lon={event.location.lon!r}")
    snap = event.snapshot
    if snap is not None:
        data = base64.b64encode(snap.data).decode()
        fields.append(f"snap_w={snap.width}i")
        fields.append(f"snap_h={snap.height}i")
        chunks = [data[i : i + SNAPSHOT_CHUNK] for i in range(0, len(data), SNAPSHOT_CHUNK)]
        fields.extend(f"snap_{n}={string_field(chunk)}" for n, chunk in enumerate(chunks))
    observed_ms = reference_to_us(event.observed_at) // 1000
    time_ns = observed_ms * 1_000_000 + int(event.id[-5:], 16) % 1_000_000
    return f"{','.join(tags)} {','.join(fields)} {time_ns}"


ODD = st.text(
    alphabet=st.sampled_from(
        ['"', "\\", "\n", "\r", "\t", "\x00", ",", "=", " ", "é", "€", "🚗", "a"]
    )
    | st.characters(exclude_categories=["Cs"]),  # lone surrogates are not text
    max_size=40,
)
ZONES = st.sampled_from(["Zone.A-1", "bay_2", "z"])


@st.composite
def odd_events(draw: st.DrawFn) -> Event:
    """Events with odd strings (attribute floats are finite: the contract refuses NaN/inf)."""
    numbers = st.floats(allow_nan=False, allow_infinity=False)
    attributes = draw(
        st.dictionaries(
            st.text(st.characters(exclude_categories=["Cs"]), min_size=1, max_size=8),
            st.one_of(ODD, st.integers(-5, 5), numbers, st.booleans()),
            max_size=4,
        )
    )
    phase = draw(st.sampled_from(Phase))
    observed = datetime.now(UTC) - timedelta(seconds=draw(st.integers(1, 10**6)))
    overrides = {
        "summary": draw(ODD).replace("\x00", ""),  # the contract refuses NUL in free text
        "attributes": attributes,
        "kind": draw(st.sampled_from(EventKind)),
        "severity": draw(st.sampled_from(Severity)),
        "phase": phase,
        "ended_at": observed if phase is Phase.END else None,
        "camera_id": draw(st.one_of(st.none(), ZONES)),
        "zone_id": draw(st.one_of(st.none(), ZONES)),
        "dwell_s": draw(st.floats(min_value=0, max_value=1e6)),
    }
    if draw(st.booleans()):
        overrides["location"] = None
    if draw(st.booleans()):
        overrides["objects"] = []
    return make_event(
        draw(st.sampled_from(["dev-a", "cam_2", "0"])),
        observed_at=observed.astimezone(timezone(timedelta(hours=draw(st.integers(-12, 12))))),
        snapshot=draw(st.booleans()),
        **overrides,
    )


@settings(max_examples=300, deadline=None)
@given(event=odd_events())
def test_line_and_body_are_the_same_text_as_before(event: Event) -> None:
    assert event_body(event) == reference_body(event)
    assert event_line(event) == reference_event_line(event)
    assert to_us(event.observed_at) == reference_to_us(event.observed_at)


@settings(max_examples=300, deadline=None)
@given(event=odd_events())
def test_body_reads_back_as_an_equal_event(event: Event) -> None:
    assert event_from_body(event_body(event), event.snapshot) == event


@pytest.mark.parametrize("snapshot", [False, True])
def test_odd_strings_round_trip_through_the_line(snapshot: bool) -> None:
    text = 'say "hi"\\ to\nthe \\"bay\\"\r\t, a=b ünïcödé 🚗 \x00 \u2028'
    summary = text.replace("\x00", "")  # the contract refuses NUL in free text, not attributes
    event = make_event(snapshot=snapshot, summary=summary, attributes={'k"\\\n': text})
    line = event_line(event)
    assert line == reference_event_line(event)
    assert "\n" not in line  # one point, one line
    body_field = line.split(",body=", 1)[1]
    # Undo the line protocol escaping of the string field, then read the JSON back.
    body = body_field[1 : body_field.index('"', 1 + _escaped_prefix(body_field[1:]))]
    restored = body.replace('\\"', '"').replace("\\\\", "\\")
    assert event_from_body(restored, event.snapshot) == event
    assert ("snap_0=" in line) is snapshot


def _escaped_prefix(text: str) -> int:
    """Length of *text* up to its first unescaped double quote."""
    i = 0
    while i < len(text):
        if text[i] == "\\":
            i += 2
            continue
        if text[i] == '"':
            return i
        i += 1
    return i


def test_series_tags_are_remembered_and_the_cache_is_bounded(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(line_protocol, "_SERIES_CACHE_SIZE", 2)
    monkeypatch.setattr(line_protocol, "_series", {})
    events = [make_event(f"dev-{i}") for i in range(5)]
    for event in events * 2:
        assert event_line(event) == reference_event_line(event)
        assert len(line_protocol._series) <= 2


def test_time_ns_matches_the_reference_for_any_offset() -> None:
    for hours in (-12, -3.5, 0, 5.75, 14):
        tz = timezone(timedelta(hours=hours))
        event = make_event(observed_at=datetime.now(UTC).astimezone(tz) - timedelta(minutes=1))
        expected = (reference_to_us(event.observed_at) // 1000) * 1_000_000
        assert event_time_ns(event) - expected == int(event.id[-5:], 16) % 1_000_000
        assert math.isclose(to_us(event.observed_at) / 1e6, event.observed_at.timestamp())
