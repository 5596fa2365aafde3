"""``MqttUplink``: the device's MQTT 5 link (paho), fed from the durable outbox.

One thread owns the connection and does everything in turn: network I/O (``client.loop``),
PUBACKs, the cloud's ``EventAck`` -> outbox deletes, incoming config and commands, telemetry,
refilling the QoS 1 window from the outbox (oldest first), and sending again what the cloud has
not confirmed in ``confirm_timeout_s``. A fresh paho client per connection attempt means nothing
is queued inside paho: the outbox is the only queue.

Flow control follows the broker's CONNACK: at most its Receive Maximum publishes in flight, and a
message larger than its Maximum Packet Size (which paho ignores) is moved to the outbox's dead
letters instead of being sent (the broker would drop the connection, again and again). Every
lost connection, accepted or not, is followed by a jittered back-off.
"""

import logging
import random
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion, MQTTErrorCode
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

from edge.uplink.backoff import backoff_delay
from edge.uplink.commands import CommandDispatcher
from edge.uplink.health import TelemetryBuilder, read_system
from edge.uplink.outbox import MessageKind, Outbox, OutboxMessage, OutboxRow
from edge.uplink.roles import DeviceRoles
from edge.uplink.settings import UplinkSettings
from shared.acks import EventAck
from shared.clock import utcnow
from shared.codec import decode, encode
from shared.commands import CommandAck
from shared.errors import ContractError, TopicError
from shared.events import Event
from shared.limits import CONTRACT_VERSION
from shared.telemetry import DeviceState, DeviceStatus
from shared.topics import Channel, parse, subscription, topic

logger = logging.getLogger(__name__)

_CONNACK_TIMEOUT_S = 10.0
_GOODBYE_TIMEOUT_S = 2.0
_IDLE_LOOP_S = 0.05
_BUSY_LOOP_S = 0.002
_STABLE_S = 10.0
"""A connection that lasted this long resets the reconnect back-off."""
_RESERVED_INFLIGHT = 2
"""Slots of the broker's Receive Maximum kept for status and command acks."""


@dataclass(frozen=True, slots=True)
class PubAck:
    mid: int
    reason: int


@dataclass(frozen=True, slots=True)
class Inbound:
    topic: str
    payload: bytes


@dataclass(frozen=True, slots=True)
class UplinkCounters:
    connects: int
    published: int
    acked: int
    rejected: int
    confirmed: int = 0
    """Events the cloud confirmed as stored (delivery ``stored``)."""
    resent: int = 0
    """Events sent again because no confirmation came in ``confirm_timeout_s``."""
    dead_lettered: int = 0


@dataclass(frozen=True, slots=True)
class _Sent:
    seq: int
    kind: MessageKind
    message_id: str | None


@dataclass(frozen=True, slots=True)
class BrokerLimits:
    """What the broker's CONNACK allows (MQTT 5 defaults when it says nothing)."""

    receive_maximum: int = 65_535
    maximum_packet_size: int | None = None


def publish_size(topic_name: str, payload_len: int) -> int:
    """Bytes of a QoS 1 MQTT 5 PUBLISH without properties, as the broker counts them."""
    body = 2 + len(topic_name.encode()) + 2 + 1 + payload_len
    header = 1
    for limit in (128, 16_384, 2_097_152, 268_435_456):
        header += 1
        if body < limit:
            break
    return header + body


def check_tls_files(settings: UplinkSettings) -> None:
    """Fail at start, naming the field, rather than at every reconnect."""
    if settings.tls is None:
        return
    for name in ("ca_file", "cert_file", "key_file"):
        path = getattr(settings.tls, name)
        if path is not None and not path.is_file():
            raise ValueError(f"uplink.tls.{name}: {path} is not a readable file")


class MqttUplink:
    """An ``EventSink`` that never loses an event: ``emit`` returns once it is on disk."""

    def __init__(
        self,
        settings: UplinkSettings,
        device_id: str,
        outbox: Outbox,
        roles: DeviceRoles | None = None,
        *,
        software: str | None = None,
        rng: random.Random | None = None,
        on_delivered: Callable[[Sequence[str]], None] | None = None,
    ) -> None:
        self.settings = settings
        self.device_id = device_id
        self.outbox = outbox
        self.roles = roles or DeviceRoles()
        self.software = software
        self.dispatcher = CommandDispatcher(device_id, self.roles)
        self._telemetry = TelemetryBuilder(device_id, firmware=software)
        self._rng = rng or random.Random()  # noqa: S311 - jitter, not cryptography
        self._client_id = settings.client_id or device_id
        check_tls_files(settings)
        self._event_topic = topic(device_id, Channel.EVENT)
        self._stop = threading.Event()
        self._connected = threading.Event()
        self._thread: threading.Thread | None = None
        self._acks: deque[PubAck] = deque()
        self._inbox: deque[Inbound] = deque()
        self._connack: ReasonCode | None = None
        self._link_up = False
        self._telemetry_interval = settings.telemetry_interval_s
        self._next_telemetry = time.monotonic() + self._telemetry_interval
        self._connects = self._published = self._acked = self._rejected = 0
        self._confirmed = self._resent = self._dead_lettered = 0
        self._stored_mode = settings.delivery == "stored"
        self._ack_topic = topic(device_id, Channel.EVENT_ACK)
        self._limits = BrokerLimits()
        self._window = settings.max_inflight
        self._on_delivered = on_delivered
        """Told (on the uplink thread) the ids of events that left the outbox as delivered:
        on their PUBACK (``delivery: broker``) or the cloud's confirmation (``stored``)."""
        self._awaiting: dict[str, tuple[int, float]] = {}
        """Event id -> (outbox seq, when last sent), oldest first: waiting for the cloud."""

    # ------------------------------------------------------------------------- public API

    def emit(self, event: Event) -> None:
        """Store *event* durably (fsync'd); it is published as soon as the link allows."""
        self.emit_many([event])

    def emit_many(self, events: Sequence[Event]) -> None:
        """Store *events* (e.g. one frame's) in one fsync'd commit."""
        for event in events:
            if event.device_id != self.device_id:
                raise ValueError(
                    f"device_id: event is for {event.device_id!r}, not {self.device_id!r}"
                )
        stored = self.outbox.put_many(
            [
                OutboxMessage(
                    kind=MessageKind.EVENT,
                    topic=self._event_topic,
                    payload=encode(event),
                    severity=event.severity,
                    message_id=event.id,
                )
                for event in events
            ]
        )
        if stored < len(events):
            logger.warning("outbox full: %d new event(s) dropped", len(events) - stored)

    def start(self) -> None:
        if self._thread is not None:
            raise RuntimeError("uplink already started")
        self._thread = threading.Thread(target=self._run, name="mqtt-uplink", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Drain for up to ``flush_timeout_s``, publish ``offline``, disconnect cleanly."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(self.settings.flush_timeout_s + _GOODBYE_TIMEOUT_S + 5.0)
            self._thread = None

    @property
    def connected(self) -> bool:
        return self._connected.is_set()

    def wait_connected(self, timeout: float) -> bool:
        return self._connected.wait(timeout)

    def wait_drained(self, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while self.outbox.depth > 0:
            if time.monotonic() > deadline:
                return False
            time.sleep(0.02)
        return True

    def counters(self) -> UplinkCounters:
        return UplinkCounters(
            self._connects,
            self._published,
            self._acked,
            self._rejected,
            self._confirmed,
            self._resent,
            self._dead_lettered,
        )

    @property
    def limits(self) -> BrokerLimits:
        """The broker's limits from the last CONNACK."""
        return self._limits

    # ------------------------------------------------------------------------- the thread

    def _run(self) -> None:
        attempt = 0
        try:
            while not self._stop.is_set():
                client = self._connect()
                if client is not None:
                    started = time.monotonic()
                    try:
                        self._serve(client)
                    except Exception:
                        # E.g. a full disk under the outbox: log it, drop the link, try later.
                        logger.exception("uplink failed; reconnecting")
                        client.disconnect()
                    if self._stop.is_set():
                        return
                    if time.monotonic() - started >= _STABLE_S:
                        attempt = 0
                # Also after a connection the broker accepted and then dropped (a client id in
                # use twice, a broker restart): without it, that is a reconnect storm.
                delay = backoff_delay(
                    attempt, self.settings.backoff_initial_s, self.settings.backoff_max_s, self._rng
                )
                attempt += 1
                logger.info("reconnecting in %.1f s (attempt %d)", delay, attempt)
                self._idle(delay)
        finally:
            self._connected.clear()

    def _idle(self, seconds: float) -> None:
        deadline = time.monotonic() + seconds
        while not self._stop.is_set():
            left = deadline - time.monotonic()
            if left <= 0:
                return
            self._maybe_telemetry()
            self._stop.wait(min(left, 0.25))

    def _status(self, state: DeviceState) -> bytes:
        return encode(
            DeviceStatus(
                device_id=self.device_id,
                state=state,
                ts=utcnow(),
                software=self.software,
                config_version=self.dispatcher.config_version,
                contract=CONTRACT_VERSION if self._stored_mode else 1,
            )
        )

    def _new_client(self) -> mqtt.Client:
        s = self.settings
        client = mqtt.Client(
            CallbackAPIVersion.VERSION2, client_id=self._client_id, protocol=mqtt.MQTTv5
        )
        # Room for status and command acks beside the outbox window.
        client.max_inflight_messages_set(s.max_inflight + 10)
        if s.username is not None:
            client.username_pw_set(
                s.username, None if s.password is None else s.password.get_secret_value()
            )
        if s.tls is not None:
            client.tls_set(
                ca_certs=str(s.tls.ca_file),
                certfile=None if s.tls.cert_file is None else str(s.tls.cert_file),
                keyfile=None if s.tls.key_file is None else str(s.tls.key_file),
            )
        client.will_set(
            topic(self.device_id, Channel.STATUS),
            self._status(DeviceState.OFFLINE),
            qos=1,
            retain=True,
        )
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_publish = self._on_publish
        client.on_message = self._on_message
        return client

    def _connect(self) -> mqtt.Client | None:
        s = self.settings
        client = self._new_client()
        props = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
        props.SessionExpiryInterval = s.session_expiry_s
        self._connack = None
        self._link_up = False
        try:
            client.connect(s.host, s.port, s.keepalive_s, clean_start=False, properties=props)
        except OSError as exc:
            logger.warning("cannot reach broker %s:%d: %s", s.host, s.port, exc)
            return None
        deadline = time.monotonic() + _CONNACK_TIMEOUT_S
        while self._connack is None and not self._stop.is_set():
            if client.loop(_IDLE_LOOP_S) != MQTTErrorCode.MQTT_ERR_SUCCESS:
                break
            if time.monotonic() > deadline:
                logger.warning(
                    "no CONNACK from %s:%d in %.0f s", s.host, s.port, _CONNACK_TIMEOUT_S
                )
                break
        if self._connack is None or self._connack.is_failure:
            reason = "connection lost" if self._connack is None else str(self._connack)
            logger.error(
                "broker %s:%d refused device %s: %s", s.host, s.port, self.device_id, reason
            )
            client.disconnect()
            return None
        return client

    def _serve(self, client: mqtt.Client) -> None:
        self._connects += 1
        self._link_up = True
        logger.info(
            "connected to %s:%d as %s", self.settings.host, self.settings.port, self._client_id
        )
        channels = [Channel.CONFIG, Channel.CMD]
        if self._stored_mode:
            channels.append(Channel.EVENT_ACK)
        for channel in channels:
            client.subscribe(subscription(channel, self.device_id), qos=1)
        # Never more in flight than the broker's Receive Maximum ([MQTT-4.9.0-2]); Mosquitto
        # does not enforce it for QoS 1, so the uplink must.
        receive_maximum = self._limits.receive_maximum
        # paho refuses max_inflight_messages_set once connected, and the limit is only known
        # now; what paho holds back beyond it is a status or a command ack, never the outbox's.
        client._max_inflight_messages = min(  # noqa: SLF001
            receive_maximum, self.settings.max_inflight + _RESERVED_INFLIGHT
        )
        self._window = max(1, min(self.settings.max_inflight, receive_maximum - _RESERVED_INFLIGHT))
        client.publish(
            topic(self.device_id, Channel.STATUS), self._status(DeviceState.ONLINE), 1, retain=True
        )
        self._connected.set()
        inflight: dict[int, _Sent] = {}
        # After a reconnect nothing is known of what the broker held: every unconfirmed event
        # goes again, oldest first (the cloud drops a copy it already stored, and confirms it).
        self._awaiting.clear()
        cursor = 0
        flush_deadline: float | None = None
        try:
            while True:
                busy = bool(inflight) or self.outbox.depth > 0
                rc = client.loop(_BUSY_LOOP_S if busy else _IDLE_LOOP_S)
                if rc != MQTTErrorCode.MQTT_ERR_SUCCESS or not self._link_up:
                    logger.warning("connection to broker lost (%s); events wait in the outbox", rc)
                    return
                self._settle(inflight)
                self._handle_inbox(client)
                self._maybe_telemetry()
                if self._stop.is_set():
                    if flush_deadline is None:
                        flush_deadline = time.monotonic() + self.settings.flush_timeout_s
                    if self.outbox.depth == 0 or time.monotonic() >= flush_deadline:
                        self._goodbye(client)
                        return
                self._resend_overdue(client, inflight)
                cursor = self._pump(client, inflight, cursor)
        finally:
            self._connected.clear()

    def _free(self, inflight: dict[int, _Sent]) -> int:
        free = self._window - len(inflight)
        if self._stored_mode:
            free = min(free, self.settings.max_unconfirmed - len(self._awaiting))
        return free

    def _pump(self, client: mqtt.Client, inflight: dict[int, _Sent], cursor: int) -> int:
        free = self._free(inflight)
        if free <= 0:
            return cursor
        for row in self.outbox.peek(after_seq=cursor, limit=free):
            if not self._send(client, row, inflight):
                break
            cursor = row.seq
        return cursor

    def _resend_overdue(self, client: mqtt.Client, inflight: dict[int, _Sent]) -> None:
        """Send again (same id) the events the cloud has not confirmed in time, oldest first."""
        free = self._window - len(inflight)
        if not self._awaiting or free <= 0:
            return
        cutoff = time.monotonic() - self.settings.confirm_timeout_s
        overdue: list[tuple[str, int]] = []
        for event_id, (seq, sent_at) in self._awaiting.items():  # oldest sent first
            if sent_at > cutoff or len(overdue) >= free:
                break
            overdue.append((event_id, seq))
        if not overdue:
            return
        still = {row.seq: row for row in self.outbox.rows([seq for _, seq in overdue])}
        for event_id, seq in overdue:
            del self._awaiting[event_id]  # _send puts it back at the end, with a new time
            row = still.get(seq)
            if row is None:
                continue  # confirmed meanwhile
            if not self._send(client, row, inflight):
                self._awaiting[event_id] = (seq, time.monotonic())
                break
            self._resent += 1
        logger.info("sent %d unconfirmed event(s) again", len(still))

    def _send(self, client: mqtt.Client, row: OutboxRow, inflight: dict[int, _Sent]) -> bool:
        """Publish one outbox row (True), or move it to the dead letters if it can never go."""
        limit = self._limits.maximum_packet_size
        size = publish_size(row.topic, len(row.payload))
        if limit is not None and size > limit:
            logger.error(
                "message %d (%s, id %s) is %d bytes, over the broker's maximum packet size of "
                "%d: moved to the outbox's dead letters",
                row.seq,
                row.kind.value,
                row.message_id,
                size,
                limit,
            )
            self.outbox.dead_letter(row.seq, f"packet of {size} bytes > broker maximum {limit}")
            self._dead_lettered += 1
            return True
        info = client.publish(row.topic, row.payload, qos=1)
        if info.rc != MQTTErrorCode.MQTT_ERR_SUCCESS:
            return False
        inflight[info.mid] = _Sent(row.seq, row.kind, row.message_id)
        if self._stored_mode and row.kind is MessageKind.EVENT and row.message_id is not None:
            self._awaiting[row.message_id] = (row.seq, time.monotonic())
        self._published += 1
        return True

    def _settle(self, inflight: dict[int, _Sent]) -> None:
        done: list[int] = []
        refused: list[int] = []
        delivered: list[str] = []
        while self._acks:
            ack = self._acks.popleft()
            sent = inflight.pop(ack.mid, None)
            if sent is None:
                continue  # status or command ack, not from the outbox
            if ack.reason >= 0x80:  # noqa: PLR2004 - MQTT 5: reason codes >= 0x80 are failures
                logger.error("broker refused message %d with reason code %d", sent.seq, ack.reason)
                refused.append(sent.seq)
                if sent.message_id is not None:
                    self._awaiting.pop(sent.message_id, None)
            elif not (self._stored_mode and sent.kind is MessageKind.EVENT):
                done.append(sent.seq)  # an event in "stored" mode waits for the cloud instead
                if sent.kind is MessageKind.EVENT and sent.message_id is not None:
                    delivered.append(sent.message_id)
        if done:
            self.outbox.ack(done)
            self._acked += len(done)
        if delivered and self._on_delivered is not None:
            self._on_delivered(delivered)
        if refused:
            self.outbox.reject(refused)
            self._rejected += len(refused)

    def _on_event_ack(self, payload: bytes) -> None:
        try:
            ack = decode(EventAck, payload)
        except ContractError as exc:
            logger.warning("ignored an unreadable event ack: %s", exc)
            return
        if ack.device_id != self.device_id:
            logger.warning("ignored an event ack for %r", ack.device_id)
            return
        for event_id in (*ack.stored, *ack.refused):
            self._awaiting.pop(event_id, None)
        self._confirmed += self.outbox.confirm(ack.stored)
        if ack.stored and self._on_delivered is not None:
            self._on_delivered(ack.stored)
        if ack.refused:
            logger.error(
                "the cloud refused %d event(s) for good: %s", len(ack.refused), ack.refused
            )
            self._rejected += self.outbox.confirm(ack.refused, refused=True)

    def _handle_inbox(self, client: mqtt.Client) -> None:
        while self._inbox:
            msg = self._inbox.popleft()
            try:
                channel = parse(msg.topic).channel
            except TopicError:
                logger.warning("ignored message on %r", msg.topic[:128])
                continue
            if channel is Channel.EVENT_ACK:
                self._on_event_ack(msg.payload)
                continue
            ack: CommandAck | None
            if channel is Channel.CONFIG:
                ack = self.dispatcher.on_config(msg.payload)
            elif channel is Channel.CMD:
                ack = self.dispatcher.on_command(msg.payload)
            else:
                continue
            if ack is None:
                continue
            client.publish(topic(self.device_id, Channel.CMD_ACK), encode(ack), qos=1)
            if channel is Channel.CONFIG and ack.ok:
                self._follow_config()
                client.publish(
                    topic(self.device_id, Channel.STATUS),
                    self._status(DeviceState.ONLINE),
                    1,
                    retain=True,
                )

    def _follow_config(self) -> None:
        """The cloud's ``DeviceConfig`` sets the telemetry interval."""
        applied = self.dispatcher.applied
        if applied is not None and applied.telemetry_interval_s != self._telemetry_interval:
            self._telemetry_interval = applied.telemetry_interval_s
            self._next_telemetry = min(
                self._next_telemetry, time.monotonic() + self._telemetry_interval
            )
            logger.info("telemetry every %.0f s (from config)", self._telemetry_interval)

    def _maybe_telemetry(self) -> None:
        now = time.monotonic()
        if now < self._next_telemetry:
            return
        self._next_telemetry = now + self._telemetry_interval
        health = None
        if self.roles.health is not None:
            try:
                health = self.roles.health()
            except Exception:
                logger.exception("pipeline health unavailable")
        telemetry = self._telemetry.build(self.outbox.stats(), health, read_system())
        self.outbox.put(
            OutboxMessage(
                kind=MessageKind.TELEMETRY,
                topic=topic(self.device_id, Channel.TELEMETRY),
                payload=encode(telemetry),
            )
        )

    def _goodbye(self, client: mqtt.Client) -> None:
        info = client.publish(
            topic(self.device_id, Channel.STATUS), self._status(DeviceState.OFFLINE), 1, retain=True
        )
        deadline = time.monotonic() + _GOODBYE_TIMEOUT_S
        while not info.is_published() and time.monotonic() < deadline:
            if client.loop(_BUSY_LOOP_S) != MQTTErrorCode.MQTT_ERR_SUCCESS:
                break
        client.disconnect()
        client.loop(_BUSY_LOOP_S)
        logger.info("disconnected; %d message(s) left in the outbox", self.outbox.depth)

    # ------------------------------------------------------------------------- callbacks
    # Called by paho from inside client.loop(), i.e. on the uplink thread: they only record.

    def _on_connect(
        self,
        _client: mqtt.Client,
        _userdata: object,
        flags: mqtt.ConnectFlags,
        reason: ReasonCode,
        props: Properties | None,
    ) -> None:
        self._connack = reason
        if not reason.is_failure:
            logger.debug("CONNACK session_present=%s", flags.session_present)
            receive_maximum = getattr(props, "ReceiveMaximum", None) if props else None
            packet_size = getattr(props, "MaximumPacketSize", None) if props else None
            self._limits = BrokerLimits(
                receive_maximum=int(receive_maximum or 65_535),
                maximum_packet_size=None if packet_size is None else int(packet_size),
            )

    def _on_disconnect(
        self,
        _client: mqtt.Client,
        _userdata: object,
        _flags: mqtt.DisconnectFlags,
        reason: ReasonCode,
        _props: Properties | None,
    ) -> None:
        self._link_up = False
        logger.debug("disconnected: %s", reason)

    def _on_publish(
        self,
        _client: mqtt.Client,
        _userdata: object,
        mid: int,
        reason: ReasonCode,
        _props: Properties | None,
    ) -> None:
        self._acks.append(PubAck(mid=mid, reason=int(reason.value)))

    def _on_message(self, _client: mqtt.Client, _userdata: object, msg: mqtt.MQTTMessage) -> None:
        self._inbox.append(Inbound(topic=msg.topic, payload=bytes(msg.payload)))
