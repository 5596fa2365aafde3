"""Routing rules: which department handles which event, with what severity, SLA and checklist.

Rules are YAML (``cloud/ops/default_rules.yaml`` ships with the package); the first rule whose
kind, place and time window match an event wins. Events no rule matches open no incident.
"""

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, time
from importlib import resources
from pathlib import Path
from typing import Annotated, Self
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    field_validator,
    model_validator,
)

from cloud.store.base import BBox
from shared.events import Event, EventKind, Severity

DepartmentId = Annotated[str, StringConstraints(pattern=r"^[a-z0-9][a-z0-9_-]{0,63}$")]


class _Strict(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Department(_Strict):
    id: DepartmentId
    name: str = Field(default="", max_length=256, description="Human name of the service.")
    contact: str = Field(default="", max_length=256, description="Phone/e-mail, for humans.")


class TimeWindow(_Strict):
    """Local time window; ``end`` before ``start`` runs past midnight."""

    start: time
    end: time
    days: list[Annotated[int, Field(ge=0, le=6)]] = Field(
        default_factory=lambda: [0, 1, 2, 3, 4, 5, 6], min_length=1, description="0 = Monday."
    )

    def contains(self, local: datetime) -> bool:
        now = local.time()
        if self.start <= self.end:
            return local.weekday() in self.days and self.start <= now < self.end
        if now >= self.start:
            return local.weekday() in self.days
        return (local.weekday() - 1) % 7 in self.days and now < self.end


class Sla(_Strict):
    ack_minutes: float | None = Field(default=None, gt=0, description="Acknowledge within.")
    resolve_minutes: float | None = Field(default=None, gt=0, description="Resolve within.")


class Escalation(_Strict):
    raise_severity: bool = Field(default=True, description="Raise severity one step on breach.")
    notify: list[str] = Field(
        default_factory=lambda: ["supervisor"], description="Roles to notify on breach."
    )


class RoutingRule(_Strict):
    name: Annotated[str, StringConstraints(min_length=1, max_length=64)]
    kinds: list[EventKind] = Field(min_length=1)
    department: DepartmentId
    severity: Severity | None = Field(default=None, description="Override; else the event's.")
    min_severity: Severity | None = Field(default=None, description="Ignore milder events.")
    zones: list[str] = Field(default_factory=list, description="Zone ids; empty = any zone.")
    sites: list[str] = Field(default_factory=list, description="Device sites; empty = any.")
    devices: list[str] = Field(default_factory=list, description="Device ids; empty = any.")
    area: BBox | None = Field(default=None, description="Event location inside this box.")
    hours: list[TimeWindow] = Field(default_factory=list, description="Empty = always.")
    sla: Sla = Field(default_factory=Sla)
    checklist: list[Annotated[str, StringConstraints(min_length=1, max_length=256)]] = Field(
        default_factory=list, description="Standard operating procedure steps."
    )
    auto_resolve_on_end: bool = False
    dedup_window_s: float = Field(
        default=900.0, ge=0, description="Events of one situation this close attach."
    )
    escalation: Escalation = Field(default_factory=Escalation)


class RoutingConfig(_Strict):
    timezone: str = "Europe/Lisbon"
    departments: list[Department] = Field(default_factory=list)
    rules: list[RoutingRule] = Field(default_factory=list)

    @field_validator("timezone")
    @classmethod
    def _tz(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"unknown time zone {value!r}") from exc
        return value

    @model_validator(mode="after")
    def _known_departments(self) -> Self:
        known = {d.id for d in self.departments}
        for index, rule in enumerate(self.rules):
            if known and rule.department not in known:
                raise ValueError(
                    f"rules.{index}.department: {rule.department!r} is not in departments"
                )
        return self

    @classmethod
    def from_yaml(cls, path: Path) -> Self:
        data = yaml.safe_load(path.read_text()) or {}
        return cls.model_validate(data)

    @classmethod
    def default(cls) -> Self:
        text = resources.files("cloud.ops").joinpath("default_rules.yaml").read_text()
        return cls.model_validate(yaml.safe_load(text))


@dataclass(frozen=True, slots=True)
class DeviceFacts:
    """What routing needs to know about the device that sent an event."""

    site: str = ""
    lat: float | None = None
    lon: float | None = None


@dataclass(frozen=True, slots=True)
class Route:
    rule: RoutingRule
    severity: Severity


class Router:
    def __init__(self, config: RoutingConfig) -> None:
        self.config = config
        self._tz = ZoneInfo(config.timezone)

    @property
    def departments(self) -> Sequence[Department]:
        return self.config.departments

    def route(self, event: Event, device: DeviceFacts) -> Route | None:
        for rule in self.config.rules:
            if self._matches(rule, event, device):
                return Route(rule=rule, severity=rule.severity or event.severity)
        return None

    def _matches(self, rule: RoutingRule, event: Event, device: DeviceFacts) -> bool:
        checks = (
            event.kind in rule.kinds,
            rule.min_severity is None or event.severity.rank >= rule.min_severity.rank,
            not rule.zones or event.zone_id in rule.zones,
            not rule.sites or device.site in rule.sites,
            not rule.devices or event.device_id in rule.devices,
            rule.area is None or _inside(rule.area, event, device),
            not rule.hours
            or any(w.contains(event.started_at.astimezone(self._tz)) for w in rule.hours),
        )
        return all(checks)


def _inside(area: BBox, event: Event, device: DeviceFacts) -> bool:
    lat, lon = (
        (event.location.lat, event.location.lon) if event.location else (device.lat, device.lon)
    )
    if lat is None or lon is None:
        return False
    return area.min_lat <= lat <= area.max_lat and area.min_lon <= lon <= area.max_lon
