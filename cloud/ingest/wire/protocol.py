"""An asyncio protocol that reads MQTT 5 packets for a subscriber, many per socket read.

Every PUBLISH in a read is turned into the caller's record (``make``) in one tight loop and
queued; acknowledgements go out later, many in one write, when the caller says so. This is the
part of the ingestor that runs once per message, so it avoids per-message objects beyond the
record itself (no properties objects, no callbacks, no locks).
"""

import asyncio
import collections
import logging
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Generic, TypeVar

from cloud.ingest.wire import packets as p

log = logging.getLogger(__name__)

T = TypeVar("T")

Make = Callable[[str, bytes, int, int, datetime], T]
"""``make(topic, payload, qos, packet_id, received_at)``: the caller's record (QoS 0: id 0)."""


class ConnectionLostError(Exception):
    """The broker closed the connection, sent DISCONNECT, or sent something unreadable."""


def _packet_size(head: bytes, limit: int) -> int:
    """Full size of the packet that starts *head*, or ``len(head) + 1`` if its header is cut.

    A packet over *limit* (the Maximum Packet Size we advertised) is a protocol error.
    """
    length = 0
    shift = 0
    for i in range(1, min(len(head), 5)):
        byte = head[i]
        length |= (byte & 0x7F) << shift
        if byte < 0x80:  # noqa: PLR2004
            size = i + 1 + length
            if size > limit:
                raise p.ProtocolError(f"a {size}-byte packet is over the {limit} we accept")
            return size
        shift += 7
    if len(head) >= 5:  # noqa: PLR2004 - four length bytes, all with the continuation bit
        raise p.ProtocolError("remaining length longer than four bytes")
    return len(head) + 1


class SubscriberProtocol(asyncio.Protocol, Generic[T]):
    def __init__(
        self, make: Make[T], loop: asyncio.AbstractEventLoop, max_packet_size: int = 268_435_460
    ) -> None:
        self._make = make
        self._chunks: list[bytes] = []
        self._have = 0
        self._need = 0
        """Size of the incomplete packet in ``_chunks`` (header incomplete: one more byte)."""
        self.max_packet_size = max_packet_size
        self.inbox: collections.deque[T] = collections.deque()
        self.readable = asyncio.Event()
        self.closed: asyncio.Future[None] = loop.create_future()
        self.transport: asyncio.Transport | None = None
        self._replies: dict[int, asyncio.Future[bytes]] = {}
        """CONNACK (key 0) and SUBACK (key = packet id) waiters."""
        self.last_read = loop.time()
        self._loop = loop

    # ------------------------------------------------------------------ asyncio callbacks

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)  # noqa: S101 - a stream connection
        self.transport = transport

    def connection_lost(self, exc: Exception | None) -> None:
        reason = f"connection lost: {exc}" if exc else "the broker closed the connection"
        self._fail(ConnectionLostError(reason))

    def data_received(self, data: bytes) -> None:
        self.last_read = self._loop.time()
        # A packet split over many reads is collected, not re-joined on every read: joining
        # once it is complete keeps a large message linear in its size.
        if self._chunks:
            self._chunks.append(data)
            self._have += len(data)
            if self._have < self._need:
                return
            buf = b"".join(self._chunks)
            self._chunks.clear()
        else:
            buf = data
        try:
            pos = self._read_packets(buf)
            if pos < len(buf):
                rest = buf[pos:]
                self._need = _packet_size(rest, self.max_packet_size)
                self._chunks.append(rest)
                self._have = len(rest)
        except (p.ProtocolError, UnicodeDecodeError, ValueError) as exc:
            self._fail(ConnectionLostError(f"unreadable packet from the broker: {exc}"))
            if self.transport is not None:
                self.transport.abort()

    # ------------------------------------------------------------------ reading

    def _read_packets(self, buf: bytes) -> int:  # noqa: C901 - one loop per read, kept flat for speed
        """Handle every complete packet in *buf*; return where the incomplete rest starts."""
        n = len(buf)
        pos = 0
        now = datetime.now(UTC)
        make = self._make
        push = self.inbox.append
        got = False
        while pos + 2 <= n:
            first = buf[pos]
            # Remaining length: a variable byte integer of at most four bytes.
            i = pos + 1
            length = 0
            shift = 0
            while True:
                if i >= n:
                    return self._done(pos, got)
                byte = buf[i]
                i += 1
                length |= (byte & 0x7F) << shift
                if byte < 0x80:  # noqa: PLR2004
                    break
                shift += 7
                if shift > 21:  # noqa: PLR2004
                    raise p.ProtocolError("remaining length longer than four bytes")
            end = i + length
            if end > n:
                break
            kind = first >> 4
            if kind == p.PUBLISH:
                qos = (first >> 1) & 0x03
                tlen = (buf[i] << 8) | buf[i + 1]
                j = i + 2 + tlen
                topic = buf[i + 2 : j].decode()
                packet_id = 0
                if qos:
                    if qos > 1:
                        raise p.ProtocolError("QoS 2 PUBLISH on a QoS 1 subscription")
                    packet_id = (buf[j] << 8) | buf[j + 1]
                    j += 2
                plen = buf[j]
                j += 1
                if plen >= 0x80:  # noqa: PLR2004 - a long property block: rare
                    plen, j = p.read_varint(buf, j - 1)
                j += plen
                push(make(topic, buf[j:end], qos, packet_id, now))
                got = True
            else:
                self._control(kind, buf[i:end])
            pos = end
        return self._done(pos, got)

    def _done(self, pos: int, got: bool) -> int:
        if got:
            self.readable.set()
        return pos

    def _control(self, kind: int, body: bytes) -> None:
        if kind == p.CONNACK:
            self._reply(0, body)
        elif kind in (p.SUBACK, p.UNSUBACK):
            self._reply(int.from_bytes(body[:2], "big"), body)
        elif kind == p.PINGRESP:
            pass
        elif kind == p.DISCONNECT:
            d = p.parse_disconnect(body)
            detail = f": {d.reason_string}" if d.reason_string else ""
            self._fail(
                ConnectionLostError(
                    f"the broker disconnected us ({p.reason_text(d.reason_code)}{detail})"
                )
            )
        elif kind == p.PUBREL:
            raise p.ProtocolError("PUBREL without a QoS 2 subscription")
        else:
            raise p.ProtocolError(f"unexpected packet type {kind}")

    def _reply(self, key: int, body: bytes) -> None:
        waiter = self._replies.pop(key, None)
        if waiter is not None and not waiter.done():
            waiter.set_result(body)

    def _fail(self, exc: Exception) -> None:
        if not self.closed.done():
            self.closed.set_exception(exc)
            self.closed.exception()  # retrieved here: nobody has to, to avoid a warning
        for waiter in self._replies.values():
            if not waiter.done():
                waiter.set_exception(exc)
        self._replies.clear()
        self.readable.set()  # wake a waiting reader so that it sees the connection is gone

    # ------------------------------------------------------------------ used by the session

    def expect(self, key: int) -> "asyncio.Future[bytes]":
        waiter: asyncio.Future[bytes] = self._loop.create_future()
        if self.closed.done():
            waiter.set_exception(self.closed.exception() or ConnectionLostError("closed"))
        else:
            self._replies[key] = waiter
        return waiter

    def write(self, data: bytes) -> None:
        if self.transport is None or self.transport.is_closing():
            raise ConnectionLostError("not connected")
        self.transport.write(data)
