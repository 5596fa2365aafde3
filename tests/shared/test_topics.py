import pytest

from shared.errors import TopicError
from shared.topics import Channel, parse, shared_subscription, subscription, topic


@pytest.mark.parametrize("channel", list(Channel))
def test_topic_round_trip(channel: Channel) -> None:
    parsed = parse(topic("cam-01", channel))
    assert parsed.device_id == "cam-01"
    assert parsed.channel is channel


@pytest.mark.parametrize("device_id", ["", "a/b", "+", "#", "$SYS", "Cam", "a b", "x" * 64, "-a"])
def test_bad_device_ids_cannot_reach_a_topic(device_id: str) -> None:
    with pytest.raises(TopicError):
        topic(device_id, Channel.EVENT)


@pytest.mark.parametrize(
    "name",
    [
        "other/v1/x/event",
        "cityops/v1/x",
        "cityops/v1/x/unknown",
        "cityops/v1/a+b/event",
        "cityops/v1/x/event/more",
    ],
)
def test_parse_rejects_foreign_topics(name: str) -> None:
    with pytest.raises(TopicError):
        parse(name)


def test_subscriptions() -> None:
    assert subscription(Channel.EVENT) == "cityops/v1/+/event"
    assert subscription(Channel.CMD, "cam-1") == "cityops/v1/cam-1/cmd"
    assert shared_subscription("ingest", Channel.EVENT) == "$share/ingest/cityops/v1/+/event"
    with pytest.raises(TopicError):
        shared_subscription("bad/group", Channel.EVENT)
