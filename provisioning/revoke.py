"""``provision revoke``: the broker refuses the unit; its history stays; balena is told."""

from collections.abc import Callable
from dataclasses import dataclass

from provisioning.api_client import OpsApiClient
from provisioning.balena_fleet import BalenaFleet
from provisioning.errors import BalenaError
from shared.clock import utcnow

PASSWORD_ENV = "CITYOPS_EDGE_UPLINK__PASSWORD"  # noqa: S105 - a variable name, not a secret


@dataclass(frozen=True, slots=True)
class RevokeResult:
    device_id: str
    balena_uuid: str | None
    balena_action: str


class BalenaMarkError(BalenaError):
    hint = "The device IS revoked in CityOps; mark or remove it in balena by hand."


def revoke_device(
    api: OpsApiClient,
    balena: BalenaFleet | None,
    device_id: str,
    *,
    remove_from_balena: bool,
    step: Callable[[str], None],
) -> RevokeResult:
    """Revoke in the API first (security first), then mark or remove the balena device."""
    step(f"operations API: revoking {device_id}")
    device = api.revoke(device_id)
    uuid = device.balena_uuid
    if balena is None or uuid is None:
        return RevokeResult(device_id, uuid, "skipped" if balena is None else "no balena device")
    try:
        if not balena.find_device(uuid):
            return RevokeResult(device_id, uuid, f"{uuid[:7]} is not in balena any more")
        if remove_from_balena:
            step(f"balena: removing {uuid[:7]}")
            balena.remove(uuid)
            return RevokeResult(device_id, uuid, f"removed {uuid[:7]}")
        step(f"balena: marking {uuid[:7]} revoked")
        stamp = utcnow().isoformat(timespec="seconds")
        balena.set_tags(uuid, {"cityops_revoked": stamp})
        balena.remove_env(uuid, PASSWORD_ENV)
        balena.set_note(uuid, f"REVOKED in CityOps at {stamp} ({device_id})")
    except BalenaError as exc:
        raise BalenaMarkError(f"{device_id} revoked in CityOps, but {exc}") from exc
    return RevokeResult(device_id, uuid, f"tagged cityops_revoked on {uuid[:7]}, password removed")
