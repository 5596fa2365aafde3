"""The ingestor's connection to the broker, behind one small interface with two clients.

``wire`` (default) is the ingestor's own MQTT 5 subscriber (``cloud.ingest.wire``): it reads
many PUBLISH packets per socket read and writes many PUBACKs per write, which is what lets one
process keep up with tens of thousands of events per second. ``aiomqtt`` is the aiomqtt client
(paho underneath, switched to manual acknowledgements); it is kept as a choice and tested with the
same suite. Both give ``Received`` records and acknowledge only when the service says so.
"""

import asyncio
import contextlib
import socket
import ssl
from collections.abc import AsyncIterator, Sequence
from datetime import datetime
from typing import Protocol

import aiomqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from cloud.ingest import paho_speedup
from cloud.ingest.batch import Received
from cloud.ingest.wire import (
    ConnectionLostError,
    ConnectOptions,
    ConnectRefusedError,
    Endpoint,
    WireSession,
)
from cloud.settings import CloudSettings
from shared.clock import utcnow
from shared.limits import MAX_PACKET_BYTES
from shared.topics import Channel, shared_subscription, subscription

_REFUSED = 0x80


class BrokerError(Exception):
    """Could not connect, was refused, or lost the connection; the service reconnects."""


class Inbox(Protocol):
    """One subscribed connection, as the service sees it."""

    generation: int
    """Connection number: a packet id is only valid on the connection it arrived on."""

    @property
    def closed(self) -> bool: ...

    @property
    def pending(self) -> int: ...

    def take(self, limit: int) -> list[Received]: ...

    async def wait(self, timeout_s: float) -> bool:
        """Wait for a record; False on timeout; ``BrokerError`` when the connection is gone."""
        ...

    def ack(self, received: Sequence[Received]) -> None: ...

    def publish(self, topic: str, payload: bytes) -> None:
        """QoS 0 publish (stored-event acks); dropped silently if the connection is gone."""
        ...

    async def leave(self) -> None:
        """Leave the share groups (UNSUBSCRIBE) and end the session when the connection closes."""
        ...


def subscriptions(settings: CloudSettings) -> list[tuple[str, int]]:
    group = settings.ingest.share_group
    topics = [
        (shared_subscription(group, ch), 1)
        for ch in (Channel.EVENT, Channel.TELEMETRY, Channel.CMD_ACK)
    ]
    # Retained presence is not sent on shared subscriptions (MQTT 5, 4.8.2), so every
    # ingestor reads status directly; applying the same state twice is harmless.
    topics.append((subscription(Channel.STATUS), 1))
    return topics


def shared_filters(settings: CloudSettings) -> list[str]:
    """The share-group filters of ``subscriptions``: what a leaving worker unsubscribes."""
    return [name for name, _ in subscriptions(settings) if name.startswith("$share/")]


def _client_id(settings: CloudSettings) -> str:
    return settings.mqtt.client_id or f"cityops-ingest-{socket.gethostname()}"[:64]


def _tls(settings: CloudSettings) -> ssl.SSLContext | None:
    ca = settings.mqtt.tls_ca
    return ssl.create_default_context(cafile=str(ca)) if ca else None


@contextlib.asynccontextmanager
async def connect(settings: CloudSettings, generation: int) -> AsyncIterator[Inbox]:
    """Connect and subscribe with the client chosen in ``ingest.client``."""
    if settings.ingest.client == "aiomqtt":
        async with _aiomqtt_inbox(settings, generation) as inbox:
            yield inbox
    else:
        async with _wire_inbox(settings, generation) as inbox:
            yield inbox


# ---------------------------------------------------------------------- wire


class WireInbox:
    def __init__(self, session: WireSession[Received], generation: int, filters: list[str]) -> None:
        self._session = session
        self.generation = generation
        self._filters = filters
        self.left = False

    @property
    def closed(self) -> bool:
        return self._session.closed.done()

    @property
    def pending(self) -> int:
        return self._session.pending

    def take(self, limit: int) -> list[Received]:
        return self._session.take(limit)

    async def wait(self, timeout_s: float) -> bool:
        try:
            return await self._session.wait(timeout_s)
        except ConnectionLostError as exc:
            raise BrokerError(str(exc)) from exc

    def ack(self, received: Sequence[Received]) -> None:
        if self.closed:
            return
        with contextlib.suppress(ConnectionLostError):  # the broker redelivers them
            self._session.ack([r.mid for r in received if r.qos])

    def publish(self, topic: str, payload: bytes) -> None:
        if self.closed:
            return
        with contextlib.suppress(ConnectionLostError):  # the device sends the event again
            self._session.publish(topic, payload)

    async def leave(self) -> None:
        try:
            await self._session.unsubscribe(self._filters)
        except (ConnectionLostError, TimeoutError) as exc:
            raise BrokerError(f"unsubscribe failed: {exc}") from exc
        self.left = True


@contextlib.asynccontextmanager
async def _wire_inbox(settings: CloudSettings, generation: int) -> AsyncIterator[Inbox]:
    mqtt = settings.mqtt

    def make(topic: str, payload: bytes, qos: int, mid: int, at: datetime) -> Received:
        return Received(topic, payload, qos, mid, generation, at)

    options = ConnectOptions(
        client_id=_client_id(settings),
        keepalive_s=30,
        clean_start=False,
        session_expiry_s=settings.ingest.session_expiry_s,
        receive_maximum=settings.ingest.receive_maximum,
        maximum_packet_size=MAX_PACKET_BYTES,
        username=mqtt.username,
        password=mqtt.password.get_secret_value() if mqtt.password else None,
    )
    endpoint = Endpoint(mqtt.host, mqtt.port, _tls(settings), timeout_s=10.0)
    try:
        session = await WireSession.open(endpoint, options, make)
    except (ConnectionLostError, ConnectRefusedError) as exc:
        raise BrokerError(str(exc)) from exc
    async with session:
        try:
            topics = subscriptions(settings)
            codes = await session.subscribe(topics)
        except (ConnectionLostError, TimeoutError) as exc:
            raise BrokerError(f"subscribe failed: {exc}") from exc
        _check_granted([name for name, _ in topics], list(codes))
        inbox = WireInbox(session, generation, shared_filters(settings))
        try:
            yield inbox
        finally:
            if inbox.left:
                # A clean leave: the session ends now instead of holding a share for its expiry.
                await session.close(session_expiry_s=0)


def _check_granted(names: list[str], codes: list[int]) -> None:
    refused = [name for name, code in zip(names, codes, strict=False) if code >= _REFUSED]
    if refused:
        raise BrokerError(f"the broker refused the subscriptions {refused} (check the ACL)")


# ---------------------------------------------------------------------- aiomqtt


class AiomqttInbox:
    def __init__(self, client: aiomqtt.Client, generation: int, filters: list[str]) -> None:
        self._client = client
        self._filters = filters
        self._queue: asyncio.Queue[aiomqtt.Message] = client._queue  # noqa: SLF001
        self._disconnected: asyncio.Future[None] = client._disconnected  # noqa: SLF001
        self._disconnected.add_done_callback(_retrieve)
        self.generation = generation

    @property
    def closed(self) -> bool:
        return self._disconnected.done()

    @property
    def pending(self) -> int:
        return self._queue.qsize()

    def take(self, limit: int) -> list[Received]:
        out: list[Received] = []
        while len(out) < limit:
            try:
                message = self._queue.get_nowait()
            except asyncio.QueueEmpty:
                break
            out.append(self._received(message))
        return out

    def _received(self, message: aiomqtt.Message) -> Received:
        payload = message.payload
        raw = payload if isinstance(payload, bytes) else str(payload).encode()
        return Received(
            message.topic.value, raw, message.qos, message.mid, self.generation, utcnow()
        )

    async def wait(self, timeout_s: float) -> bool:
        if not self._queue.empty():
            return True
        if self.closed:
            raise BrokerError("disconnected from the broker")
        getter: asyncio.Future[aiomqtt.Message] = asyncio.ensure_future(self._queue.get())
        waiters: set[asyncio.Future[object]] = {getter, self._disconnected}  # type: ignore[arg-type]
        done, _ = await asyncio.wait(waiters, timeout=timeout_s, return_when="FIRST_COMPLETED")
        if getter in done:
            # Put it back at the front: never lose a dequeued message.
            self._queue._queue.appendleft(getter.result())  # type: ignore[attr-defined]  # noqa: SLF001
            return True
        getter.cancel()
        if self.closed:
            raise BrokerError("disconnected from the broker")
        return False

    def ack(self, received: Sequence[Received]) -> None:
        if self.closed:
            return
        paho = self._client._client  # noqa: SLF001
        for r in received:
            if r.qos:
                paho.ack(r.mid, r.qos)

    def publish(self, topic: str, payload: bytes) -> None:
        if not self.closed:
            self._client._client.publish(topic, payload, qos=0)  # noqa: SLF001

    async def leave(self) -> None:
        # aiomqtt cannot send a session expiry with DISCONNECT: the session expires on its own.
        try:
            await self._client.unsubscribe(self._filters)
        except aiomqtt.MqttError as exc:
            raise BrokerError(f"unsubscribe failed: {exc}") from exc


def _retrieve(future: "asyncio.Future[None]") -> None:
    """Mark the disconnect reason as seen (the service reports it as ``BrokerError``)."""
    if not future.cancelled():
        future.exception()


@contextlib.asynccontextmanager
async def _aiomqtt_inbox(settings: CloudSettings, generation: int) -> AsyncIterator[Inbox]:
    paho_speedup.install()
    mqtt = settings.mqtt
    props = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
    props.SessionExpiryInterval = settings.ingest.session_expiry_s
    props.ReceiveMaximum = settings.ingest.receive_maximum
    props.MaximumPacketSize = MAX_PACKET_BYTES
    client = aiomqtt.Client(
        mqtt.host,
        mqtt.port,
        username=mqtt.username,
        password=mqtt.password.get_secret_value() if mqtt.password else None,
        identifier=_client_id(settings),
        protocol=aiomqtt.ProtocolVersion.V5,
        clean_start=False,
        properties=props,
        tls_context=_tls(settings),
        timeout=10,
    )
    # aiomqtt 2.x acknowledges on receipt; the paho client under it can wait for us instead.
    client._client.manual_ack_set(on=True)  # noqa: SLF001
    try:
        async with client:
            topics = subscriptions(settings)
            codes = await client.subscribe(topics)
            _check_granted(
                [name for name, _ in topics],
                [int(getattr(code, "value", 0)) for code in codes],
            )
            yield AiomqttInbox(client, generation, shared_filters(settings))
    except aiomqtt.MqttError as exc:
        raise BrokerError(str(exc)) from exc
