"""httpx client of the operations API, turning problem+json answers into ``ApiError``s."""

from collections.abc import Mapping
from typing import Any, Self, TypeVar

import httpx
from pydantic import BaseModel, ValidationError

from provisioning.api_models import (
    CommandRequest,
    ConfigAccepted,
    DeviceOut,
    DevicePage,
    DeviceUpsert,
    MqttCredentials,
)
from provisioning.errors import (
    ApiError,
    ApiKeyRefusedError,
    ApiNotFoundError,
    ApiUnreachableError,
    InputError,
)
from shared.codec import decode
from shared.commands import CommandAck
from shared.config import DeviceConfig
from shared.errors import ContractError
from shared.topics import validate_device_id

M = TypeVar("M", bound=BaseModel)
HTTP_UNAUTHORIZED = 401
HTTP_FORBIDDEN = 403
HTTP_NOT_FOUND = 404
HTTP_CREATED = 201
HTTP_ACCEPTED = 202
HTTP_ERRORS = 400


def _problem(response: httpx.Response) -> ApiError:
    """Map an error response (``application/problem+json`` or anything else) to an ApiError."""
    try:
        body: Any = response.json()
    except ValueError:
        body = {}
    if not isinstance(body, Mapping):
        body = {}
    detail = str(body.get("detail") or body.get("title") or response.reason_phrase)
    field: str | None = None
    errors = body.get("errors")
    if isinstance(errors, list) and errors and isinstance(errors[0], Mapping):
        field = str(errors[0].get("field") or "") or None
        detail = f"{detail}: {field}: {errors[0].get('message', '')}" if field else detail
    where = f"{response.request.method} {response.request.url.path}"
    message = f"{where} → {response.status_code} {detail}"
    if response.status_code in (HTTP_UNAUTHORIZED, HTTP_FORBIDDEN):
        return ApiKeyRefusedError(message, status=response.status_code, field=field)
    if response.status_code == HTTP_NOT_FOUND:
        return ApiNotFoundError(message, status=response.status_code, field=field)
    return ApiError(message, status=response.status_code, field=field)


def _device_id(device_id: str) -> str:
    """*device_id* if it is a valid id, else an ``InputError`` saying what a valid one is."""
    try:
        return validate_device_id(device_id)
    except ContractError as exc:
        hint = "Device ids are like pc-01: a-z, 0-9, '-' and '_'."
        raise InputError(str(exc), hint=hint) from exc


class OpsApiClient:
    """Synchronous client; one per CLI command (``with OpsApiClient(...) as api:``)."""

    def __init__(
        self,
        base_url: str,
        api_key: str,
        *,
        timeout: float = 10.0,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self._http = httpx.Client(
            base_url=self.base_url + "/api/v1",
            headers={"Authorization": f"Bearer {api_key}", "Accept": "application/json"},
            timeout=timeout,
            transport=transport,
        )

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    def _send(
        self,
        method: str,
        path: str,
        *,
        body: BaseModel | None = None,
        params: Mapping[str, str | int | float] | None = None,
        timeout: float | None = None,
    ) -> httpx.Response:
        content = None if body is None else body.model_dump_json(exclude_none=False)
        headers = {"Content-Type": "application/json"} if content is not None else None
        try:
            response = self._http.request(
                method,
                path,
                content=content,
                headers=headers,
                params=params,
                timeout=timeout if timeout is not None else httpx.USE_CLIENT_DEFAULT,
            )
        except httpx.TransportError as exc:
            raise ApiUnreachableError(
                f"operations API at {self.base_url} unreachable: {type(exc).__name__}: {exc}"
            ) from exc
        if response.status_code >= HTTP_ERRORS:
            raise _problem(response)
        return response

    @staticmethod
    def _parse(model: type[M], response: httpx.Response) -> M:
        try:
            return model.model_validate_json(response.content)
        except ValidationError as exc:
            err = exc.errors(include_url=False)[0]
            field = ".".join(str(p) for p in err["loc"])
            raise ApiError(
                f"unexpected answer from {response.request.url.path}: {field}: {err['msg']}",
                status=response.status_code,
                field=field,
            ) from exc

    # ------------------------------------------------------------------------------ devices

    def upsert_device(self, device_id: str, upsert: DeviceUpsert) -> tuple[DeviceOut, bool]:
        """(device, created): PUT is idempotent, 201 on create and 200 on update."""
        response = self._send("PUT", f"/devices/{_device_id(device_id)}", body=upsert)
        return self._parse(DeviceOut, response), response.status_code == HTTP_CREATED

    def get_device(self, device_id: str) -> DeviceOut:
        return self._parse(DeviceOut, self._send("GET", f"/devices/{_device_id(device_id)}"))

    def find_device(self, device_id: str) -> DeviceOut | None:
        try:
            return self.get_device(device_id)
        except ApiNotFoundError:
            return None

    def list_devices(self) -> list[DeviceOut]:
        items: list[DeviceOut] = []
        cursor: str | None = None
        while True:
            params = {"cursor": cursor} if cursor else None
            page = self._parse(DevicePage, self._send("GET", "/devices", params=params))
            items.extend(page.items)
            if not page.next_cursor or page.next_cursor == cursor:
                return items
            cursor = page.next_cursor

    def create_credentials(self, device_id: str) -> MqttCredentials:
        path = f"/devices/{_device_id(device_id)}/credentials"
        return self._parse(MqttCredentials, self._send("POST", path))

    def revoke(self, device_id: str) -> DeviceOut:
        path = f"/devices/{_device_id(device_id)}/revoke"
        return self._parse(DeviceOut, self._send("POST", path))

    def delete_device(self, device_id: str) -> None:
        self._send("DELETE", f"/devices/{_device_id(device_id)}")

    def put_config(self, config: DeviceConfig) -> int:
        path = f"/devices/{_device_id(config.device_id)}/config"
        return self._parse(ConfigAccepted, self._send("PUT", path, body=config)).version

    def send_command(
        self, device_id: str, command: CommandRequest, *, wait: float
    ) -> CommandAck | str:
        """The device's ``CommandAck`` if it answered within *wait* s, else the command id."""
        response = self._send(
            "POST",
            f"/devices/{_device_id(device_id)}/commands",
            body=command,
            params={"wait": wait},
            timeout=wait + 10.0,
        )
        if response.status_code == HTTP_ACCEPTED:
            return str(response.json()["command_id"])
        try:
            return decode(CommandAck, response.content)
        except ContractError as exc:
            raise ApiError(
                f"device {device_id} answered with an invalid acknowledgement: {exc}",
                status=response.status_code,
                field=exc.field,
            ) from exc
