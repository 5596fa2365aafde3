"""The outbox bound while the broker is down, seen from the cloud side after it comes back."""

from collections.abc import Callable
from pathlib import Path

import pytest

from edge.uplink.mqtt import MqttUplink
from edge.uplink.outbox import MessageKind, Outbox, OutboxMessage
from edge.uplink.settings import OutboxSettings
from shared.codec import decode
from shared.events import Event, Severity
from shared.telemetry import Telemetry
from shared.topics import Channel, subscription, topic
from tests.conftest import Broker
from tests.edge.uplink.helpers import make_event, recorder, uplink_settings

pytestmark = pytest.mark.services


def test_full_outbox_keeps_high_severity_and_reports_what_it_dropped(
    broker_factory: Callable[[], Broker], tmp_path: Path
) -> None:
    broker = broker_factory()
    settings = uplink_settings(broker, "dev-a", tmp_path / "o.db", telemetry_interval_s=0.5)
    settings = settings.model_copy(
        update={"outbox": OutboxSettings(path=tmp_path / "o.db", max_rows=15)}
    )
    filters = [subscription(Channel.EVENT, "dev-a"), subscription(Channel.TELEMETRY, "dev-a")]
    with recorder(broker, filters, "rec-bounds") as rec:
        broker.server.stop()
        outbox = Outbox(settings.outbox)
        for i in range(3):
            outbox.put(
                OutboxMessage(MessageKind.TELEMETRY, topic("dev-a", Channel.TELEMETRY), b"%d" % i)
            )
        uplink = MqttUplink(settings, "dev-a", outbox)
        uplink.start()
        high = [make_event("dev-a", Severity.HIGH) for _ in range(10)]
        low = [make_event("dev-a", Severity.LOW) for _ in range(10)]
        info = [make_event("dev-a", Severity.INFO) for _ in range(5)]
        for event in [*high, *low, *info]:
            uplink.emit(event)
        assert outbox.depth == 15
        broker.server.start()
        event_topic = topic("dev-a", Channel.EVENT)
        rec.wait_for(lambda: len(rec.payloads(event_topic)) >= 15, 20, "the kept events")
        assert uplink.wait_drained(10)
        arrived = [decode(Event, p).id for p in rec.payloads(event_topic)]
        assert arrived == [e.id for e in [*high, *low[5:]]]  # info, then the oldest low, went
        tel_topic = topic("dev-a", Channel.TELEMETRY)
        rec.wait_for(
            lambda: any(p.startswith(b"{") for p in rec.payloads(tel_topic)), 10, "telemetry"
        )
        reports = [decode(Telemetry, p) for p in rec.payloads(tel_topic) if p.startswith(b"{")]
        assert reports[-1].dropped_events == 10
        assert reports[-1].dropped_telemetry >= 3
        uplink.stop()
        outbox.close()
