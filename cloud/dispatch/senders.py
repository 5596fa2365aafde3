"""Delivering one incident notice: signed webhook POST, or e-mail through SMTP."""

import asyncio
import json
import smtplib
import ssl
from email.message import EmailMessage
from typing import Protocol

import httpx

from cloud.connectors.config import secret_from_env
from cloud.connectors.signing import signature_headers
from cloud.dispatch.config import EmailTarget, WebhookTarget

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


def sender_for(target: WebhookTarget | EmailTarget) -> Sender:
    if isinstance(target, WebhookTarget):
        return WebhookSender(target)
    return EmailSender(target)
