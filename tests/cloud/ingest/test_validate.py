"""Property tests: whatever arrives, the validator answers with a decision and never raises."""

import json
from datetime import timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from cloud.db.ingest import RejectReason
from cloud.ingest.batch import Accepted, Received, Rejection
from cloud.ingest.validate import Validator
from cloud.settings import IngestSettings
from shared.clock import utcnow
from shared.events import Event
from shared.topics import Channel, topic
from tests.cloud.store.factories import make_event, make_telemetry

VALIDATOR = Validator(IngestSettings(max_future_skew_s=60, dedup_window_s=3600))
CHANNELS = [Channel.EVENT, Channel.TELEMETRY, Channel.STATUS, Channel.CMD_ACK]
JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner),
    max_leaves=20,
)


def received(topic_name: str, payload: bytes) -> Received:
    return Received(topic_name, payload, qos=1, mid=1, generation=1, received_at=utcnow())


@settings(max_examples=300, deadline=None)
@given(payload=st.binary(max_size=2000), channel=st.sampled_from(CHANNELS))
def test_random_bytes_are_rejected_as_json_or_schema(payload: bytes, channel: Channel) -> None:
    out = VALIDATOR.check(received(topic("dev-a", channel), payload))
    assert isinstance(out, Rejection)
    assert out.reason in {RejectReason.INVALID_JSON, RejectReason.SCHEMA}
    assert out.device_id == "dev-a"


@settings(max_examples=300, deadline=None)
@given(value=JSON, channel=st.sampled_from(CHANNELS))
def test_random_json_is_rejected_with_a_field(value: object, channel: Channel) -> None:
    out = VALIDATOR.check(received(topic("dev-a", channel), json.dumps(value).encode()))
    assert isinstance(out, Rejection)
    assert out.reason in {RejectReason.SCHEMA, RejectReason.INVALID_JSON}
    assert out.field


@settings(max_examples=300, deadline=None)
@given(key=st.sampled_from(sorted(Event.model_fields)), value=JSON)
def test_a_mutated_event_gets_a_decision(key: str, value: object) -> None:
    data = json.loads(make_event().model_dump_json())
    data[key] = value
    out = VALIDATOR.check(received(topic("dev-a", Channel.EVENT), json.dumps(data).encode()))
    assert isinstance(out, Accepted | Rejection)
    if isinstance(out, Rejection):
        assert out.reason is not RejectReason.BAD_TOPIC


@settings(max_examples=200, deadline=None)
@given(name=st.text(max_size=80))
def test_random_topics_never_raise(name: str) -> None:
    out = VALIDATOR.check(received(name, make_event().model_dump_json().encode()))
    assert isinstance(out, Accepted | Rejection)


def test_skew_and_replay_limits_come_from_settings() -> None:
    soon = make_telemetry(ts=utcnow() + timedelta(seconds=30))
    late = make_telemetry(ts=utcnow() + timedelta(seconds=90))
    tele = topic("dev-a", Channel.TELEMETRY)
    assert isinstance(VALIDATOR.check(received(tele, soon.model_dump_json().encode())), Accepted)
    out = VALIDATOR.check(received(tele, late.model_dump_json().encode()))
    assert isinstance(out, Rejection)
    assert (out.reason, out.field) == (RejectReason.FUTURE_TIMESTAMP, "ts")

    from shared.ids import new_id

    two_hours = int((utcnow() - timedelta(hours=2)).timestamp() * 1000)
    old = make_event(id=new_id(at_ms=two_hours), observed_at=utcnow() - timedelta(hours=2))
    out = VALIDATOR.check(received(topic("dev-a", Channel.EVENT), old.model_dump_json().encode()))
    assert isinstance(out, Rejection)
    assert (out.reason, out.field) == (RejectReason.REPLAY, "id")


def test_remembered_topics_still_check_the_payload_device() -> None:
    validator = Validator(IngestSettings())
    name = topic("dev-a", Channel.EVENT)
    for _ in range(2):  # the second pass takes the topic from the cache
        ok = validator.check(
            received(name, make_event(device_id="dev-a").model_dump_json().encode())
        )
        assert isinstance(ok, Accepted)
        assert ok.device_id == "dev-a"
        other = make_event(device_id="dev-b").model_dump_json().encode()
        out = validator.check(received(name, other))
        assert isinstance(out, Rejection)
        assert (out.reason, out.field) == (RejectReason.DEVICE_MISMATCH, "device_id")
        bad = validator.check(received("cityops/v1/Bad Id/event", other))
        assert isinstance(bad, Rejection)
        assert bad.reason is RejectReason.BAD_TOPIC
