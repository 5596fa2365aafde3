"""``provision device``: API registration, MQTT credentials, balena, bundle — all or nothing.

Order matters for the rollback promise:
1. balena reachable, token accepted, fleet exists (read-only checks: nothing to undo);
2. API upsert + credentials (undo: DELETE the registration if this run created it);
3. balena device, env vars, tags, note (undo: remove the balena device if this run created it);
4. API upsert with the balena uuid, then the bundle.
"""

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import SecretStr

from provisioning.agent_config import (
    BALENA_DEVICE_TYPE,
    BALENA_ENV_KEYS,
    DeviceType,
    agent_settings,
    default_cameras,
    to_env,
    validate_agent,
)
from provisioning.api_client import OpsApiClient
from provisioning.api_models import DeviceOut, DeviceUpsert, MqttCredentials
from provisioning.balena_fleet import BalenaDevice, BalenaFleet
from provisioning.bundle import BundleContent, read_manifest, write_bundle
from provisioning.errors import InputError, ProvisioningError
from shared.clock import utcnow
from shared.ids import new_id
from shared.topics import validate_device_id

logger = logging.getLogger(__name__)

PLACEHOLDER_CREDENTIALS = MqttCredentials(
    username="placeholder", password=SecretStr("placeholder"), host="127.0.0.1", port=1883
)
"""Lets the template be validated before the API issues the real credentials."""

Step = Callable[[str], None]
"""Told the name of each step as it starts (the CLI shows it as progress)."""


@dataclass(frozen=True, slots=True)
class ProvisionRequest:
    site: str
    lat: float
    lon: float
    device_type: DeviceType
    fleet: str
    out_dir: Path
    device_id: str | None = None
    department: str | None = None
    note: str = ""
    template: dict[str, Any] | None = None
    camera_source: str | None = None
    os_version: str | None = None
    """balenaOS version for ``config.json``; None: no config.json in the bundle."""


@dataclass(frozen=True, slots=True)
class ProvisionResult:
    device: DeviceOut
    created: bool
    balena_uuid: str
    balena_created: bool
    files: list[Path]
    env_names: list[str]
    tags: dict[str, str]


@dataclass
class _Undo:
    actions: list[tuple[str, Callable[[], None]]] = field(default_factory=list)

    def push(self, what: str, action: Callable[[], None]) -> None:
        self.actions.append((what, action))

    def run(self) -> list[str]:
        """Undo newest first; returns what could not be undone."""
        failed = []
        for what, action in reversed(self.actions):
            try:
                action()
            except ProvisioningError as exc:
                logger.warning("rollback: %s failed: %s", what, exc)
                failed.append(f"{what}: {exc}")
            else:
                logger.info("rollback: %s", what)
        return failed


class RollbackIncompleteError(ProvisioningError):
    pass


def choose_device_id(request: ProvisionRequest) -> str:
    """--id, else the id of the bundle already in --out (a re-run), else site + random suffix."""
    if request.device_id:
        return validate_device_id(request.device_id)
    manifest = read_manifest(request.out_dir)
    if manifest and isinstance(manifest.get("device_id"), str):
        return validate_device_id(manifest["device_id"])
    slug = "".join(c if c.isalnum() else "-" for c in request.site.lower()).strip("-")[:50]
    return validate_device_id(f"{slug or 'cam'}-{new_id()[-6:]}")


def site_tags(request: ProvisionRequest, device_id: str) -> dict[str, str]:
    return {
        "cityops_id": device_id,
        "site": request.site,
        "lat": f"{request.lat:.6f}",
        "lon": f"{request.lon:.6f}",
    }


def provision(
    request: ProvisionRequest, api: OpsApiClient, balena: BalenaFleet, step: Step
) -> ProvisionResult:
    device_id = choose_device_id(request)
    validate_agent(_agent_for(request, device_id, PLACEHOLDER_CREDENTIALS))
    step(f"balena: checking {balena.api_endpoint} and fleet {request.fleet}")
    balena.check_reachable()
    balena.check_fleet(request.fleet)

    step(f"operations API: registering {device_id}")
    previous = api.find_device(device_id)
    if previous is not None and previous.revoked:
        raise InputError(
            f"device {device_id} is revoked; its history is kept under that id",
            hint="Provision the replacement unit with a new --id.",
        )
    upsert = DeviceUpsert(
        site=request.site,
        lat=request.lat,
        lon=request.lon,
        device_type=request.device_type,
        fleet=request.fleet,
        department=request.department,
        note=request.note,
        balena_uuid=previous.balena_uuid if previous else None,
    )
    undo = _Undo()
    created = False
    try:
        device, created = api.upsert_device(device_id, upsert)
        if created:
            undo.push(f"delete API registration {device_id}", lambda: api.delete_device(device_id))
        step("operations API: issuing MQTT credentials")
        credentials = api.create_credentials(device_id)
        agent = _agent_for(request, device_id, credentials)

        step(f"balena: registering the device in {request.fleet}")
        bdev = balena.ensure_device(
            request.fleet, upsert.balena_uuid, BALENA_DEVICE_TYPE[request.device_type]
        )
        if bdev.created:
            undo.push(f"remove balena device {bdev.uuid[:7]}", lambda: balena.remove(bdev.uuid))
        env = to_env(agent, BALENA_ENV_KEYS)
        step(f"balena: {len(env)} env vars, tags, note")
        balena.set_env(bdev.uuid, env)
        tags = site_tags(request, device_id)
        balena.set_tags(bdev.uuid, tags)
        balena.set_note(bdev.uuid, request.note or f"CityOps {device_id} at {request.site}")

        if device.balena_uuid != bdev.uuid:
            step("operations API: recording the balena uuid")
            device, _ = api.upsert_device(
                device_id, upsert.model_copy(update={"balena_uuid": bdev.uuid})
            )
        balena_config = _balena_config(request, balena, bdev)
        step(f"bundle: writing {request.out_dir}")
        files = write_bundle(
            request.out_dir,
            BundleContent(
                agent=agent,
                credentials=credentials.model_dump(mode="json")
                | {"password": credentials.password.get_secret_value()},
                manifest={
                    "device_id": device_id,
                    "site": request.site,
                    "lat": request.lat,
                    "lon": request.lon,
                    "device_type": request.device_type,
                    "fleet": request.fleet,
                    "balena_uuid": bdev.uuid,
                    "api_url": api.base_url,
                    "balena_api": balena.api_endpoint,
                    "provisioned_at": utcnow().isoformat(),
                },
                balena_config=balena_config,
            ),
        )
    except ProvisioningError as exc:
        # A device that existed before this run keeps its (updated) registration.
        failed = undo.run()
        if failed:
            raise RollbackIncompleteError(
                f"{exc}; rollback incomplete: {'; '.join(failed)}",
                hint="Remove the leftovers by hand (see the messages above).",
            ) from exc
        raise
    return ProvisionResult(
        device=device,
        created=created,
        balena_uuid=bdev.uuid,
        balena_created=bdev.created,
        files=files,
        env_names=sorted(env),
        tags=tags,
    )


def _agent_for(
    request: ProvisionRequest, device_id: str, credentials: MqttCredentials
) -> dict[str, Any]:
    return agent_settings(
        device_id=device_id,
        lat=request.lat,
        lon=request.lon,
        credentials=credentials,
        template=request.template,
        cameras=default_cameras(request.device_type, request.camera_source),
    )


def _balena_config(
    request: ProvisionRequest, balena: BalenaFleet, bdev: BalenaDevice
) -> dict[str, Any] | None:
    if request.os_version is None:
        return None
    key = bdev.api_key or balena.device_key(bdev.uuid)
    return balena.config_json(
        request.fleet,
        BALENA_DEVICE_TYPE[request.device_type],
        request.os_version,
        bdev.uuid,
        key,
    )
