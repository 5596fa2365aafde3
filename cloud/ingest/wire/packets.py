"""The MQTT 5 packets a subscriber sends and reads (OASIS MQTT 5.0, chapters 2-3).

Only what a QoS <= 1 subscriber needs: CONNECT/CONNACK, SUBSCRIBE/SUBACK, PUBLISH in,
PUBACK out, PINGREQ/PINGRESP and DISCONNECT. Encoders return ``bytes``; the PUBLISH reader
is in ``cloud.ingest.wire.protocol`` because it runs once per message and is written for speed.
"""

import struct
from dataclasses import dataclass
from typing import Final

CONNECT: Final = 1
CONNACK: Final = 2
PUBLISH: Final = 3
PUBACK: Final = 4
PUBREL: Final = 6
SUBSCRIBE: Final = 8
SUBACK: Final = 9
UNSUBSCRIBE: Final = 10
UNSUBACK: Final = 11
PINGREQ: Final = 12
PINGRESP: Final = 13
DISCONNECT: Final = 14

PINGREQ_PACKET: Final = b"\xc0\x00"
DISCONNECT_PACKET: Final = b"\xe0\x00"  # normal disconnection (reason 0 may be omitted, 3.14.2.1)

_PROP_SESSION_EXPIRY: Final = 0x11
_PROP_RECEIVE_MAXIMUM: Final = 0x21
_PROP_MAXIMUM_PACKET_SIZE: Final = 0x27
_PROP_REASON_STRING: Final = 0x1F
_PROP_SERVER_KEEP_ALIVE: Final = 0x13
_PROP_ASSIGNED_CLIENT_ID: Final = 0x12

_MAX_VARINT: Final = 268_435_455

REASONS: Final[dict[int, str]] = {
    0x80: "unspecified error",
    0x81: "malformed packet",
    0x82: "protocol error",
    0x83: "implementation specific error",
    0x84: "unsupported protocol version",
    0x85: "client identifier not valid",
    0x86: "bad user name or password",
    0x87: "not authorized",
    0x88: "server unavailable",
    0x89: "server busy",
    0x8A: "banned",
    0x8B: "server shutting down",
    0x8C: "bad authentication method",
    0x8D: "keep alive timeout",
    0x8E: "session taken over",
    0x8F: "topic filter invalid",
    0x91: "packet identifier in use",
    0x93: "receive maximum exceeded",
    0x95: "packet too large",
    0x97: "quota exceeded",
    0x9C: "use another server",
    0x9E: "shared subscriptions not supported",
    0xA0: "maximum connect time",
    0xA2: "wildcard subscriptions not supported",
}


class ProtocolError(Exception):
    """The peer sent something this client cannot read; the connection is dropped."""


def reason_text(code: int) -> str:
    return REASONS.get(code, f"reason code 0x{code:02x}")


def varint(value: int) -> bytes:
    """Variable Byte Integer (1.5.5)."""
    if not 0 <= value <= _MAX_VARINT:
        raise ValueError(f"{value} does not fit a variable byte integer")
    out = bytearray()
    while True:
        byte, value = value % 128, value // 128
        out.append(byte | (0x80 if value else 0))
        if not value:
            return bytes(out)


def read_varint(data: bytes | bytearray | memoryview, pos: int) -> tuple[int, int]:
    """(value, position after it); raises ``IndexError`` if *data* ends inside it."""
    value = 0
    shift = 0
    while True:
        byte = data[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if byte < 0x80:  # noqa: PLR2004 - continuation bit
            return value, pos
        shift += 7
        if shift > 21:  # noqa: PLR2004 - four bytes at most
            raise ProtocolError("variable byte integer longer than four bytes")


def utf8(text: str) -> bytes:
    raw = text.encode()
    if len(raw) > 0xFFFF:  # noqa: PLR2004
        raise ValueError("string longer than 65,535 bytes")
    return struct.pack("!H", len(raw)) + raw


def _packet(first: int, body: bytes) -> bytes:
    return bytes([first]) + varint(len(body)) + body


@dataclass(frozen=True, slots=True)
class ConnectOptions:
    client_id: str
    keepalive_s: int = 30
    clean_start: bool = False
    session_expiry_s: int = 0
    receive_maximum: int = 65_535
    maximum_packet_size: int | None = None
    username: str | None = None
    password: str | None = None


def connect_packet(o: ConnectOptions) -> bytes:
    flags = 0x02 if o.clean_start else 0
    if o.username is not None:
        flags |= 0x80
    if o.password is not None:
        flags |= 0x40
    props = bytearray()
    if o.session_expiry_s:
        props += bytes([_PROP_SESSION_EXPIRY]) + struct.pack("!I", o.session_expiry_s)
    props += bytes([_PROP_RECEIVE_MAXIMUM]) + struct.pack("!H", o.receive_maximum)
    if o.maximum_packet_size is not None:
        props += bytes([_PROP_MAXIMUM_PACKET_SIZE]) + struct.pack("!I", o.maximum_packet_size)
    body = bytearray(utf8("MQTT"))
    body += bytes([5, flags]) + struct.pack("!H", o.keepalive_s)
    body += varint(len(props)) + props
    body += utf8(o.client_id)
    if o.username is not None:
        body += utf8(o.username)
    if o.password is not None:
        body += utf8(o.password)  # binary data has the same two-byte length prefix
    return _packet(CONNECT << 4, bytes(body))


def subscribe_packet(packet_id: int, filters: list[tuple[str, int]]) -> bytes:
    body = bytearray(struct.pack("!H", packet_id))
    body += b"\x00"  # no properties
    for name, qos in filters:
        body += utf8(name) + bytes([qos & 0x03])
    return _packet((SUBSCRIBE << 4) | 0x02, bytes(body))


def publish_packet(topic: str, payload: bytes) -> bytes:
    """A QoS 0 PUBLISH without properties (the ingestor's stored-event acks)."""
    return _packet(PUBLISH << 4, utf8(topic) + b"\x00" + payload)


def unsubscribe_packet(packet_id: int, filters: list[str]) -> bytes:
    body = bytearray(struct.pack("!H", packet_id))
    body += b"\x00"  # no properties
    for name in filters:
        body += utf8(name)
    return _packet((UNSUBSCRIBE << 4) | 0x02, bytes(body))


def disconnect_packet(session_expiry_s: int | None) -> bytes:
    """DISCONNECT "normal"; with *session_expiry_s* it also sets the session's new expiry."""
    if session_expiry_s is None:
        return DISCONNECT_PACKET
    props = bytes([_PROP_SESSION_EXPIRY]) + struct.pack("!I", session_expiry_s)
    return _packet(DISCONNECT << 4, b"\x00" + varint(len(props)) + props)


def puback_packets(packet_ids: list[int]) -> bytes:
    """Concatenated PUBACKs with reason "success" (omitted, 3.4.2.1), one write for many."""
    return b"".join(b"\x40\x02" + pid.to_bytes(2, "big") for pid in packet_ids)


@dataclass(frozen=True, slots=True)
class ConnAck:
    session_present: bool
    reason_code: int
    server_keep_alive_s: int | None = None
    assigned_client_id: str | None = None
    reason_string: str | None = None
    receive_maximum: int = 65_535
    maximum_packet_size: int | None = None


@dataclass(frozen=True, slots=True)
class SubAck:
    packet_id: int
    reason_codes: tuple[int, ...]


@dataclass(frozen=True, slots=True)
class Disconnect:
    reason_code: int
    reason_string: str | None = None


def _properties(body: bytes, pos: int) -> tuple[dict[int, int | str | bytes], int]:
    """Read a property block; unknown properties are skipped by their documented width."""
    length, pos = read_varint(body, pos)
    end = pos + length
    found: dict[int, int | str | bytes] = {}
    while pos < end:
        ident = body[pos]
        pos += 1
        width = _FIXED_WIDTH.get(ident)
        if width is not None:
            found[ident] = int.from_bytes(body[pos : pos + width], "big")
            pos += width
        elif ident in _VARINT_PROPS:
            found[ident], pos = read_varint(body, pos)
        elif ident == _USER_PROPERTY:
            for _ in range(2):
                n = int.from_bytes(body[pos : pos + 2], "big")
                pos += 2 + n
        elif ident in _STRING_PROPS or ident in _BINARY_PROPS:
            n = int.from_bytes(body[pos : pos + 2], "big")
            raw = body[pos + 2 : pos + 2 + n]
            found[ident] = raw.decode(errors="replace") if ident in _STRING_PROPS else raw
            pos += 2 + n
        else:
            raise ProtocolError(f"unknown property 0x{ident:02x}")
    if pos != end:
        raise ProtocolError("property block length does not match its properties")
    return found, end


_FIXED_WIDTH: Final = {
    0x01: 1,  # payload format indicator
    0x02: 4,  # message expiry interval
    0x11: 4,  # session expiry interval
    0x13: 2,  # server keep alive
    0x17: 1,  # request problem information
    0x18: 4,  # will delay interval
    0x19: 1,  # request response information
    0x21: 2,  # receive maximum
    0x22: 2,  # topic alias maximum
    0x23: 2,  # topic alias
    0x24: 1,  # maximum QoS
    0x25: 1,  # retain available
    0x27: 4,  # maximum packet size
    0x28: 1,  # wildcard subscription available
    0x29: 1,  # subscription identifier available
    0x2A: 1,  # shared subscription available
}
_VARINT_PROPS: Final = frozenset({0x0B})  # subscription identifier
_STRING_PROPS: Final = frozenset({0x03, 0x08, 0x12, 0x15, 0x1A, 0x1C, 0x1F})
_BINARY_PROPS: Final = frozenset({0x09, 0x16})
_USER_PROPERTY: Final = 0x26


def parse_connack(body: bytes) -> ConnAck:
    if len(body) < 2:  # noqa: PLR2004
        raise ProtocolError("CONNACK shorter than two bytes")
    props, _ = _properties(body, 2) if len(body) > 2 else ({}, 2)  # noqa: PLR2004
    keep = props.get(_PROP_SERVER_KEEP_ALIVE)
    assigned = props.get(_PROP_ASSIGNED_CLIENT_ID)
    text = props.get(_PROP_REASON_STRING)
    receive = props.get(_PROP_RECEIVE_MAXIMUM)
    largest = props.get(_PROP_MAXIMUM_PACKET_SIZE)
    return ConnAck(
        session_present=bool(body[0] & 0x01),
        reason_code=body[1],
        server_keep_alive_s=keep if isinstance(keep, int) else None,
        assigned_client_id=assigned if isinstance(assigned, str) else None,
        reason_string=text if isinstance(text, str) else None,
        receive_maximum=receive if isinstance(receive, int) else 65_535,
        maximum_packet_size=largest if isinstance(largest, int) else None,
    )


def parse_suback(body: bytes) -> SubAck:
    packet_id = int.from_bytes(body[:2], "big")
    _, pos = _properties(body, 2)
    return SubAck(packet_id=packet_id, reason_codes=tuple(body[pos:]))


def parse_disconnect(body: bytes) -> Disconnect:
    if not body:
        return Disconnect(reason_code=0)
    text = None
    if len(body) > 1:
        props, _ = _properties(body, 1)
        found = props.get(_PROP_REASON_STRING)
        text = found if isinstance(found, str) else None
    return Disconnect(reason_code=body[0], reason_string=text)
