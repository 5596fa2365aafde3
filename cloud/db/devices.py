"""The device registry: identity, location, credentials (hashed), presence and config versions."""

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Boolean, Float, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from cloud.db.base import Base, UtcDateTime
from shared.clock import utcnow


class Device(Base):
    __tablename__ = "devices"

    id: Mapped[str] = mapped_column(String(63), primary_key=True)
    site: Mapped[str] = mapped_column(String(128), default="", index=True)
    device_type: Mapped[str] = mapped_column(String(64), default="")
    """balena device type slug, e.g. raspberrypi5, raspberrypi4-64, jetson-orin-nano, esp32."""
    fleet: Mapped[str | None] = mapped_column(String(128), default=None)
    department: Mapped[str | None] = mapped_column(String(64), default=None)
    lat: Mapped[float | None] = mapped_column(Float, default=None)
    lon: Mapped[float | None] = mapped_column(Float, default=None)
    note: Mapped[str] = mapped_column(Text, default="")
    balena_uuid: Mapped[str | None] = mapped_column(String(64), default=None)

    mqtt_password_hash: Mapped[str | None] = mapped_column(String(256), default=None)
    """Mosquitto ``$7$`` hash; the clear password is shown once, at provisioning."""
    revoked: Mapped[bool] = mapped_column(Boolean, default=False)
    revoked_at: Mapped[datetime | None] = mapped_column(UtcDateTime, default=None)

    online: Mapped[bool] = mapped_column(Boolean, default=False)
    last_seen: Mapped[datetime | None] = mapped_column(UtcDateTime, default=None)
    last_status_at: Mapped[datetime | None] = mapped_column(UtcDateTime, default=None)
    last_telemetry_at: Mapped[datetime | None] = mapped_column(UtcDateTime, default=None)
    last_telemetry: Mapped[dict[str, Any] | None] = mapped_column(JSON, default=None)
    last_event_at: Mapped[datetime | None] = mapped_column(UtcDateTime, default=None)

    config: Mapped[dict[str, Any] | None] = mapped_column(JSON, default=None)
    """The desired ``DeviceConfig`` as JSON."""
    config_version: Mapped[int] = mapped_column(Integer, default=0)
    config_acked_version: Mapped[int | None] = mapped_column(Integer, default=None)
    config_ack_message: Mapped[str] = mapped_column(Text, default="")

    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow, onupdate=utcnow)
