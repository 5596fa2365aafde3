"""Delivering one incident notice: signed webhook POST, e-mail through SMTP, or MQTT publish."""

import asyncio
import json
import smtplib
import ssl
import threading
from email.message import EmailMessage
from typing import Any, Protocol

import httpx
import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

from cloud.connectors.config import secret_from_env
from cloud.connectors.signing import signature_headers
from cloud.dispatch.config import EmailTarget, MqttTarget, WebhookTarget
from shared.errors import TopicError
from shared.topics import incident_topic

_RETRYABLE_4XX = {408, 425, 429}


class DeliveryError(RuntimeError):
    """A failed try; ``permanent`` ones (e.g. 400, 404) are dead-lettered without retrying."""

    def __init__(self, reason: str, *, permanent: bool = False, status: int | None = None) -> None:
        super().__init__(reason)
        self.permanent = permanent
        self.status = status


class Sender(Protocol):
    async def send(self, delivery_id: str, payload: bytes) -> int | None:
        """Deliver *payload*; return the HTTP status (webhook) or None; raise ``DeliveryError``."""


class WebhookSender:
    def __init__(self, target: WebhookTarget) -> None:
        self.target = target
        secret = secret_from_env(target.secret_env, "target.secret_env")
        if secret is None:  # pragma: no cover - secret_env is a required field
            raise ValueError("target.secret_env: required")
        self._secret = secret

    async def send(self, delivery_id: str, payload: bytes) -> int | None:
        headers = {
            "Content-Type": "application/json",
            "User-Agent": "CityOps-Dispatch/1",
            "X-CityOps-Delivery": delivery_id,
            **signature_headers(self._secret.get_secret_value().encode(), payload),
        }
        try:
            async with httpx.AsyncClient(timeout=self.target.timeout_s) as client:
                response = await client.post(self.target.url, content=payload, headers=headers)
        except httpx.HTTPError as exc:
            raise DeliveryError(f"{type(exc).__name__}: {exc}") from exc
        status = response.status_code
        if 200 <= status < 300:  # noqa: PLR2004 - the 2xx range
            return status
        permanent = 400 <= status < 500 and status not in _RETRYABLE_4XX  # noqa: PLR2004
        raise DeliveryError(f"HTTP {status}", permanent=permanent, status=status)


def render_email(target: EmailTarget, payload: bytes) -> EmailMessage:
    notice = json.loads(payload)
    incident = notice["incident"]
    message = EmailMessage()
    message["From"] = target.sender
    message["To"] = ", ".join(target.recipients)
    message["Subject"] = (
        f"[CityOps] {incident['severity'].upper()} {incident['kind']} "
        f"{notice['change']}: {incident['title'] or incident['id']}"
    )
    message["X-CityOps-Incident"] = incident["id"]
    place = (
        f"{incident['lat']:.5f}, {incident['lon']:.5f}"
        if incident.get("lat") is not None and incident.get("lon") is not None
        else "unknown"
    )
    lines = [
        f"Incident {incident['id']} ({notice['change']} by {notice['actor']} at {notice['at']})",
        "",
        f"Department: {incident['department']}",
        f"Kind:       {incident['kind']}",
        f"Severity:   {incident['severity']}",
        f"Status:     {incident['status']}",
        f"Device:     {incident['device_id']}  zone: {incident.get('zone_id') or '-'}",
        f"Location:   {place}",
        f"Opened:     {incident['opened_at']}",
        f"Events:     {incident['event_count']}",
        "",
        "Checklist:",
        *[f"  [{'x' if c['done'] else ' '}] {c['text']}" for c in incident.get("checklist", [])],
    ]
    message.set_content("\n".join(lines))
    message.add_attachment(
        payload, maintype="application", subtype="json", filename=f"incident-{incident['id']}.json"
    )
    return message


class EmailSender:
    def __init__(self, target: EmailTarget) -> None:
        self.target = target
        self._password = secret_from_env(target.password_env, "target.password_env")

    def _send_sync(self, message: EmailMessage) -> None:
        target = self.target
        context = ssl.create_default_context(cafile=str(target.tls_ca) if target.tls_ca else None)
        smtp: smtplib.SMTP
        if target.security == "tls":
            smtp = smtplib.SMTP_SSL(
                target.smtp_host, target.smtp_port, timeout=target.timeout_s, context=context
            )
        else:
            smtp = smtplib.SMTP(target.smtp_host, target.smtp_port, timeout=target.timeout_s)
        with smtp:
            if target.security == "starttls":
                smtp.starttls(context=context)
            if target.username and self._password is not None:
                smtp.login(target.username, self._password.get_secret_value())
            smtp.send_message(message)

    async def send(self, delivery_id: str, payload: bytes) -> int | None:
        message = render_email(self.target, payload)
        message["Message-ID"] = f"<{delivery_id}@cityops>"
        try:
            await asyncio.to_thread(self._send_sync, message)
        except smtplib.SMTPResponseException as exc:
            permanent = 500 <= exc.smtp_code < 600  # noqa: PLR2004 - SMTP permanent failure
            raise DeliveryError(
                f"SMTP {exc.smtp_code}: {exc.smtp_error!r}", permanent=permanent
            ) from exc
        except (smtplib.SMTPException, OSError) as exc:
            raise DeliveryError(f"SMTP: {type(exc).__name__}: {exc}") from exc
        return None


_REFUSED_FOR_GOOD = {134, 135, 138, 140, 144, 149, 153}
"""CONNACK/PUBACK reasons a retry cannot fix: bad user name or password, not authorized,
banned, bad authentication method, topic name invalid, packet too large, payload format invalid."""


class MqttSender:
    """One short MQTT 5 connection per try: connect, publish at QoS 1, wait for the PUBACK, leave.

    Incident changes are a few a minute, so a connection per try costs nothing that matters and
    leaves no session to manage; the PUBACK's reason code tells an ACL refusal (135) apart.
    """

    def __init__(self, target: MqttTarget, client_id: str) -> None:
        self.target = target
        self.client_id = client_id
        self._password = secret_from_env(target.password_env, "target.password_env")

    def _client(self) -> paho.Client:
        client = paho.Client(
            CallbackAPIVersion.VERSION2, client_id=self.client_id, protocol=paho.MQTTv5
        )
        if self.target.username:
            password = self._password.get_secret_value() if self._password else None
            client.username_pw_set(self.target.username, password)
        if self.target.tls_ca is not None:
            client.tls_set(ca_certs=str(self.target.tls_ca))
        return client

    def _wait(self, event: threading.Event, what: str) -> None:
        if not event.wait(self.target.timeout_s):
            raise DeliveryError(f"MQTT {self.target.host}:{self.target.port}: no {what}")

    @staticmethod
    def _check(reason: ReasonCode, what: str) -> None:
        if reason.is_failure:
            raise DeliveryError(
                f"MQTT {what} {reason.value} ({reason})",
                permanent=reason.value in _REFUSED_FOR_GOOD,
            )

    def _publish_sync(self, topic: str, payload: bytes, delivery_id: str) -> None:
        client = self._client()
        connected, acked = threading.Event(), threading.Event()
        reasons: dict[str, ReasonCode] = {}

        def on_connect(_c: Any, _u: Any, _f: Any, reason: ReasonCode, _p: Any) -> None:
            reasons["connack"] = reason
            connected.set()

        def on_publish(_c: Any, _u: Any, _mid: int, reason: ReasonCode, _p: Any) -> None:
            reasons["puback"] = reason
            acked.set()

        client.on_connect = on_connect
        client.on_publish = on_publish
        properties = Properties(PacketTypes.PUBLISH)  # type: ignore[no-untyped-call]
        properties.ContentType = "application/json"
        properties.UserProperty = [("delivery", delivery_id)]
        try:
            client.connect(self.target.host, self.target.port, keepalive=30, clean_start=True)
        except OSError as exc:
            raise DeliveryError(f"MQTT {type(exc).__name__}: {exc}") from exc
        client.loop_start()
        try:
            self._wait(connected, "CONNACK")
            self._check(reasons["connack"], "CONNACK")
            client.publish(topic, payload, qos=1, properties=properties)
            self._wait(acked, "PUBACK")
            self._check(reasons["puback"], "PUBACK")
        finally:
            client.disconnect()
            client.loop_stop()

    async def send(self, delivery_id: str, payload: bytes) -> int | None:
        incident = json.loads(payload)["incident"]
        try:
            topic = incident_topic(incident["department"], incident["id"], self.target.topic_prefix)
        except TopicError as exc:
            raise DeliveryError(str(exc), permanent=True) from exc
        await asyncio.to_thread(self._publish_sync, topic, payload, delivery_id)
        return None


def sender_for(target: WebhookTarget | EmailTarget | MqttTarget, client_id: str) -> Sender:
    """The sender of one route; *client_id* is this process's dispatch MQTT client id."""
    if isinstance(target, WebhookTarget):
        return WebhookSender(target)
    if isinstance(target, MqttTarget):
        return MqttSender(target, client_id)
    return EmailSender(target)
