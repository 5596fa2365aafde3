"""``provision fleet list/status``: balena's view of the fleet joined with CityOps' own."""

from dataclasses import dataclass
from datetime import datetime

from provisioning.api_models import DeviceOut
from provisioning.balena_fleet import FleetDevice


@dataclass(frozen=True, slots=True)
class FleetRow:
    device_id: str | None
    """CityOps id; None for a balena device CityOps does not know."""
    balena_uuid: str | None
    """None for a CityOps device of this fleet that balena does not list."""
    device_type: str
    balena_online: bool | None
    mqtt_online: bool | None
    release: str | None
    last_event_at: datetime | None
    health: str | None
    revoked: bool

    @property
    def attention(self) -> str:
        """What a technician should look at, or '' when all is well."""
        checks = (
            (self.revoked, "revoked"),
            (self.device_id is None, "not provisioned in CityOps"),
            (self.balena_uuid is None, "not in the balena fleet"),
            (
                bool(self.balena_online) and not self.mqtt_online,
                "balena online, agent not connected (check logs/credentials)",
            ),
            (bool(self.mqtt_online) and self.balena_online is False, "balena VPN down"),
            (self.health not in (None, "ok"), self.health or ""),
        )
        return next((text for hit, text in checks if hit), "")


def join_fleet(
    fleet: str, balena_devices: list[FleetDevice], cityops_devices: list[DeviceOut]
) -> list[FleetRow]:
    """One row per balena device (matched by uuid), then CityOps devices of *fleet* balena lacks."""
    by_uuid = {d.balena_uuid: d for d in cityops_devices if d.balena_uuid}
    rows = []
    for bdev in balena_devices:
        ops = by_uuid.pop(bdev.uuid, None)
        rows.append(
            FleetRow(
                device_id=ops.id if ops else None,
                balena_uuid=bdev.uuid,
                device_type=bdev.device_type or (ops.device_type if ops else ""),
                balena_online=bdev.online,
                mqtt_online=ops.online if ops else None,
                release=bdev.release,
                last_event_at=ops.last_event_at if ops else None,
                health=ops.health if ops else None,
                revoked=ops.revoked if ops else False,
            )
        )
    missing = [
        d
        for d in cityops_devices
        if d.fleet == fleet and (not d.balena_uuid or d.balena_uuid in by_uuid)
    ]
    rows.extend(
        FleetRow(
            device_id=ops.id,
            balena_uuid=None,
            device_type=ops.device_type,
            balena_online=None,
            mqtt_online=ops.online,
            release=None,
            last_event_at=ops.last_event_at,
            health=ops.health,
            revoked=ops.revoked,
        )
        for ops in missing
    )
    return sorted(rows, key=lambda r: (r.device_id is None, r.device_id or r.balena_uuid or ""))
