"""Builders of events, dispatch deliveries and an ops database for the ops and API tests."""

from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy.orm import Session, sessionmaker

from cloud.db.base import make_engine
from cloud.db.devices import Device
from cloud.db.tables import create_all
from cloud.dispatch.tables import Delivery, DeliveryStatus
from shared.clock import utcnow
from shared.events import Box, DetectedObject, Event, EventKind, Location, Phase, Severity
from shared.ids import new_id


def event(
    kind: EventKind = EventKind.ABANDONED_OBJECT,
    *,
    device_id: str = "dev-a",
    zone_id: str | None = "platform-1",
    track_id: int | None = 3,
    phase: Phase = Phase.START,
    observed_at: datetime | None = None,
    severity: Severity = Severity.MEDIUM,
    **overrides: Any,
) -> Event:
    observed = observed_at or utcnow() - timedelta(seconds=1)
    fields: dict[str, Any] = {
        "id": new_id(),
        "device_id": device_id,
        "camera_id": "cam-1",
        "kind": kind,
        "phase": phase,
        "severity": severity,
        "started_at": observed - timedelta(seconds=40),
        "observed_at": observed,
        "ended_at": observed if phase is Phase.END else None,
        "zone_id": zone_id,
        "location": Location(lat=38.7075, lon=-9.1365),
        "objects": [
            DetectedObject(
                label="suitcase",
                score=0.8,
                box=Box(x1=0.4, y1=0.5, x2=0.5, y2=0.7),
                track_id=track_id,
            )
        ],
        "dwell_s": 40.0,
    }
    fields.update(overrides)
    return Event(**fields)


def ops_database(path: Path) -> sessionmaker[Session]:
    engine = make_engine(f"sqlite:///{path}")
    create_all(engine)
    return sessionmaker(engine, expire_on_commit=False)


def add_device(
    sessions: sessionmaker[Session],
    device_id: str,
    *,
    site: str = "Cais do Sodré",
    department: str | None = None,
) -> None:
    with sessions() as session:
        session.add(
            Device(
                id=device_id,
                site=site,
                department=department,
                device_type="raspberrypi5",
                lat=38.7,
                lon=-9.14,
            )
        )
        session.commit()


def delivery(
    route_id: str, status: DeliveryStatus, *, created_at: datetime | None = None
) -> Delivery:
    """An outbox row as the dispatcher leaves it, for a route the test's processes do not send."""
    at = created_at or utcnow()
    return Delivery(
        id=new_id(),
        route_id=route_id,
        target_type="webhook",
        incident_id=new_id(),
        department="civil-protection",
        change_type="created",
        payload="{}",
        status=status.value,
        next_attempt_at=at,
        created_at=at,
        updated_at=at,
        delivered_at=at if status is DeliveryStatus.DELIVERED else None,
    )
