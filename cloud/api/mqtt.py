"""The API's own MQTT connection: publishes retained configs and commands, receives ``cmd/ack``."""

import asyncio
import contextlib
import logging
import ssl
from collections.abc import Sequence

import aiomqtt
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from cloud.db.devices import Device
from cloud.db.ops import CommandRecord
from cloud.ops.errors import UnavailableError
from cloud.settings import MqttClientSettings
from shared.codec import decode, encode
from shared.commands import CommandAck, CommandName
from shared.config import DeviceConfig
from shared.errors import ContractError
from shared.ids import new_id
from shared.topics import Channel, parse, subscription, topic

logger = logging.getLogger(__name__)
_RECONNECT_MAX_S = 30.0


class ApiMqtt:
    def __init__(self, settings: MqttClientSettings, sessions: sessionmaker[Session]) -> None:
        self.settings = settings
        self.sessions = sessions
        self.connected = asyncio.Event()
        self._client: aiomqtt.Client | None = None
        self._waiters: dict[str, asyncio.Future[CommandAck]] = {}

    def _make_client(self) -> aiomqtt.Client:
        s = self.settings
        tls = None
        if s.tls_ca is not None:
            tls = aiomqtt.TLSParameters(ca_certs=str(s.tls_ca), cert_reqs=ssl.CERT_REQUIRED)
        return aiomqtt.Client(
            hostname=s.host,
            port=s.port,
            username=s.username,
            password=s.password.get_secret_value() if s.password else None,
            identifier=s.client_id or f"cityops-api-{new_id()[-12:]}",
            protocol=aiomqtt.ProtocolVersion.V5,
            tls_params=tls,
            keepalive=30,
        )

    async def run(self, stop: asyncio.Event) -> None:
        """Stay connected until *stop* is set, reconnecting with backoff."""
        delay = 1.0
        while not stop.is_set():
            try:
                async with self._make_client() as client:
                    self._client = client
                    await client.subscribe(subscription(Channel.CMD_ACK), qos=1)
                    self.connected.set()
                    delay = 1.0
                    logger.info(
                        "api mqtt connected to %s:%s", self.settings.host, self.settings.port
                    )
                    await self._republish_pending()
                    receive: asyncio.Task[None] = asyncio.create_task(self._receive(client))
                    stopping: asyncio.Task[bool] = asyncio.create_task(stop.wait())
                    try:
                        await asyncio.wait({receive, stopping}, return_when="FIRST_COMPLETED")
                    finally:
                        receive.cancel()
                        stopping.cancel()
                    if receive.done() and not receive.cancelled():
                        error = receive.exception()
                        if error is not None:
                            raise error
            except aiomqtt.MqttError as exc:
                logger.warning("api mqtt: %s; reconnecting in %.0f s", exc, delay)
            finally:
                self.connected.clear()
                self._client = None
            if not stop.is_set():
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), delay)
                delay = min(delay * 2, _RECONNECT_MAX_S)

    async def _receive(self, client: aiomqtt.Client) -> None:
        async for message in client.messages:
            try:
                self.handle_ack(str(message.topic), bytes(message.payload))
            except ContractError as exc:
                logger.warning("bad cmd/ack on %s: %s", message.topic, exc)

    def handle_ack(self, topic_name: str, payload: bytes) -> CommandAck:
        parsed = parse(topic_name)
        ack = decode(CommandAck, payload)
        if ack.device_id != parsed.device_id:
            raise ContractError("device_id", "differs from the topic's device id")
        with self.sessions() as session:
            if ack.name is CommandName.CONFIG and ack.config_version is not None:
                device = session.get(Device, ack.device_id)
                if device is not None and ack.ok:
                    device.config_acked_version = max(
                        ack.config_version, device.config_acked_version or 0
                    )
                    device.config_ack_message = ack.message
                elif device is not None:
                    device.config_ack_message = f"refused v{ack.config_version}: {ack.message}"
            elif ack.command_id is not None:
                record = session.get(CommandRecord, ack.command_id)
                if record is not None and record.device_id == ack.device_id:
                    record.ack = ack.model_dump_json(exclude_none=True)
                    record.acked_at = ack.ts
            session.commit()
        waiter = self._waiters.pop(ack.command_id or "", None)
        if waiter is not None and not waiter.done():
            waiter.set_result(ack)
        return ack

    async def _republish_pending(self) -> None:
        """Configs saved while the broker was away go out now (retained, so devices get them)."""
        with self.sessions() as session:
            rows = session.scalars(select(Device).where(Device.config.is_not(None))).all()
            pending = [
                DeviceConfig.model_validate(r.config)
                for r in rows
                if r.config is not None and (r.config_acked_version or 0) < r.config_version
            ]
        for config in pending:
            await self.publish(topic(config.device_id, Channel.CONFIG), encode(config), retain=True)

    async def publish(self, topic_name: str, payload: bytes, *, retain: bool = False) -> None:
        client = self._client
        if client is None or not self.connected.is_set():
            raise UnavailableError("the MQTT broker is not connected; try again", field="mqtt")
        try:
            await client.publish(topic_name, payload, qos=1, retain=retain)
        except aiomqtt.MqttError as exc:
            raise UnavailableError(f"publish failed: {exc}", field="mqtt") from exc

    def expect_ack(self, command_id: str) -> "asyncio.Future[CommandAck]":
        future: asyncio.Future[CommandAck] = asyncio.get_running_loop().create_future()
        self._waiters[command_id] = future
        return future

    def forget(self, command_ids: Sequence[str]) -> None:
        for command_id in command_ids:
            self._waiters.pop(command_id, None)
