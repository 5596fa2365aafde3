"""The ingestor's own MQTT 5 subscriber: packet reading (any split), and against the real broker."""

import asyncio
import itertools
import ssl
import struct
from dataclasses import dataclass
from datetime import datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cloud.ingest.wire import (
    ConnectionLostError,
    ConnectOptions,
    ConnectRefusedError,
    Endpoint,
    WireSession,
)
from cloud.ingest.wire import packets as p
from cloud.ingest.wire.protocol import SubscriberProtocol
from shared.topics import Channel, shared_subscription, topic
from tests.cloud.ingest.publisher import Publisher
from tests.conftest import Broker, TlsBroker


@dataclass(frozen=True)
class Rec:
    topic: str
    payload: bytes
    qos: int
    packet_id: int


def rec(t: str, payload: bytes, qos: int, packet_id: int, _at: datetime) -> Rec:
    return Rec(t, payload, qos, packet_id)


class FakeTransport(asyncio.Transport):
    """Collects writes; the reader never needs more from a transport."""

    def __init__(self) -> None:
        super().__init__()
        self.written = b""
        self.aborted = False

    def write(self, data: bytes | bytearray | memoryview) -> None:
        self.written += bytes(data)

    def abort(self) -> None:
        self.aborted = True

    def is_closing(self) -> bool:
        return self.aborted


def publish_packet(r: Rec, properties: bytes = b"") -> bytes:
    body = p.utf8(r.topic)
    if r.qos:
        body += struct.pack("!H", r.packet_id)
    body += p.varint(len(properties)) + properties + r.payload
    return bytes([(p.PUBLISH << 4) | (r.qos << 1)]) + p.varint(len(body)) + body


topics = st.text(
    alphabet=st.characters(blacklist_categories=["Cs"], blacklist_characters="\x00"),
    min_size=1,
    max_size=40,
)
records = st.builds(
    Rec,
    topic=topics,
    payload=st.one_of(st.binary(max_size=300), st.binary(min_size=16_400, max_size=16_500)),
    qos=st.integers(0, 1),
    packet_id=st.integers(1, 0xFFFF),
).map(lambda r: r if r.qos else Rec(r.topic, r.payload, 0, 0))
# A user property of 200 bytes makes the property length a two-byte variable integer.
long_props = b"\x26" + p.utf8("k" * 100) + p.utf8("v" * 95)


@settings(max_examples=60, deadline=None)
@given(
    items=st.lists(st.tuples(records, st.booleans()), min_size=1, max_size=20),
    cuts=st.lists(st.integers(1, 40_000), max_size=12),
)
async def test_every_publish_is_read_whatever_the_split(
    items: list[tuple[Rec, bool]], cuts: list[int]
) -> None:
    stream = b"".join(
        publish_packet(r, long_props if long else b"") + b"\xd0\x00"  # each followed by PINGRESP
        for r, long in items
    )
    proto = SubscriberProtocol(rec, asyncio.get_running_loop())
    proto.connection_made(FakeTransport())
    edges = sorted({c % len(stream) for c in cuts} | {0, len(stream)})
    for a, b in itertools.pairwise(edges):
        proto.data_received(stream[a:b])
    assert list(proto.inbox) == [r for r, _ in items]
    assert not proto.closed.done()


@pytest.mark.parametrize(
    ("stream", "why"),
    [
        (b"\x30\xff\xff\xff\xff\x01", "longer than four bytes"),
        (b"\x70\x00", "unexpected packet type 7"),
        (b"\x34" + publish_packet(Rec("a", b"x", 1, 1))[1:], "QoS 2"),
        (b"\x32\x0b\x00\x01a\x00\x01\xff\xff\xff\xff\x01x", "longer than four bytes"),
    ],
)
async def test_an_unreadable_stream_drops_the_connection(stream: bytes, why: str) -> None:
    proto = SubscriberProtocol(rec, asyncio.get_running_loop())
    transport = FakeTransport()
    proto.connection_made(transport)
    proto.data_received(stream)
    assert transport.aborted
    with pytest.raises(ConnectionLostError, match=why):
        await proto.closed


@given(st.integers(0, 268_435_455))
def test_variable_byte_integers_round_trip(value: int) -> None:
    raw = p.varint(value)
    assert p.read_varint(raw + b"tail", 0) == (value, len(raw))


def test_connect_packet_carries_the_session_and_flow_control() -> None:
    raw = p.connect_packet(
        ConnectOptions(
            client_id="ing", session_expiry_s=300, receive_maximum=500, username="u", password="pw"
        )
    )
    body = raw[2:]
    assert body[:7] == b"\x00\x04MQTT\x05"
    assert body[7] == 0xC0  # user name + password, no clean start
    assert b"\x11\x00\x00\x01\x2c" in body  # session expiry 300 s
    assert b"\x21\x01\xf4" in body  # receive maximum 500
    assert body.endswith(b"\x00\x03ing\x00\x01u\x00\x02pw")


# ---------------------------------------------------------------------- the real broker


def ingest_options(client_id: str, **kw: object) -> ConnectOptions:
    values: dict[str, object] = {
        "client_id": client_id,
        "username": "cityops-ingest",
        "password": "ingest-pw",
        "session_expiry_s": 60,
        **kw,
    }
    return ConnectOptions(**values)  # type: ignore[arg-type]


async def test_a_wrong_password_is_refused_with_its_reason(mosquitto: Broker) -> None:
    options = ingest_options("wire-bad-pw", password="nope")
    with pytest.raises(ConnectRefusedError, match=r"bad user name or password|not authorized"):
        await WireSession.open(Endpoint(mosquitto.host, mosquitto.service_port), options, rec)


async def take_n(session: WireSession[Rec], n: int, within_s: float = 10.0) -> list[Rec]:
    got: list[Rec] = []
    async with asyncio.timeout(within_s):
        while len(got) < n:
            got += session.take(n - len(got)) or []
            if len(got) < n:
                await session.wait(1.0)
    return got


async def test_unacknowledged_messages_come_back_and_acknowledged_ones_do_not(
    mosquitto: Broker,
) -> None:
    endpoint = Endpoint(mosquitto.host, mosquitto.service_port)
    options = ingest_options("wire-redeliver")
    sub = shared_subscription("wire-redeliver", Channel.EVENT)
    async with await WireSession.open(endpoint, options, rec) as session:
        await session.subscribe([(sub, 1)])
        with Publisher(mosquitto.host, mosquitto.port, "dev-a", "dev-a-pw") as pub:
            for i in range(10):
                pub.raw(topic("dev-a", Channel.EVENT), f"m{i}".encode())
            pub.flush()
        first = await take_n(session, 10)
        session.ack([r.packet_id for r in first[:4]])  # the other six are never acknowledged
        await asyncio.sleep(0.2)
    async with await WireSession.open(endpoint, options, rec) as session:
        assert session.connack.session_present
        again = await take_n(session, 6)
        session.ack([r.packet_id for r in again])
        assert sorted(r.payload for r in again) == [f"m{i}".encode() for i in range(4, 10)]
        assert not await session.wait(0.5)  # nothing else comes back
        await asyncio.sleep(0.2)
    async with await WireSession.open(endpoint, options, rec) as session:
        assert not await session.wait(0.5)


async def test_keepalive_pings_hold_an_idle_connection(mosquitto: Broker) -> None:
    options = ingest_options("wire-idle", keepalive_s=1, session_expiry_s=0)
    async with await WireSession.open(
        Endpoint(mosquitto.host, mosquitto.service_port), options, rec
    ) as session:
        assert not await session.wait(3.0)  # three keep-alive periods of silence
        assert not session.closed.done()


async def test_a_session_taken_over_ends_the_first_connection(mosquitto: Broker) -> None:
    # Mosquitto 2.0 closes the old connection without a DISCONNECT packet; either way the
    # session reports the loss, and a waiting reader is woken with the error.
    endpoint = Endpoint(mosquitto.host, mosquitto.service_port)
    options = ingest_options("wire-takeover", session_expiry_s=0)
    async with await WireSession.open(endpoint, options, rec) as first:
        waiting = asyncio.create_task(first.wait(30.0))
        await asyncio.sleep(0.1)
        async with await WireSession.open(endpoint, options, rec):
            with pytest.raises(ConnectionLostError):
                async with asyncio.timeout(5):
                    await waiting


async def test_mutual_tls(mosquitto_tls: TlsBroker) -> None:
    cert = mosquitto_tls.device_cert("cityops-ingest")
    ctx = ssl.create_default_context(cafile=str(mosquitto_tls.ca.cert))
    ctx.load_cert_chain(str(cert.cert), str(cert.key))
    endpoint = Endpoint("127.0.0.1", mosquitto_tls.tls_port, tls=ctx)
    options = ConnectOptions(client_id="wire-tls", session_expiry_s=0)
    broker = mosquitto_tls.broker
    async with await WireSession.open(endpoint, options, rec) as session:
        await session.subscribe([(topic("dev-a", Channel.EVENT), 1)])
        with Publisher(broker.host, broker.port, "dev-a", "dev-a-pw") as pub:
            pub.raw(topic("dev-a", Channel.EVENT), b"over tls")
            pub.flush()
        (got,) = await take_n(session, 1)
        assert got.payload == b"over tls"


async def test_a_packet_over_the_advertised_maximum_drops_the_connection_at_its_header() -> None:
    proto = SubscriberProtocol(rec, asyncio.get_running_loop(), max_packet_size=1000)
    transport = FakeTransport()
    proto.connection_made(transport)
    proto.data_received(b"\x30\xd0\x0f")  # a PUBLISH of 2,003 bytes: refused before its body
    assert transport.aborted
    with pytest.raises(ConnectionLostError, match="over the 1000 we accept"):
        await proto.closed


async def test_a_large_message_in_many_reads_is_joined_once() -> None:
    payload = bytes(range(256)) * 4096  # 1 MiB
    packet = publish_packet(Rec("cityops/v1/dev-a/event", payload, 1, 7))
    proto = SubscriberProtocol(rec, asyncio.get_running_loop())
    proto.connection_made(FakeTransport())
    for start in range(0, len(packet), 1000):
        proto.data_received(packet[start : start + 1000])
        if start + 1000 < len(packet):  # until the last read, pieces are only collected
            assert len(proto._chunks) == start // 1000 + 1
            assert not proto.inbox
    assert [r.payload for r in proto.inbox] == [payload]
    assert not proto._chunks
