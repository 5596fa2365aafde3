"""Builders of valid contract messages for store and ingest tests."""

import io
from datetime import datetime, timedelta
from typing import Any

from PIL import Image

from shared.clock import utcnow
from shared.commands import CommandAck, CommandName
from shared.events import (
    Box,
    DetectedObject,
    Event,
    EventKind,
    Location,
    ModelInfo,
    Severity,
    Snapshot,
)
from shared.ids import new_id
from shared.telemetry import CameraHealth, CameraState, DeviceState, DeviceStatus, Telemetry


def jpeg(width: int = 64, height: int = 48) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (width, height), (200, 30, 30)).save(buf, format="JPEG")
    return buf.getvalue()


def make_event(
    device_id: str = "dev-a",
    *,
    observed_at: datetime | None = None,
    snapshot: bool = False,
    **overrides: Any,
) -> Event:
    observed = observed_at or utcnow() - timedelta(seconds=1)
    fields: dict[str, Any] = {
        "id": new_id(),
        "device_id": device_id,
        "camera_id": "cam-1",
        "kind": EventKind.ILLEGAL_PARKING,
        "severity": Severity.MEDIUM,
        "started_at": observed - timedelta(seconds=30),
        "observed_at": observed,
        "zone_id": "bay-1",
        "location": Location(lat=45.4642, lon=9.19),
        "objects": [
            DetectedObject(
                label="car", score=0.87, box=Box(x1=0.1, y1=0.2, x2=0.4, y2=0.6), track_id=7
            )
        ],
        "dwell_s": 30.5,
        "model": ModelInfo(name="ssd_mobilenet_v1", version="1"),
        "summary": 'car in "bay 1", no parking, 30 s',
        "attributes": {"plate_visible": False, "note": "a,b=c d"},
    }
    if snapshot:
        fields["snapshot"] = Snapshot(data=jpeg(), width=64, height=48)
    fields.update(overrides)
    return Event(**fields)


def make_telemetry(device_id: str = "dev-a", ts: datetime | None = None, **kw: Any) -> Telemetry:
    fields: dict[str, Any] = {
        "device_id": device_id,
        "ts": ts or utcnow() - timedelta(seconds=1),
        "uptime_s": 120.0,
        "fps": 9.5,
        "inference_ms": 3.7,
        "cpu_percent": 42.0,
        "outbox_depth": 3,
        "cameras": [CameraHealth(camera_id="cam-1", state=CameraState.OK, fps=9.5)],
        "readings": {"pm25_ugm3": 12.5},
    }
    fields.update(kw)
    return Telemetry(**fields)


def make_status(device_id: str = "dev-a", *, online: bool = True) -> DeviceStatus:
    state = DeviceState.ONLINE if online else DeviceState.OFFLINE
    return DeviceStatus(device_id=device_id, state=state, ts=utcnow(), config_version=2)


def make_config_ack(device_id: str = "dev-a", version: int = 3, *, ok: bool = True) -> CommandAck:
    return CommandAck(
        device_id=device_id,
        name=CommandName.CONFIG,
        ok=ok,
        ts=utcnow(),
        config_version=version,
        message="applied" if ok else "zone bay-9: unknown camera",
    )
