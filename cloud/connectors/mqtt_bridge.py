"""MQTT bridge: JSON records from a partner broker's topic tree, reconnecting with backoff."""

import asyncio
import json
import logging
import ssl
from typing import Any

import aiomqtt

from cloud.connectors.config import MqttBridgeSource, secret_from_env
from cloud.connectors.intake import Intake
from cloud.store.base import StoreUnavailableError

logger = logging.getLogger(__name__)


def message_records(topic: str, payload: bytes) -> list[Any]:
    """Records in one message; each object gets ``_topic`` and ``_topic_parts`` for mappings."""
    data = json.loads(payload)
    items = data if isinstance(data, list) else [data]
    parts = topic.split("/")
    return [
        {**item, "_topic": topic, "_topic_parts": parts} if isinstance(item, dict) else item
        for item in items
    ]


class MqttBridge:
    def __init__(self, source: MqttBridgeSource, intake: Intake) -> None:
        self.source = source
        self.intake = intake
        self.connected = asyncio.Event()

    def _client(self) -> aiomqtt.Client:
        source = self.source
        password = secret_from_env(source.password_env, f"sources.{source.id}.password_env")
        tls = ssl.create_default_context(cafile=str(source.tls_ca)) if source.tls_ca else None
        if tls is not None and source.tls_cert is not None and source.tls_key is not None:
            tls.load_cert_chain(str(source.tls_cert), str(source.tls_key))
        return aiomqtt.Client(
            source.host,
            source.port,
            username=source.username,
            password=password.get_secret_value() if password else None,
            identifier=f"cityops-bridge-{source.id}",
            tls_context=tls,
        )

    async def handle(self, topic: str, payload: bytes) -> None:
        try:
            records = message_records(topic, payload)
        except ValueError as exc:
            self.intake.health.records_total += 1
            self.intake.health.rejected_total += 1
            self.intake.health.error(f"{topic}: payload is not JSON: {exc}")
            logger.warning("source %s: non-JSON payload on %s", self.source.id, topic)
            return
        delay = self.source.reconnect_initial_s
        while True:
            try:
                await self.intake.ingest(records)
            except StoreUnavailableError as exc:
                # Hold the message (and so the subscription) until the store takes it.
                logger.warning(
                    "source %s: store unavailable (%s); retry in %.1f s", self.source.id, exc, delay
                )
                await asyncio.sleep(delay)
                delay = min(delay * 2, self.source.reconnect_max_s)
            else:
                return

    async def run(self) -> None:
        failures = 0
        while True:
            try:
                async with self._client() as client:
                    for topic_filter in self.source.topics:
                        await client.subscribe(topic_filter, qos=self.source.qos)
                    failures = 0
                    self.connected.set()
                    logger.info("source %s: bridged %s", self.source.id, self.source.topics)
                    async for message in client.messages:
                        payload = message.payload
                        raw = payload if isinstance(payload, bytes) else str(payload).encode()
                        await self.handle(str(message.topic), raw)
            except aiomqtt.MqttError as exc:
                self.connected.clear()
                failures += 1
                self.intake.health.error(f"broker: {exc}")
                delay = min(
                    self.source.reconnect_initial_s * 2 ** (failures - 1),
                    self.source.reconnect_max_s,
                )
                logger.warning(
                    "source %s: broker connection lost (%s); retry in %.1f s",
                    self.source.id,
                    exc,
                    delay,
                )
                await asyncio.sleep(delay)
