"""Device health and blind spots from presence and telemetry; one device with its telemetry."""

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from cloud.api.schemas import DeviceOut, device_health
from cloud.db.devices import Device
from shared.clock import utcnow
from shared.telemetry import CameraHealth, CameraState, Telemetry
from tests.cloud.api.conftest import Api

NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
CAMERA_DOWN = {"cameras": [{"camera_id": "cam-1", "state": "down"}]}
CAMERA_OK = {"cameras": [{"camera_id": "cam-1", "state": "ok"}]}


def device(**fields: Any) -> Device:
    base: dict[str, Any] = {
        "id": "cam-x",
        "site": "s",
        "device_type": "raspberrypi5",
        "note": "",
        "revoked": False,
        "online": True,
        "last_seen": NOW - timedelta(seconds=10),
        "last_telemetry": CAMERA_OK,
        "config_version": 0,
        "created_at": NOW,
        "updated_at": NOW,
    }
    return Device(**(base | fields))


@pytest.mark.parametrize(
    ("fields", "health", "blind"),
    [
        ({}, "ok", False),
        ({"last_seen": None, "online": False}, "never_seen", False),
        ({"online": False}, "offline", True),
        ({"last_seen": NOW - timedelta(seconds=181)}, "silent", True),
        ({"last_telemetry": CAMERA_DOWN}, "camera_down", True),
        ({"last_telemetry": None}, "ok", False),
        ({"online": False, "revoked": True}, "offline", False),
    ],
)
def test_health_and_blind_spot(fields: dict[str, Any], health: str, blind: bool) -> None:
    row = device(**fields)
    assert device_health(row, NOW, 180) == health
    assert DeviceOut.of(row, NOW, 180).blind_spot is blind


async def test_device_detail_has_recent_telemetry_and_blind_spot_filter(api: Api) -> None:
    now = utcnow()
    with api.app.state.sessions() as session:
        session.add(device(id="cam-down", last_seen=now, last_telemetry=CAMERA_DOWN))
        session.add(device(id="cam-fine", last_seen=now))
        session.commit()
    await api.app.state.store.write_telemetry(
        [
            Telemetry(
                device_id="cam-down",
                ts=now - timedelta(seconds=30 * i),
                fps=0.0,
                cameras=[CameraHealth(camera_id="cam-1", state=CameraState.DOWN)],
            )
            for i in range(3)
        ]
    )
    headers = api.auth("viewer")
    detail = (await api.client.get("/api/v1/devices/cam-down?telemetry=2", headers=headers)).json()
    assert detail["health"] == "camera_down"
    assert len(detail["telemetry"]) == 2
    assert detail["telemetry"][0]["cameras"][0]["state"] == "down"
    blind = await api.client.get("/api/v1/devices?blind_spot=true", headers=headers)
    assert [d["id"] for d in blind.json()["items"]] == ["cam-down"]
    online = await api.client.get("/api/v1/devices?online=true&limit=1", headers=headers)
    assert len(online.json()["items"]) == 1
    assert online.json()["next_cursor"] == "cam-down"
