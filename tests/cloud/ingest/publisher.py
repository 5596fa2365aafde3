"""A small synchronous MQTT 5 publisher (paho) standing in for devices in ingest tests."""

import uuid
from types import TracebackType
from typing import Self

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion
from pydantic import BaseModel

from shared.codec import encode
from shared.topics import Channel, topic


class Publisher:
    def __init__(self, host: str, port: int, username: str, password: str) -> None:
        self.client = paho.Client(
            CallbackAPIVersion.VERSION2,
            client_id=f"pub-{uuid.uuid4().hex[:12]}",
            protocol=paho.MQTTv5,
        )
        self.client.username_pw_set(username, password)
        self.client.max_inflight_messages_set(1000)
        self.client.max_queued_messages_set(0)
        self.client.connect(host, port)
        self.client.loop_start()
        self._pending: list[paho.MQTTMessageInfo] = []

    def raw(self, topic_name: str, payload: bytes, *, retain: bool = False) -> None:
        self._pending.append(self.client.publish(topic_name, payload, qos=1, retain=retain))

    def send(self, message: BaseModel, channel: Channel, device_id: str | None = None) -> None:
        device = device_id or str(getattr(message, "device_id"))  # noqa: B009
        self.raw(topic(device, channel), encode(message), retain=channel is Channel.STATUS)

    def flush(self, timeout: float = 30.0) -> None:
        """Block until the broker has acknowledged every message sent so far."""
        for info in self._pending:
            info.wait_for_publish(timeout)
            assert info.is_published(), "broker did not acknowledge a publish"
        self._pending.clear()

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()
