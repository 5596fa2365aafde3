"""Joining balena's fleet with CityOps devices (pure logic)."""

from datetime import UTC, datetime

import pytest

from provisioning.api_models import DeviceOut
from provisioning.balena_fleet import FleetDevice
from provisioning.fleet_status import join_fleet

FLEET = "city/cams"
T0 = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)


def _balena(uuid: str, *, online: bool) -> FleetDevice:
    return FleetDevice(
        uuid=uuid,
        name=uuid,
        device_type="raspberrypi5",
        online=online,
        release="abc",
        status="Idle",
        note="",
    )


def _ops(device_id: str, uuid: str | None, **kw: object) -> DeviceOut:
    return DeviceOut.model_validate({"id": device_id, "balena_uuid": uuid, "fleet": FLEET, **kw})


@pytest.mark.parametrize(
    ("balena_online", "mqtt_online", "health", "revoked", "attention"),
    [
        (True, True, "ok", False, ""),
        (True, False, "offline", False, "balena online, agent not connected"),
        (False, True, "ok", False, "balena VPN down"),
        (True, True, "camera_down", False, "camera_down"),
        (True, False, "offline", True, "revoked"),
    ],
)
def test_attention_per_state(
    balena_online: bool, mqtt_online: bool, health: str, revoked: bool, attention: str
) -> None:
    (row,) = join_fleet(
        FLEET,
        [_balena("u1", online=balena_online)],
        [_ops("pc-01", "u1", online=mqtt_online, health=health, revoked=revoked, last_event_at=T0)],
    )
    assert row.device_id == "pc-01"
    assert row.last_event_at == T0
    assert row.release == "abc"
    assert row.attention.startswith(attention)
    if not attention:
        assert row.attention == ""


def test_devices_known_to_one_side_only() -> None:
    rows = join_fleet(
        FLEET,
        [_balena("u1", online=True), _balena("stray", online=True)],
        [
            _ops("pc-01", "u1", online=True, health="ok"),
            _ops("pc-02", None),
            _ops("pc-03", "gone"),
            DeviceOut.model_validate({"id": "other-fleet", "fleet": "city/else"}),
        ],
    )
    summary = [(r.device_id, r.balena_uuid, r.attention) for r in rows]
    assert summary == [
        ("pc-01", "u1", ""),
        ("pc-02", None, "not in the balena fleet"),
        ("pc-03", None, "not in the balena fleet"),
        (None, "stray", "not provisioned in CityOps"),
    ]
