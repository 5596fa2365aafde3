"""2,000 events produced while the broker is down for 20 s: every one arrives, none twice."""

import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from edge.uplink.mqtt import MqttUplink
from edge.uplink.outbox import Outbox
from shared.events import Event
from shared.topics import Channel, subscription, topic
from tests.conftest import Broker
from tests.edge.uplink.helpers import id_counts, make_event, recorder, uplink_settings

pytestmark = pytest.mark.services

DOWNTIME_S = 20.0
DURING_OUTAGE = 2000


def emit_spread(uplink: MqttUplink, events: list[Event], seconds: float) -> None:
    """Emit *events* evenly over *seconds*, as a pipeline would."""
    start = time.monotonic()
    for i, event in enumerate(events):
        uplink.emit(event)
        ahead = start + seconds * (i + 1) / len(events) - time.monotonic()
        if ahead > 0:
            time.sleep(ahead)


def test_broker_outage_of_20_s_loses_and_duplicates_nothing(
    broker_factory: Callable[[], Broker], tmp_path: Path
) -> None:
    broker = broker_factory()
    settings = uplink_settings(broker, "dev-a", tmp_path / "outbox.db", backoff_max_s=2.0)
    event_topic = topic("dev-a", Channel.EVENT)
    with recorder(broker, [subscription(Channel.EVENT, "dev-a")], "rec-outage") as rec:
        uplink = MqttUplink(settings, "dev-a", Outbox(settings.outbox))
        uplink.start()
        assert uplink.wait_connected(5)
        before = [make_event("dev-a") for _ in range(100)]
        emit_spread(uplink, before, 1.0)
        assert uplink.wait_drained(10)

        broker.server.stop()
        outage = [make_event("dev-a") for _ in range(DURING_OUTAGE)]
        emit_spread(uplink, outage, DOWNTIME_S - 1.0)
        assert not uplink.connected
        assert uplink.outbox.depth == DURING_OUTAGE
        time.sleep(max(0.0, DOWNTIME_S - 19.0))
        broker.server.start()

        # New events keep coming while the backlog drains, and queue behind it.
        after = [make_event("dev-a") for _ in range(200)]
        producer = threading.Thread(target=emit_spread, args=(uplink, after, 2.0))
        producer.start()
        assert uplink.wait_connected(10), "uplink did not reconnect"
        producer.join()
        expected = before + outage + after
        rec.wait_for(lambda: len(rec.payloads(event_topic)) >= len(expected), 60, "every event")
        assert uplink.wait_drained(10)
        time.sleep(0.5)  # a late duplicate would show up here
        counts = id_counts(rec.payloads(event_topic))
        assert set(counts) == {e.id for e in expected}, "events lost"
        assert max(counts.values()) == 1, "events duplicated"
        # The backlog went out oldest first.
        outage_ids = {o.id for o in outage}
        arrived = [e for e in counts if e in outage_ids]
        assert arrived == [e.id for e in outage]
        assert uplink.counters().connects == 2
        stats = uplink.outbox.stats()
        assert (stats.dropped_events, stats.rejected) == (0, 0)
        uplink.stop()
        uplink.outbox.close()
