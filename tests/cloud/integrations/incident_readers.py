"""A subscriber to the incident topics, connecting as Home Assistant would (device listener)."""

import json
import threading
from dataclasses import dataclass, field
from typing import Any

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion

from shared.topics import incident_filter
from tests.conftest import Broker


@dataclass
class Reader:
    client: paho.Client
    messages: list[tuple[str, dict[str, Any], dict[str, str]]] = field(default_factory=list)
    """(topic, notice, user properties) in arrival order."""
    subscribed: threading.Event = field(default_factory=threading.Event)

    def delivery_ids(self) -> list[str]:
        return [props["delivery"] for _, _, props in self.messages]

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def subscribe_incidents(broker: Broker, user: str) -> Reader:
    """Connect as *user* and subscribe to every incident topic (the ACL filters what arrives)."""
    client = paho.Client(CallbackAPIVersion.VERSION2, client_id=user, protocol=paho.MQTTv5)
    client.username_pw_set(user, broker.users[user])
    reader = Reader(client)

    def on_connect(c: paho.Client, *_: Any) -> None:
        c.subscribe(incident_filter(), qos=1)

    def on_subscribe(*_: Any) -> None:
        reader.subscribed.set()

    def on_message(_c: Any, _u: Any, msg: paho.MQTTMessage) -> None:
        props = dict(getattr(msg.properties, "UserProperty", []) or [])
        reader.messages.append((msg.topic, json.loads(msg.payload), props))

    client.on_connect = on_connect
    client.on_subscribe = on_subscribe
    client.on_message = on_message
    client.connect(broker.host, broker.port)
    client.loop_start()
    if not reader.subscribed.wait(10):
        reader.close()
        raise TimeoutError(f"{user} did not subscribe to the incident topics")
    return reader
