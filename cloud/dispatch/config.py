"""Which incident changes go to which department system, and how (``dispatch.yaml``).

Targets: a signed webhook, an e-mail, or an MQTT topic (Home Assistant, Node-RED).
"""

from pathlib import Path
from typing import Annotated, Literal, Self

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from cloud.ops.models import ChangeType
from shared.codec import field_of
from shared.events import Severity
from shared.topics import INCIDENTS_PREFIX


class _Strict(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class WebhookTarget(_Strict):
    """POST the incident JSON, signed with HMAC-SHA256 (``X-CityOps-Signature``)."""

    type: Literal["webhook"]
    url: str = Field(pattern=r"^https?://", description="The department system's endpoint.")
    secret_env: str = Field(description="Environment variable with the shared signing secret.")
    timeout_s: float = Field(default=10.0, gt=0)


class EmailTarget(_Strict):
    """Send a plain-text e-mail with the incident JSON attached, through an SMTP server."""

    type: Literal["email"]
    smtp_host: str
    smtp_port: int = Field(default=25, ge=1, le=65535)
    security: Literal["none", "starttls", "tls"] = "none"
    tls_ca: Path | None = Field(
        default=None, description="CA file to trust for the SMTP server; system CAs when unset."
    )
    username: str | None = None
    password_env: str | None = Field(default=None, description="Env var with the SMTP password.")
    sender: str = Field(pattern=r"^[^@\s]+@[^@\s]+$")
    recipients: list[Annotated[str, Field(pattern=r"^[^@\s]+@[^@\s]+$")]] = Field(min_length=1)
    timeout_s: float = Field(default=10.0, gt=0)


class MqttTarget(_Strict):
    """Publish each change (QoS 1) on ``<topic_prefix>/<department>/<incident id>``.

    What Home Assistant and Node-RED subscribe to. Connect to the services listener (1884 in
    deploy/) with an account of role ``dispatch``; readers get role ``incidents`` (cloud.broker).
    """

    type: Literal["mqtt"]
    host: str = Field(description="Broker host.")
    port: int = Field(default=1883, ge=1, le=65535)
    username: str | None = Field(default=None, description="Broker account (role dispatch).")
    password_env: str | None = Field(default=None, description="Env var with its password.")
    tls_ca: Path | None = Field(default=None, description="CA file; enables TLS when set.")
    topic_prefix: str = Field(
        default=INCIDENTS_PREFIX,
        pattern=r"^[A-Za-z0-9_-]+(/[A-Za-z0-9_-]+)*$",
        description="Topics are <prefix>/<department>/<incident id>.",
    )
    timeout_s: float = Field(default=10.0, gt=0)


DEFAULT_CHANGES = [
    ChangeType.CREATED,
    ChangeType.DISPATCHED,
    ChangeType.SLA_BREACHED,
    ChangeType.RESOLVED,
    ChangeType.FALSE_ALARM,
]


class DispatchRoute(_Strict):
    id: str = Field(
        pattern=r"^[a-z0-9][a-z0-9_-]{0,62}$", description="Name of this delivery route."
    )
    departments: list[str] = Field(min_length=1, description="Department ids, or '*' for all.")
    changes: list[ChangeType] = Field(
        default_factory=lambda: list(DEFAULT_CHANGES), description="Incident changes to send."
    )
    min_severity: Severity | None = None
    target: Annotated[WebhookTarget | EmailTarget | MqttTarget, Field(discriminator="type")]

    def matches(self, department: str, change: ChangeType, severity: Severity) -> bool:
        return (
            ("*" in self.departments or department in self.departments)
            and change in self.changes
            and (self.min_severity is None or severity.rank >= self.min_severity.rank)
        )


class DispatchConfig(_Strict):
    routes: list[DispatchRoute] = Field(default_factory=list)
    max_attempts: int = Field(default=6, ge=1, le=100, description="Then the delivery is dead.")
    backoff_initial_s: float = Field(default=5.0, gt=0, description="Wait after the 1st failure.")
    backoff_max_s: float = Field(default=900.0, gt=0, description="Longest wait between tries.")
    poll_s: float = Field(default=2.0, gt=0, description="How often due retries are looked for.")

    @model_validator(mode="after")
    def _unique(self) -> Self:
        ids = [r.id for r in self.routes]
        for route_id in ids:
            if ids.count(route_id) > 1:
                raise ValueError(f"routes: duplicate route id {route_id!r}")
        return self

    def backoff_s(self, attempts: int) -> float:
        """Wait before try number ``attempts + 1``: doubling from the initial wait, capped."""
        return min(self.backoff_initial_s * 2.0 ** max(0, attempts - 1), self.backoff_max_s)


def load_dispatch(path: Path) -> DispatchConfig:
    data = yaml.safe_load(path.read_text()) or {}
    try:
        return DispatchConfig.model_validate(data)
    except ValidationError as exc:
        field, reason = field_of(exc)
        raise ValueError(f"{path}: {field}: {reason}") from exc
