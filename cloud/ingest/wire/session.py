"""One connection of the ingestor's MQTT 5 subscriber: connect, subscribe, take, acknowledge.

    async with await WireSession.open(endpoint, options, make) as session:
        codes = await session.subscribe([("$share/g/cityops/v1/+/event", 1)])
        while True:
            records = session.take(500) or (await session.wait(0.5) and session.take(500))
            ...
            session.ack([r.packet_id for r in records if r.qos])

A session is one network connection; the caller reconnects (with a fresh session) after
``ConnectionLostError`` or ``ConnectRefusedError``. Persistent sessions are the broker's side:
with ``clean_start=False`` and a session expiry, what was not acknowledged is sent again.
"""

import asyncio
import contextlib
import ssl
from dataclasses import dataclass
from types import TracebackType
from typing import Generic, Self, TypeVar

from cloud.ingest.wire import packets as p
from cloud.ingest.wire.protocol import ConnectionLostError, Make, SubscriberProtocol

T = TypeVar("T")

_SUBACK_FAILURE = 0x80


class ConnectRefusedError(Exception):
    """The broker answered CONNECT with a failure reason code (bad password, not authorised...)."""

    def __init__(self, code: int, detail: str | None) -> None:
        self.code = code
        text = p.reason_text(code)
        super().__init__(
            f"the broker refused the connection: {text}" + (f" ({detail})" if detail else "")
        )


@dataclass(frozen=True, slots=True)
class Endpoint:
    host: str
    port: int
    tls: ssl.SSLContext | None = None
    timeout_s: float = 10.0


class WireSession(Generic[T]):
    def __init__(
        self, protocol: SubscriberProtocol[T], connack: p.ConnAck, keepalive_s: int
    ) -> None:
        self._protocol = protocol
        self.connack = connack
        self.keepalive_s = keepalive_s
        self._next_id = 0
        self._pinger: asyncio.Task[None] | None = None

    @classmethod
    async def open(
        cls, endpoint: Endpoint, options: p.ConnectOptions, make: Make[T]
    ) -> "WireSession[T]":
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(endpoint.timeout_s):
                _, protocol = await loop.create_connection(
                    lambda: SubscriberProtocol(
                        make, loop, options.maximum_packet_size or 268_435_460
                    ),
                    endpoint.host,
                    endpoint.port,
                    ssl=endpoint.tls,
                    server_hostname=endpoint.host if endpoint.tls else None,
                )
                waiter = protocol.expect(0)
                protocol.write(p.connect_packet(options))
                connack = p.parse_connack(await waiter)
        except TimeoutError as exc:
            raise ConnectionLostError(
                f"no CONNACK from {endpoint.host}:{endpoint.port} within {endpoint.timeout_s:.0f} s"
            ) from exc
        except OSError as exc:
            raise ConnectionLostError(
                f"cannot connect to {endpoint.host}:{endpoint.port}: {exc}"
            ) from exc
        if connack.reason_code >= _SUBACK_FAILURE:
            if protocol.transport is not None:
                protocol.transport.close()
            raise ConnectRefusedError(connack.reason_code, connack.reason_string)
        keepalive = connack.server_keep_alive_s or options.keepalive_s
        session = cls(protocol, connack, keepalive)
        if keepalive:
            session._pinger = asyncio.create_task(session._ping(keepalive))
        return session

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    # ------------------------------------------------------------------ API

    @property
    def closed(self) -> "asyncio.Future[None]":
        """Completes (with ``ConnectionLostError``) when the connection is gone."""
        return self._protocol.closed

    @property
    def pending(self) -> int:
        """Records received and not yet taken."""
        return len(self._protocol.inbox)

    async def subscribe(self, filters: list[tuple[str, int]]) -> tuple[int, ...]:
        """Subscribe; return the reason code per filter (0-2 granted QoS, >= 0x80 refused)."""
        packet_id = self._packet_id()
        waiter = self._protocol.expect(packet_id)
        self._protocol.write(p.subscribe_packet(packet_id, filters))
        async with asyncio.timeout(30):
            suback = p.parse_suback(await waiter)
        return suback.reason_codes

    def take(self, limit: int) -> list[T]:
        """Up to *limit* received records, oldest first, without waiting."""
        inbox = self._protocol.inbox
        if len(inbox) <= limit:
            records = list(inbox)
            inbox.clear()
        else:
            popleft = inbox.popleft
            records = [popleft() for _ in range(limit)]
        if not inbox:
            self._protocol.readable.clear()
        return records

    async def wait(self, timeout_s: float) -> bool:
        """Wait until a record can be taken; False on timeout; raises if the connection is gone."""
        if self._protocol.inbox:
            return True
        self._raise_if_closed()
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout_s):
                await self._protocol.readable.wait()
        if not self._protocol.inbox:
            self._raise_if_closed()
        return bool(self._protocol.inbox)

    async def unsubscribe(self, filters: list[str]) -> None:
        """Leave *filters* (a share group stops handing us messages once the UNSUBACK is in)."""
        packet_id = self._packet_id()
        waiter = self._protocol.expect(packet_id)
        self._protocol.write(p.unsubscribe_packet(packet_id, filters))
        async with asyncio.timeout(30):
            await waiter

    def publish(self, topic: str, payload: bytes) -> None:
        """Publish with QoS 0 (the stored-event acks: a lost one only means a re-send)."""
        self._protocol.write(p.publish_packet(topic, payload))

    def ack(self, packet_ids: list[int]) -> None:
        """Acknowledge QoS 1 messages (one write for all); the broker then forgets them."""
        if packet_ids:
            self._protocol.write(p.puback_packets(packet_ids))

    async def close(self, session_expiry_s: int | None = None) -> None:
        """Send DISCONNECT (normal) and close; unacknowledged messages stay with the broker.

        *session_expiry_s* 0 ends the persistent session now (a clean leave).
        """
        if self._pinger is not None:
            self._pinger.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._pinger
        transport = self._protocol.transport
        if transport is not None and not transport.is_closing():
            transport.write(p.disconnect_packet(session_expiry_s))
            transport.close()
        with contextlib.suppress(ConnectionLostError, asyncio.CancelledError):
            async with asyncio.timeout(2):
                await asyncio.shield(self._protocol.closed)

    # ------------------------------------------------------------------ internals

    def _raise_if_closed(self) -> None:
        closed = self._protocol.closed
        if closed.done():
            raise closed.exception() or ConnectionLostError("closed")

    def _packet_id(self) -> int:
        self._next_id = self._next_id % 0xFFFF + 1
        return self._next_id

    async def _ping(self, keepalive_s: int) -> None:
        """PINGREQ every half keep-alive; drop a connection silent for 1.5 keep-alives."""
        loop = asyncio.get_running_loop()
        while not self._protocol.closed.done():
            await asyncio.sleep(keepalive_s / 2)
            if loop.time() - self._protocol.last_read > keepalive_s * 1.5:
                transport = self._protocol.transport
                if transport is not None:
                    transport.abort()
                return
            with contextlib.suppress(ConnectionLostError):
                self._protocol.write(p.PINGREQ_PACKET)
