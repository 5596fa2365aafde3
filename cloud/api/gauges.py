"""Gauges computed from the SQL state at scrape time: devices, incidents, dead letters, dispatch.

Nothing is kept in memory, so every API process reports the same numbers and a restart loses
nothing. Label values are bounded: sites, departments, severities, statuses, reject reasons,
dispatch routes and connector ids come from configuration or short enums. The only per-device
families are the six ``cityops_device_*`` gauges, one series each per registered, not revoked
device (``info`` also for never-seen ones): 1,000 devices make at most 6,000 series.
"""

import logging
import time
from collections import Counter as Tally
from collections.abc import Callable, Iterator, Sequence
from datetime import datetime
from typing import Any

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from sqlalchemy import Integer, func, select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, load_only, sessionmaker

from cloud.api.schemas import device_health
from cloud.connectors.health import SourceHealthOut
from cloud.db.devices import Device
from cloud.db.ingest import DeadLetter, RejectReason
from cloud.db.ops import Incident
from cloud.dispatch.tables import Delivery, DeliveryStatus
from cloud.ops.clock import Clock
from cloud.ops.models import IncidentStatus
from shared.clock import ensure_utc
from shared.telemetry import CameraState

logger = logging.getLogger(__name__)

DEVICE_STATES = ("ok", "offline", "silent", "camera_down", "never_seen", "revoked")
"""``state`` label of ``cityops_devices``: the API's device health, plus ``revoked``."""
BLIND = frozenset({"offline", "silent", "camera_down"})
OPEN = tuple(s.value for s in IncidentStatus if not s.closed)
UNDELIVERED = (DeliveryStatus.PENDING.value, DeliveryStatus.DEAD.value)
"""``status`` label of ``cityops_dispatch_deliveries``: the delivered rows, kept for good, are
not counted (only these two statuses are read, through the ``(status, next_attempt_at)`` index)."""


def _ts(value: datetime | None) -> float | None:
    return None if value is None else value.timestamp()


def _cameras_down(telemetry: dict[str, Any] | None) -> int:
    cameras = (telemetry or {}).get("cameras") or []
    return sum(
        1 for c in cameras if isinstance(c, dict) and c.get("state") == CameraState.DOWN.value
    )


def _outbox(telemetry: dict[str, Any] | None) -> float | None:
    depth = (telemetry or {}).get("outbox_depth")
    return float(depth) if isinstance(depth, int | float) else None


class StateCollector(Collector):
    """Devices by state and health, open incidents, dead letters, dispatch not yet delivered."""

    def __init__(
        self, sessions: sessionmaker[Session], clock: Clock, silent_after_s: float
    ) -> None:
        self.sessions = sessions
        self.clock = clock
        self.silent_after_s = silent_after_s

    def describe(self) -> Iterator[Metric]:
        return iter(())  # families depend on the data; nothing to check at registration

    def collect(self) -> Iterator[Metric]:
        started = time.perf_counter()
        up = GaugeMetricFamily(
            "cityops_state_database_up",
            "1 when the SQL state (devices, incidents, dead letters) answered this scrape.",
        )
        try:
            with self.sessions() as session:
                families = [
                    *self._devices(session),
                    *self._incidents(session),
                    self._dead_letters(session),
                    *self._dispatch(session),
                ]
        except SQLAlchemyError as exc:
            logger.warning("metrics: the state database did not answer: %s", exc)
            up.add_metric([], 0)
            yield up
            return
        up.add_metric([], 1)
        yield up
        yield from families
        took = GaugeMetricFamily(
            "cityops_state_scrape_duration_seconds",
            "Time spent reading the SQL state for this scrape.",
        )
        took.add_metric([], time.perf_counter() - started)
        yield took

    def _devices(self, session: Session) -> list[Metric]:
        now = self.clock.now()
        by_site = GaugeMetricFamily(
            "cityops_devices",
            "Registered devices by site and state (ok, offline, silent, camera_down, never_seen, "
            "revoked); blind spots are offline + silent + camera_down.",
            labels=["site", "state"],
        )
        labels = ["device", "site"]
        info = GaugeMetricFamily(
            "cityops_device_info",
            "1 per registered device, with where it is (for maps and joins).",
            labels=["device", "site", "device_type", "department", "lat", "lon"],
        )
        online = GaugeMetricFamily(
            "cityops_device_online",
            "1 when the device's retained presence says online, 0 after its Last Will (offline).",
            labels=labels,
        )
        blind = GaugeMetricFamily(
            "cityops_device_blind_spot",
            "1 when the device cannot see: offline, silent or a camera down.",
            labels=labels,
        )
        cameras_down = GaugeMetricFamily(
            "cityops_device_cameras_down",
            "Cameras the device's latest telemetry reports down.",
            labels=labels,
        )
        last_seen = GaugeMetricFamily(
            "cityops_device_last_seen_timestamp_seconds",
            "Unix time of the last valid message from the device (age: time() - this).",
            labels=labels,
        )
        outbox = GaugeMetricFamily(
            "cityops_device_outbox_messages",
            "Messages waiting in the device's outbox, as its latest telemetry reports.",
            labels=labels,
        )
        counts: Tally[tuple[str, str]] = Tally()
        sites: set[str] = set()
        rows = session.scalars(
            select(Device).options(
                load_only(
                    Device.id,
                    Device.site,
                    Device.device_type,
                    Device.department,
                    Device.lat,
                    Device.lon,
                    Device.revoked,
                    Device.online,
                    Device.last_seen,
                    Device.last_telemetry,
                )
            )
        ).all()
        for row in rows:
            sites.add(row.site)
            if row.revoked:
                counts[row.site, "revoked"] += 1
                continue
            health = device_health(row, now, self.silent_after_s)
            counts[row.site, health] += 1
            info.add_metric(
                [
                    row.id,
                    row.site,
                    row.device_type,
                    row.department or "",
                    "" if row.lat is None else f"{row.lat:.6f}",
                    "" if row.lon is None else f"{row.lon:.6f}",
                ],
                1,
            )
            if row.last_seen is None:
                continue
            key = [row.id, row.site]
            online.add_metric(key, 1 if row.online else 0)
            blind.add_metric(key, 1 if health in BLIND else 0)
            cameras_down.add_metric(key, _cameras_down(row.last_telemetry))
            last_seen.add_metric(key, row.last_seen.timestamp())
            depth = _outbox(row.last_telemetry)
            if depth is not None:
                outbox.add_metric(key, depth)
        for site in sorted(sites):
            for state in DEVICE_STATES:
                by_site.add_metric([site, state], counts[site, state])
        return [by_site, info, online, blind, cameras_down, last_seen, outbox]

    def _incidents(self, session: Session) -> list[Metric]:
        open_ = GaugeMetricFamily(
            "cityops_incidents_open",
            "Incidents not yet closed, by department, severity and status.",
            labels=["department", "severity", "status"],
        )
        oldest = GaugeMetricFamily(
            "cityops_incidents_oldest_open_timestamp_seconds",
            "Unix time the oldest open incident was opened (age: time() - this).",
            labels=["department", "severity"],
        )
        breached = GaugeMetricFamily(
            "cityops_incidents_sla_breached",
            "Open incidents past their acknowledge (sla=ack) or resolve (sla=resolve) deadline.",
            labels=["department", "sla"],
        )
        rows = session.execute(
            select(
                Incident.department,
                Incident.severity,
                Incident.status,
                func.count(),
                func.min(Incident.opened_at),
                func.sum(Incident.ack_breached.cast(Integer)),
                func.sum(Incident.resolve_breached.cast(Integer)),
            )
            .where(Incident.status.in_(OPEN))
            .group_by(Incident.department, Incident.severity, Incident.status)
        ).all()
        first: dict[tuple[str, str], datetime] = {}
        ack: Tally[str] = Tally()
        resolve: Tally[str] = Tally()
        for department, severity, status, count, opened, acks, resolves in rows:
            open_.add_metric([department, severity, status], count)
            opened_at = _aware(opened)
            key = (department, severity)
            if opened_at is not None and (key not in first or opened_at < first[key]):
                first[key] = opened_at
            ack[department] += int(acks or 0)
            resolve[department] += int(resolves or 0)
        for (department, severity), at in sorted(first.items()):
            oldest.add_metric([department, severity], at.timestamp())
        for department in sorted(set(ack) | set(resolve)):
            breached.add_metric([department, "ack"], ack[department])
            breached.add_metric([department, "resolve"], resolve[department])
        return [open_, oldest, breached]

    @staticmethod
    def _dead_letters(session: Session) -> Metric:
        family = GaugeMetricFamily(
            "cityops_ingest_dead_letters",
            "Refused messages kept in the dead-letter table, by reason (GET /api/v1/dead-letters).",
            labels=["reason"],
        )
        rows = session.execute(select(DeadLetter.reason, func.count()).group_by(DeadLetter.reason))
        counts: dict[str, int] = dict(
            rows.all()
        )  # .all(): a Result has keys(), dict() takes it for a mapping
        for reason in sorted({r.value for r in RejectReason} | set(counts)):
            family.add_metric([reason], counts.get(reason, 0))
        return family

    @staticmethod
    def _dispatch(session: Session) -> list[Metric]:
        deliveries = GaugeMetricFamily(
            "cityops_dispatch_deliveries",
            "Deliveries to department systems waiting to be sent (pending) or given up (dead: "
            "GET /api/v1/dispatch/deliveries?status=dead), by route.",
            labels=["route", "status"],
        )
        oldest = GaugeMetricFamily(
            "cityops_dispatch_oldest_pending_timestamp_seconds",
            "Unix time the route's oldest pending delivery was queued (age: time() - this).",
            labels=["route"],
        )
        rows = session.execute(
            select(
                Delivery.route_id,
                Delivery.status,
                func.count(),
                func.min(Delivery.created_at),
            )
            .where(Delivery.status.in_(UNDELIVERED))
            .group_by(Delivery.route_id, Delivery.status)
        ).all()
        counts: dict[tuple[str, str], int] = {}
        first: dict[str, datetime] = {}
        for route, status, count, created in rows:
            counts[route, status] = count
            queued = _aware(created)
            if status == DeliveryStatus.PENDING.value and queued is not None:
                first[route] = queued
        # A route with anything undelivered gets both statuses, so its dead count reads 0 (not
        # absent) once its dead letters are retried while others of the route still wait.
        for route in sorted({route for route, _ in counts}):
            for status in UNDELIVERED:
                deliveries.add_metric([route, status], counts.get((route, status), 0))
        for route, at in sorted(first.items()):
            oldest.add_metric([route], at.timestamp())
        return [deliveries, oldest]


def _aware(value: datetime | None) -> datetime | None:
    return None if value is None else ensure_utc(value)


class ConnectorCollector(Collector):
    """Health of each configured connector source (``GET /api/v1/connectors/sources``)."""

    def __init__(self, health: Callable[[], Sequence[SourceHealthOut]]) -> None:
        self.health = health

    def describe(self) -> Iterator[Metric]:
        return iter(())

    def collect(self) -> Iterator[Metric]:
        labels = ["source", "type"]
        up = GaugeMetricFamily(
            "cityops_connector_up",
            "0 while the source is failing (an error and no success since), else 1.",
            labels=labels,
        )
        errors_in_row = GaugeMetricFamily(
            "cityops_connector_consecutive_errors",
            "Errors since the source's last success.",
            labels=labels,
        )
        success = GaugeMetricFamily(
            "cityops_connector_last_success_timestamp_seconds",
            "Unix time of the source's last successful poll, delivery or message.",
            labels=labels,
        )
        records = CounterMetricFamily(
            "cityops_connector_records", "Records taken in from the source.", labels=labels
        )
        rejected = CounterMetricFamily(
            "cityops_connector_rejected", "Records the mapping refused.", labels=labels
        )
        errors = CounterMetricFamily(
            "cityops_connector_errors", "Failed polls, deliveries or connections.", labels=labels
        )
        for h in self.health():
            key = [h.source_id, h.type]
            up.add_metric(key, 0 if h.state == "failing" else 1)
            errors_in_row.add_metric(key, h.consecutive_errors)
            at = _ts(h.last_success_at)
            if at is not None:
                success.add_metric(key, at)
            records.add_metric(key, h.records_total)
            rejected.add_metric(key, h.rejected_total)
            errors.add_metric(key, h.errors_total)
        yield from (up, errors_in_row, success, records, rejected, errors)
