"""Delivery contract 2 without an ingestor: a PUBACK deletes nothing, an EventAck does."""

import time
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from edge.uplink.mqtt import MqttUplink
from edge.uplink.outbox import Outbox
from shared.acks import EventAck
from shared.clock import utcnow
from shared.codec import encode
from shared.topics import Channel, subscription, topic
from tests.conftest import ADMIN_USER, Broker
from tests.edge.uplink.helpers import id_counts, make_event, recorder, statuses, uplink_settings

pytestmark = pytest.mark.services


def confirm_as_admin(broker: Broker, ack: EventAck) -> None:
    """What the ingestor does after a commit (tooling may write any topic)."""
    client = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
    client.username_pw_set(ADMIN_USER, broker.users[ADMIN_USER])
    client.connect(broker.host, broker.service_port)
    client.loop_start()
    client.publish(topic(ack.device_id, Channel.EVENT_ACK), encode(ack), qos=1).wait_for_publish(5)
    client.disconnect()
    client.loop_stop()


def test_unconfirmed_events_are_sent_again_with_the_same_id_until_confirmed(
    mosquitto: Broker, tmp_path: Path
) -> None:
    settings = uplink_settings(
        mosquitto, "dev-c", tmp_path / "outbox.db", delivery="stored", confirm_timeout_s=0.5
    )
    events = [make_event("dev-c") for _ in range(5)]
    event_topic = topic("dev-c", Channel.EVENT)
    filters = [subscription(Channel.EVENT, "dev-c"), subscription(Channel.STATUS, "dev-c")]
    with recorder(mosquitto, filters, "rec-confirm") as rec:
        uplink = MqttUplink(settings, "dev-c", Outbox(settings.outbox))
        uplink.emit_many(events)
        uplink.start()
        try:
            assert uplink.wait_connected(5)
            # PUBACKs came long ago; nothing confirmed them, so they go again, same ids.
            rec.wait_for(
                lambda: min(id_counts(rec.payloads(event_topic)).values(), default=0) >= 2,
                10,
                "every event sent twice",
            )
            assert set(id_counts(rec.payloads(event_topic))) == {e.id for e in events}
            assert uplink.outbox.depth == 5
            assert statuses(rec, "dev-c")[-1].contract == 2
            stored, refused = events[:4], events[4:]
            confirm_as_admin(
                mosquitto,
                EventAck(
                    device_id="dev-c",
                    ts=utcnow(),
                    stored=[e.id for e in stored],
                    refused=[e.id for e in refused],
                ),
            )
            assert uplink.wait_drained(5)
            sent = len(rec.payloads(event_topic))
            time.sleep(1.5)  # three timeouts: nothing confirmed is sent again
            assert len(rec.payloads(event_topic)) == sent
            counters = uplink.counters()
            assert (counters.confirmed, counters.rejected) == (4, 1)
            assert counters.resent >= 5
            assert uplink.outbox.stats().rejected == 1
        finally:
            uplink.stop()
            uplink.outbox.close()


@pytest.mark.parametrize(("user", "port"), [("dev-a", "port"), ("cityops-api", "service_port")])
def test_only_ingest_may_confirm_events_to_a_device(
    mosquitto: Broker, user: str, port: str
) -> None:
    client = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
    client.username_pw_set(user, mosquitto.users[user])
    reasons: list[int] = []
    client.on_publish = lambda _c, _u, _m, rc, _p: reasons.append(int(rc.value))
    client.connect(mosquitto.host, getattr(mosquitto, port))
    client.loop_start()
    ack = EventAck(device_id="dev-c", ts=utcnow(), stored=[make_event("dev-c").id])
    client.publish(topic("dev-c", Channel.EVENT_ACK), encode(ack), qos=1).wait_for_publish(5)
    client.disconnect()
    client.loop_stop()
    assert reasons == [135]  # not authorised: a forged ack would make the device delete events
