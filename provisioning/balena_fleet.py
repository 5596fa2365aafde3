"""The balena side of provisioning, through the real balena-sdk.

Every SDK failure is turned into a ``BalenaError`` that says what failed. The SDK reports a
connection failure as ``NotLoggedIn``, so reachability is checked first with ``GET /ping``.
"""

import logging
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any, TypeVar

import httpx

from provisioning.balena_config import read_api_endpoint
from provisioning.errors import (
    BalenaAuthError,
    BalenaError,
    BalenaUnreachableError,
    FleetNotFoundError,
    InputError,
)

logger = logging.getLogger(__name__)
T = TypeVar("T")
HTTP_UNAUTHORIZED = 401
HTTP_FORBIDDEN = 403


@dataclass(frozen=True, slots=True)
class BalenaDevice:
    uuid: str
    created: bool
    """True when this call registered it (a rollback must then remove it)."""
    api_key: str | None
    """Device API key, only known right after registration (goes into ``config.json``)."""


@dataclass(frozen=True, slots=True)
class FleetDevice:
    uuid: str
    name: str
    device_type: str
    online: bool
    release: str | None
    status: str
    note: str


def _release_of(raw: Mapping[str, Any]) -> str | None:
    release = raw.get("is_running__release")
    if isinstance(release, list) and release and isinstance(release[0], Mapping):
        commit = release[0].get("commit") or release[0].get("semver")
        return str(commit) if commit else None
    return None


def _device_type_of(raw: Mapping[str, Any]) -> str:
    kind = raw.get("is_of__device_type")
    if isinstance(kind, list) and kind and isinstance(kind[0], Mapping):
        return str(kind[0].get("slug", ""))
    return str(raw.get("device_type") or "")


class BalenaFleet:
    """One fleet (``org/fleet`` slug) seen through the SDK configured by ``data_dir``."""

    def __init__(self, data_dir: Path, token: str | None = None) -> None:
        cfg_endpoint = read_api_endpoint(data_dir)
        if cfg_endpoint is None:
            raise InputError(
                f"{data_dir / 'balena.cfg'}: missing; create it with "
                "`cityops provision balena-config --data-dir ...`"
            )
        from balena import Balena

        self._sdk = Balena({"data_directory": str(data_dir)})
        self.api_endpoint = str(self._sdk.settings.get("api_endpoint"))
        if self.api_endpoint != cfg_endpoint:
            # The SDK rewrote an incomplete file with balenaCloud defaults.
            raise InputError(
                f"{data_dir / 'balena.cfg'}: api_endpoint {cfg_endpoint!r} was not accepted "
                f"by the SDK (it uses {self.api_endpoint!r}); rewrite the file with "
                "`cityops provision balena-config`"
            )
        token = token or os.environ.get("BALENA_API_KEY")
        if token:
            self._sdk.auth.login_with_token(token)

    def _call(self, what: str, action: Callable[[], T]) -> T:
        from balena import exceptions as bx

        try:
            return action()
        except bx.ApplicationNotFound as exc:
            raise FleetNotFoundError(f"balena: {what}: fleet not found: {exc}") from exc
        except (bx.NotLoggedIn, bx.Unauthorized, bx.MalformedToken) as exc:
            raise BalenaAuthError(f"balena: {what}: not logged in or token refused") from exc
        except bx.RequestError as exc:
            status = getattr(exc, "status_code", None)
            if status in (HTTP_UNAUTHORIZED, HTTP_FORBIDDEN):
                raise BalenaAuthError(f"balena: {what}: token refused ({status})") from exc
            raise BalenaError(f"balena: {what}: HTTP {status}: {exc}") from exc
        except bx.BalenaException as exc:
            raise BalenaError(f"balena: {what}: {type(exc).__name__}: {exc}") from exc

    def check_reachable(self, timeout: float = 5.0) -> None:
        try:
            httpx.get(self.api_endpoint + "ping", timeout=timeout)
        except httpx.TransportError as exc:
            raise BalenaUnreachableError(
                f"balena API at {self.api_endpoint} unreachable: {type(exc).__name__}"
            ) from exc

    def check_fleet(self, fleet: str) -> int:
        """The fleet's id; raises ``FleetNotFoundError`` / ``BalenaAuthError``."""
        app = self._call(
            f"look up fleet {fleet!r}",
            lambda: self._sdk.models.application.get(fleet, {"$select": "id"}),
        )
        return int(app["id"])

    def find_device(self, uuid: str) -> bool:
        return bool(self._call("look up device", lambda: self._sdk.models.device.has(uuid)))

    def ensure_device(self, fleet: str, uuid: str | None, device_type: str) -> BalenaDevice:
        """Pre-register *uuid* (a new one when None) in *fleet*, unless it already exists."""
        if uuid and self.find_device(uuid):
            return BalenaDevice(uuid=uuid, created=False, api_key=None)
        new_uuid = uuid or str(self._sdk.models.device.generate_uuid())
        answer = self._call(
            f"register device in {fleet!r}",
            lambda: self._sdk.models.device.register(fleet, new_uuid, device_type),
        )
        if not isinstance(answer, Mapping) or answer.get("uuid") != new_uuid:
            raise BalenaError(f"balena: register device in {fleet!r}: unexpected answer")
        return BalenaDevice(uuid=new_uuid, created=True, api_key=str(answer.get("api_key")))

    def set_env(self, uuid: str, env: Mapping[str, str]) -> None:
        env_vars = self._sdk.models.device.env_var
        for name, value in env.items():
            self._call(f"set env var {name}", partial(env_vars.set, uuid, name, value))

    def remove_env(self, uuid: str, name: str) -> None:
        env_vars = self._sdk.models.device.env_var
        self._call(f"remove env var {name}", partial(env_vars.remove, uuid, name))

    def set_tags(self, uuid: str, tags: Mapping[str, str]) -> None:
        tags_model = self._sdk.models.device.tags
        for key, value in tags.items():
            self._call(f"set tag {key}", partial(tags_model.set, uuid, key, value))

    def set_note(self, uuid: str, note: str) -> None:
        self._call("set note", lambda: self._sdk.models.device.set_note(uuid, note))

    def remove(self, uuid: str) -> None:
        self._call("remove device", lambda: self._sdk.models.device.remove(uuid))

    def device_key(self, uuid: str) -> str:
        """A fresh device API key (for ``config.json`` of an already registered device)."""
        key = self._call(
            "generate device key", lambda: self._sdk.models.device.generate_device_key(uuid)
        )
        return str(key)

    def config_json(
        self, fleet: str, device_type: str, os_version: str, uuid: str, api_key: str
    ) -> dict[str, Any]:
        """The fleet's ``config.json`` for *os_version*, bound to this device.

        The same merge as ``balena config generate --device``: fleet config + uuid + device key.
        """
        config = self._call(
            "download config.json",
            lambda: self._sdk.models.os.get_config(
                fleet, {"version": os_version, "deviceType": device_type}
            ),
        )
        if not isinstance(config, dict):
            raise BalenaError("balena: download config.json: unexpected answer")
        return {**config, "uuid": uuid, "deviceApiKey": api_key, "deviceType": device_type}

    def list_devices(self, fleet: str) -> list[FleetDevice]:
        options = {
            "$select": ["uuid", "device_name", "is_online", "status", "note"],
            "$expand": {
                "is_running__release": {"$select": ["commit", "semver"]},
                "is_of__device_type": {"$select": "slug"},
            },
        }
        raw = self._call(
            f"list devices of {fleet!r}",
            lambda: self._sdk.models.device.get_all_by_application(fleet, options),
        )
        return [
            FleetDevice(
                uuid=str(d["uuid"]),
                name=str(d.get("device_name") or ""),
                device_type=_device_type_of(d),
                online=bool(d.get("is_online")),
                release=_release_of(d),
                status=str(d.get("status") or ""),
                note=str(d.get("note") or ""),
            )
            for d in raw
        ]
