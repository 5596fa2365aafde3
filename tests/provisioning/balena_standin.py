"""A local stand-in of the balena API: just enough of it for the real balena-sdk 17.

It keeps fleets, devices, device env vars and tags in memory, answers the pine (OData) queries
the SDK sends, and records every call so tests can assert on the endpoints the SDK really used.
Failures are injected per (method, path prefix).
"""

import json
import re
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import unquote

from cloud.services.ports import free_port

_SINGLE_RE = re.compile(r"^/v7/(?P<res>\w+)\((?P<key>[^)]*)\)")
_EQ_RE = re.compile(r"(\w+) eq (?:'([^']*)'|(\d+))")
_DEVICE_TYPES = {
    "raspberrypi5": "aarch64",
    "raspberrypi4-64": "aarch64",
    "jetson-orin-nano-devkit-nvme": "aarch64",
    "generic-amd64": "amd64",
}


@dataclass(frozen=True)
class RecordedCall:
    method: str
    path: str
    """Path with the query string, percent-decoded."""
    body: Any
    token: str


@dataclass
class Fleet:
    id: int
    slug: str
    device_type: str = "raspberrypi5"


@dataclass
class StandinState:
    fleets: dict[int, Fleet] = field(default_factory=dict)
    devices: dict[int, dict[str, Any]] = field(default_factory=dict)
    env_vars: dict[int, dict[str, Any]] = field(default_factory=dict)
    tags: dict[int, dict[str, Any]] = field(default_factory=dict)
    calls: list[RecordedCall] = field(default_factory=list)
    failures: dict[tuple[str, str], int] = field(default_factory=dict)
    next_id: int = 100

    def new_id(self) -> int:
        self.next_id += 1
        return self.next_id


class BalenaStandin:
    """Run with ``start()``; ``url`` is what goes into ``balena.cfg`` as ``api_endpoint``."""

    def __init__(self, token: str = "standin-token") -> None:  # noqa: S107 - test token
        self.token = token
        self.state = StandinState()
        self.lock = threading.Lock()
        self.port = free_port()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/"

    def add_fleet(self, slug: str, device_type: str = "raspberrypi5") -> Fleet:
        fleet = Fleet(id=self.state.new_id(), slug=slug, device_type=device_type)
        self.state.fleets[fleet.id] = fleet
        return fleet

    def fail(self, method: str, path_prefix: str, status: int = 500) -> None:
        """Answer *status* to every ``method`` call whose path starts with *path_prefix*."""
        self.state.failures[(method, path_prefix)] = status

    def device_by_uuid(self, uuid: str) -> dict[str, Any] | None:
        return next((d for d in self.state.devices.values() if d["uuid"] == uuid), None)

    def env_of(self, uuid: str) -> dict[str, str]:
        dev = self.device_by_uuid(uuid)
        if dev is None:
            return {}
        return {
            e["name"]: e["value"] for e in self.state.env_vars.values() if e["device"] == dev["id"]
        }

    def tags_of(self, uuid: str) -> dict[str, str]:
        dev = self.device_by_uuid(uuid)
        if dev is None:
            return {}
        return {
            t["tag_key"]: t["value"] for t in self.state.tags.values() if t["device"] == dev["id"]
        }

    def endpoints(self) -> list[str]:
        """``METHOD /path`` of every call, query strings cut off."""
        return [f"{c.method} {c.path.split('?')[0]}" for c in self.state.calls]

    def start(self) -> None:
        standin = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
                return

            def _serve(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length) if length else b""
                body = json.loads(raw) if raw else None
                token = (self.headers.get("Authorization") or "").removeprefix("Bearer ")
                path = unquote(self.path)
                with standin.lock:
                    standin.state.calls.append(RecordedCall(self.command, path, body, token))
                    status, payload = standin.handle(self.command, path, body, token)
                data = b"" if payload is None else json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = do_PATCH = do_DELETE = _serve  # noqa: N815

        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    # ------------------------------------------------------------------------------ routing

    def handle(  # noqa: PLR0911, PLR0912
        self, method: str, path: str, body: Any, token: str
    ) -> tuple[int, Any]:
        for (f_method, prefix), status in self.state.failures.items():
            if method == f_method and path.startswith(prefix):
                return status, {"error": "injected failure"}
        bare = path.split("?", maxsplit=1)[0]
        if bare == "/ping":
            return 200, "OK"
        if bare == "/device/register":
            return self._register(body, token)
        if token != self.token:
            return 401, {"error": "Unauthorized"}
        if bare == "/actor/v1/whoami":
            return 200, {
                "id": 1,
                "actorType": "user",
                "actorTypeId": 7,
                "username": "technician",
                "email": "tech@example.org",
            }
        if bare == "/api-key/v1/":
            return 200, f"prov-{body['actorTypeId']}-{self.state.new_id()}"
        if bare.startswith("/api-key/device/"):
            return 200, f"devkey-{self.state.new_id()}"
        if bare == "/download-config":
            fleet = self.state.fleets.get(int(body["appId"]))
            if fleet is None:
                return 404, {"error": "not found"}
            return 200, {
                "applicationId": fleet.id,
                "deviceType": body.get("deviceType", fleet.device_type),
                "userId": 7,
                "apiEndpoint": self.url.rstrip("/"),
                "appUpdatePollInterval": 900000,
                "version": body["version"],
            }
        single = _SINGLE_RE.match(path)
        resource = single["res"] if single else bare.removeprefix("/v7/")
        if resource == "application":
            return self._applications(path, single)
        if resource == "device_type":
            return self._device_types(path)
        if resource == "device":
            return self._devices(method, path, body, single)
        if resource == "device_environment_variable":
            return self._child(self.state.env_vars, "name", method, path, body)
        if resource == "device_tag":
            return self._child(self.state.tags, "tag_key", method, path, body)
        return 404, {"error": f"stand-in does not know {method} {bare}"}

    def _applications(self, path: str, single: re.Match[str] | None) -> tuple[int, Any]:
        if single:
            fleet = self.state.fleets.get(int(single["key"]))
            found = [fleet] if fleet else []
        else:
            wanted = {text or number for _, text, number in _EQ_RE.findall(path)}
            found = [f for f in self.state.fleets.values() if f.slug in wanted]
        return 200, {"d": [self._app_json(f) for f in found]}

    @staticmethod
    def _app_json(fleet: Fleet) -> dict[str, Any]:
        arch = _DEVICE_TYPES.get(fleet.device_type, "aarch64")
        return {
            "id": fleet.id,
            "slug": fleet.slug,
            "app_name": fleet.slug.split("/")[-1],
            "is_for__device_type": [
                {"slug": fleet.device_type, "is_of__cpu_architecture": [{"slug": arch}]}
            ],
        }

    @staticmethod
    def _device_types(path: str) -> tuple[int, Any]:
        match = re.search(r"is_referenced_by__alias eq '([^']+)'", path)
        slug = match[1] if match else ""
        if slug not in _DEVICE_TYPES:
            return 200, {"d": []}
        return 200, {
            "d": [{"slug": slug, "is_of__cpu_architecture": [{"slug": _DEVICE_TYPES[slug]}]}]
        }

    def _register(self, body: Any, token: str) -> tuple[int, Any]:
        if not token.startswith("prov-"):
            return 401, {"error": "not a provisioning key"}
        fleet = self.state.fleets.get(int(body["application"]))
        if fleet is None:
            return 404, {"error": "fleet not found"}
        if self.device_by_uuid(body["uuid"]) is not None:
            return 409, {"error": "uuid must be unique"}
        dev_id = self.state.new_id()
        self.state.devices[dev_id] = {
            "id": dev_id,
            "uuid": body["uuid"],
            "device_name": f"standin-{body['uuid'][:7]}",
            "belongs_to__application": {"__id": fleet.id},
            "is_of__device_type": {"__id": body["device_type"]},
            "device_type": body["device_type"],
            "is_online": False,
            "note": None,
            "is_running__release": None,
            "os_version": None,
            "status": "Inactive",
        }
        return 201, {"id": dev_id, "uuid": body["uuid"], "api_key": f"devkey-{dev_id}"}

    def _select_devices(self, path: str, single: re.Match[str] | None) -> list[dict[str, Any]]:
        devices = list(self.state.devices.values())
        if single:
            key = single["key"]
            if key.startswith("uuid="):
                return [d for d in devices if d["uuid"] == key.removeprefix("uuid=").strip("'")]
            return [d for d in devices if d["id"] == int(key)]
        for name, text, number in _EQ_RE.findall(path.partition("$filter=")[2]):
            if name == "uuid":
                devices = [d for d in devices if d["uuid"] == text]
            elif name == "id":
                devices = [d for d in devices if d["id"] == int(number)]
            elif name == "belongs_to__application":
                devices = [
                    d for d in devices if d["belongs_to__application"]["__id"] == int(number)
                ]
        return devices

    def _devices(
        self, method: str, path: str, body: Any, single: re.Match[str] | None
    ) -> tuple[int, Any]:
        devices = self._select_devices(path, single)
        if method == "GET":
            return 200, {"d": devices}
        if method == "PATCH":
            for dev in devices:
                dev.update(body)
            return 200, None
        if method == "DELETE":
            for dev in devices:
                del self.state.devices[dev["id"]]
                for table in (self.state.env_vars, self.state.tags):
                    for key in [k for k, v in table.items() if v["device"] == dev["id"]]:
                        del table[key]
            return 200, None
        return 405, {"error": method}

    def _child(  # noqa: PLR0911
        self, table: dict[int, dict[str, Any]], key: str, method: str, path: str, body: Any
    ) -> tuple[int, Any]:
        filters = {m[0]: m[1] or m[2] for m in _EQ_RE.findall(path)}
        if method == "POST":
            device = int(body["device"])
            if device not in self.state.devices:
                return 400, {"error": "device not found"}
            if any(r["device"] == device and r[key] == body[key] for r in table.values()):
                return 409, "Unique key constraint violated"
            row_id = self.state.new_id()
            table[row_id] = {"id": row_id, **body}
            return 201, table[row_id]
        rows = [
            r
            for r in table.values()
            if ("device" not in filters or r["device"] == int(filters["device"]))
            and (key not in filters or r[key] == filters[key])
        ]
        if method == "GET":
            return 200, {"d": sorted(rows, key=lambda r: str(r[key]))}
        if method == "PATCH":
            for row in rows:
                row.update(body)
            return 200, None
        if method == "DELETE":
            for row in rows:
                del table[row["id"]]
            return 200, None
        return 405, {"error": method}
