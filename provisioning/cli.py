"""``cityops provision``: the technician's commands (issue #7)."""

import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, NoReturn

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from provisioning.errors import InputError, ProvisioningError
from shared.errors import ContractError

if TYPE_CHECKING:
    from provisioning.api_client import OpsApiClient
    from provisioning.balena_fleet import BalenaFleet


class DeviceTypeChoice(StrEnum):
    RASPBERRYPI5 = "raspberrypi5"
    RASPBERRYPI4_64 = "raspberrypi4-64"
    JETSON_ORIN_NANO = "jetson-orin-nano"


app = typer.Typer(
    help=(
        "Provision, verify and revoke devices; draw zones; balena fleet status.\n\n"
        "Example: cityops provision device --site praca-comercio --lat 38.7075 --lon -9.1365 "
        "--type raspberrypi5 --fleet city/cityops-cameras --out ./bundle"
    ),
    no_args_is_help=True,
)
fleet_app = typer.Typer(
    help="The balena fleet joined with CityOps status.\n\n"
    "Example: cityops provision fleet status --fleet city/cityops-cameras",
    no_args_is_help=True,
)
app.add_typer(fleet_app, name="fleet")

console = Console(stderr=True, highlight=False, soft_wrap=True)
out = Console(highlight=False, soft_wrap=True)

ApiUrl = Annotated[
    str,
    typer.Option(
        "--api", envvar="CITYOPS_API_URL", help="Operations API base URL (env CITYOPS_API_URL)."
    ),
]
ApiKey = Annotated[
    str,
    typer.Option(
        "--api-key",
        envvar="CITYOPS_API_KEY",
        help="Technician API key (env CITYOPS_API_KEY).",
        show_default=False,
    ),
]
BalenaDir = Annotated[
    Path,
    typer.Option(
        "--balena-data-dir",
        envvar="CITYOPS_BALENA_DATA_DIR",
        help="Folder with balena.cfg (see `provision balena-config`).",
    ),
]
BalenaToken = Annotated[
    str | None,
    typer.Option(
        "--balena-token",
        envvar="BALENA_API_KEY",
        help="balena API key (env BALENA_API_KEY).",
        show_default=False,
    ),
]
DEFAULT_API = "http://127.0.0.1:8080"
"""Where `cityops cloud serve` listens by default (api.port)."""
DEFAULT_BALENA_DIR = Path.home() / ".balena"
DEVICE_HELP = (
    "Register a unit with the operations API and balena, and write its bundle.\n\n"
    "Safe to run again: the same device is updated and its MQTT password rotated. "
    "If a step fails, what this run created is removed again.\n\n"
    "Example: cityops provision device --site praca-comercio --lat 38.7075 --lon -9.1365 "
    "--type raspberrypi5 --fleet city/cameras --out ./bundle-pc01"
)
ZONES_HELP = (
    "Draw the zones on the device's real frame (its snapshot, or --snapshot); "
    "with --push, make them its config.\n\n"
    "Example: cityops provision zones pc-01 --snapshot frame.jpg --zones zones.yaml "
    "--preview check.png --push"
)
Fleet = Annotated[str, typer.Option("--fleet", help="balena fleet slug, e.g. city/cameras.")]


def _fail(exc: ProvisioningError) -> NoReturn:
    console.print(f"[bold red]✗ {escape(str(exc))}[/]")
    if exc.hint:
        console.print(f"  [yellow]{escape(exc.hint)}[/]")
    raise typer.Exit(1)


@contextmanager
def _errors() -> Iterator[None]:
    try:
        yield
    except ProvisioningError as exc:
        _fail(exc)
    except ContractError as exc:  # an id or topic that is not a CityOps one, e.g. "Cam 01"
        _fail(InputError(str(exc), hint="Device ids are like pc-01: a-z, 0-9, '-' and '_'."))


class _Steps:
    """Progress for a multi-step command: a spinner on the current step, ✓ on finished ones."""

    def __init__(self) -> None:
        self._current: str | None = None
        self._status = console.status("")

    def __enter__(self) -> Callable[[str], None]:
        self._status.__enter__()
        return self.step

    def step(self, name: str) -> None:
        self._done()
        self._current = name
        self._status.update(f"{name} …")

    def _done(self) -> None:
        if self._current is not None:
            console.print(f"[green]✓[/] {self._current}")
        self._current = None

    def __exit__(self, exc_type: object, *_: object) -> None:
        self._status.__exit__(None, None, None)
        if exc_type is None:
            self._done()
        elif self._current is not None:
            console.print(f"[red]✗[/] {self._current}")


def _api(url: str, key: str) -> "OpsApiClient":
    from provisioning.api_client import OpsApiClient

    if not key:
        raise InputError("--api-key: missing (or set CITYOPS_API_KEY)")
    return OpsApiClient(url, key)


def _balena(data_dir: Path, token: str | None) -> "BalenaFleet":
    from provisioning.balena_fleet import BalenaFleet

    return BalenaFleet(data_dir, token)


@app.command("device", help=DEVICE_HELP)
def device(
    *,
    site: Annotated[str, typer.Option(help="Site name, e.g. praca-comercio.")],
    lat: Annotated[float, typer.Option(help="Latitude (WGS84).", min=-90, max=90)],
    lon: Annotated[float, typer.Option(help="Longitude (WGS84).", min=-180, max=180)],
    device_type: Annotated[DeviceTypeChoice, typer.Option("--type", help="balena device type.")],
    fleet: Fleet,
    out_dir: Annotated[Path, typer.Option("--out", help="Bundle folder to write (0700).")],
    device_id: Annotated[
        str | None,
        typer.Option("--id", help="Device id; default: the bundle's, else <site>-<random>."),
    ] = None,
    department: Annotated[str | None, typer.Option(help="Owning municipal service.")] = None,
    note: Annotated[str, typer.Option(help="Free text, e.g. the pole number.")] = "",
    template: Annotated[
        Path | None,
        typer.Option(help="Agent YAML to start from (cameras, detector, zones)."),
    ] = None,
    camera_source: Annotated[
        str | None,
        typer.Option(help="Camera source for cam0 (URL, file, index); default: board camera."),
    ] = None,
    os_version: Annotated[
        str | None,
        typer.Option(help="balenaOS version: also write the device's balena config.json."),
    ] = None,
    api_url: ApiUrl = DEFAULT_API,
    api_key: ApiKey = "",
    balena_dir: BalenaDir = DEFAULT_BALENA_DIR,
    balena_token: BalenaToken = None,
) -> None:
    """Register a unit with the operations API and balena, and write its bundle."""
    from provisioning.agent_config import load_template
    from provisioning.service import ProvisionRequest, provision

    with _errors():
        request = ProvisionRequest(
            site=site,
            lat=lat,
            lon=lon,
            device_type=device_type.value,
            fleet=fleet,
            out_dir=out_dir,
            device_id=device_id,
            department=department,
            note=note,
            template=load_template(template) if template else None,
            camera_source=camera_source,
            os_version=os_version,
        )
        balena = _balena(balena_dir, balena_token)
        with _api(api_url, api_key) as api, _Steps() as step:
            result = provision(request, api, balena, step)
    verb = "registered" if result.created else "updated"
    out.print(f"[bold green]Device {result.device.id} {verb}[/] at {result.device.site}")
    out.print(f"  balena uuid {result.balena_uuid} ({'new' if result.balena_created else 'kept'})")
    out.print(f"  balena env: {', '.join(result.env_names)}")
    out.print(f"  balena tags: {json.dumps(result.tags)}")
    for path in result.files:
        out.print(f"  wrote {path}")
    out.print(
        f"Next: copy {out_dir} to the unit, then `cityops provision verify {result.device.id}`"
    )


@app.command("verify")
def verify(
    *,
    device_id: Annotated[str, typer.Argument(help="Device id.")],
    timeout: Annotated[float, typer.Option(help="Seconds to wait for status+telemetry.")] = 60.0,
    snapshot_wait: Annotated[float, typer.Option(help="Seconds to wait for the snapshot.")] = 15.0,
    camera: Annotated[str | None, typer.Option(help="Camera id for the snapshot.")] = None,
    save_snapshot: Annotated[
        Path | None, typer.Option(help="Write the device's snapshot JPEG here.")
    ] = None,
    api_url: ApiUrl = DEFAULT_API,
    api_key: ApiKey = "",
) -> None:
    """Wait for the unit's first status and telemetry, ask it for a frame; exit 0 only if all pass.

    Example: cityops provision verify pc-01 --save-snapshot pc-01.jpg
    """
    from provisioning.verify import verify_device

    waiting = console.status(f"waiting for {device_id} (up to {timeout:g} s) …")
    with _errors(), _api(api_url, api_key) as api, waiting:
        report = verify_device(
            api, device_id, timeout_s=timeout, snapshot_wait_s=snapshot_wait, camera_id=camera
        )
    for check in report.checks:
        mark = "[green]PASS[/]" if check.ok else "[red]FAIL[/]"
        out.print(f"{mark} {check.name}: {check.detail}")
    if save_snapshot is not None and report.snapshot_jpeg is not None:
        save_snapshot.write_bytes(report.snapshot_jpeg)
        out.print(f"snapshot saved to {save_snapshot}")
    if not report.ok:
        out.print(f"[bold red]{device_id}: verification failed[/]")
        raise typer.Exit(1)
    out.print(f"[bold green]{device_id}: all checks passed[/]")


@app.command("zones", help=ZONES_HELP)
def zones(
    *,
    device_id: Annotated[str, typer.Argument(help="Device id.")],
    zones_file: Annotated[Path, typer.Option("--zones", help="zones.yaml (cameras → zones).")],
    preview: Annotated[Path, typer.Option(help="PNG to write with the zones drawn.")],
    snapshot: Annotated[
        Path | None,
        typer.Option(help="Frame to draw on; default: ask the device for a snapshot."),
    ] = None,
    camera: Annotated[str | None, typer.Option(help="Camera id; default: the first.")] = None,
    push: Annotated[bool, typer.Option(help="Also send the zones as the device's config.")] = False,
    api_url: ApiUrl = DEFAULT_API,
    api_key: ApiKey = "",
) -> None:
    """Draw the zones on the device's real frame; with --push, make them its config."""
    from provisioning.api_models import CommandRequest
    from provisioning.zones import decode_jpeg, load_zones, read_frame, render_preview, write_png

    with _errors():
        spec = load_zones(zones_file)
        cam = spec.camera(camera)
        if snapshot is not None:
            frame = read_frame(snapshot)
        else:
            with _api(api_url, api_key) as api:
                answer = api.send_command(
                    device_id, CommandRequest(name="snapshot", camera_id=cam.id), wait=15.0
                )
            image = None
            if not isinstance(answer, str) and answer.snapshot is not None:
                image = decode_jpeg(answer.snapshot.data)
            if image is None:
                raise InputError(f"{device_id}: no snapshot from the device; give --snapshot")
            frame = image
        write_png(preview, render_preview(frame, cam, f"{device_id} / {cam.id}"))
        out.print(f"preview written to {preview} ({len(cam.zones)} zones, {len(cam.lines)} lines)")
        if push:
            from shared.events import Location

            with _api(api_url, api_key) as api:
                dev = api.get_device(device_id)
                where = (
                    Location(lat=dev.lat, lon=dev.lon)
                    if dev.lat is not None and dev.lon is not None
                    else None
                )
                version = api.put_config(spec.device_config(device_id, where))
            out.print(f"[green]config version {version} sent to {device_id}[/]")


@app.command("debug-view")
def debug_view(
    *,
    device_id: Annotated[str, typer.Argument(help="Device id.")],
    out_file: Annotated[Path, typer.Option("--out", help="JPEG to write the debug view to.")],
    camera: Annotated[str | None, typer.Option(help="Camera id; default: the first.")] = None,
    wait: Annotated[float, typer.Option(help="Seconds to wait for the unit's answer.")] = 15.0,
    api_url: ApiUrl = DEFAULT_API,
    api_key: ApiKey = "",
) -> None:
    """Ask a running unit what it sees, to tune zones and thresholds.

    The unit answers with its current frame, faces pixelated, with boxes, track ids, zones,
    lines, dwell timers and the motion mask drawn on it.

    Example: cityops provision debug-view pc-01 --out pc-01-debug.jpg
    """
    from provisioning.api_models import CommandRequest

    request = CommandRequest(name="debug_snapshot", camera_id=camera)
    with _errors(), _api(api_url, api_key) as api:
        answer = api.send_command(device_id, request, wait=wait)
        if isinstance(answer, str):
            raise InputError(
                f"{device_id} did not answer within {wait:g} s (command {answer})",
                hint="Is the unit online? `cityops provision verify` checks it; or wait longer.",
            )
        if not answer.ok or answer.snapshot is None:
            raise InputError(f"{device_id} refused the debug view: {answer.message}")
    out_file.write_bytes(answer.snapshot.data)
    size = f"{answer.snapshot.width}x{answer.snapshot.height}"
    out.print(f"debug view of {device_id} written to {out_file} ({size} JPEG)")


@app.command("revoke")
def revoke(
    *,
    device_id: Annotated[str, typer.Argument(help="Device id.")],
    remove_from_balena: Annotated[
        bool, typer.Option(help="Delete the balena device instead of marking it.")
    ] = False,
    skip_balena: Annotated[bool, typer.Option(help="Only revoke in CityOps.")] = False,
    api_url: ApiUrl = DEFAULT_API,
    api_key: ApiKey = "",
    balena_dir: BalenaDir = DEFAULT_BALENA_DIR,
    balena_token: BalenaToken = None,
) -> None:
    """Revoke a unit: the broker refuses its credentials; history is kept; balena is marked.

    Example: cityops provision revoke pc-01
    """
    from provisioning.revoke import revoke_device

    with _errors(), _api(api_url, api_key) as api:
        balena = None if skip_balena else _balena(balena_dir, balena_token)
        with _Steps() as step:
            result = revoke_device(
                api, balena, device_id, remove_from_balena=remove_from_balena, step=step
            )
    out.print(f"[bold]{device_id} revoked[/]: the broker no longer accepts its credentials")
    out.print(f"  balena: {result.balena_action}")


@app.command("balena-config")
def balena_config(
    *,
    data_dir: Annotated[Path, typer.Option(help="Folder to write balena.cfg into.")],
    api_endpoint: Annotated[
        str | None,
        typer.Option(help="Full API URL (openBalena: https://api.<domain>/)."),
    ] = None,
    balena_host: Annotated[
        str, typer.Option(help="balenaCloud or openBalena domain.")
    ] = "balena-cloud.com",
) -> None:
    """Write a complete balena.cfg so the SDK talks to balenaCloud, openBalena or a stand-in.

    Example: cityops provision balena-config --data-dir ~/.balena-city --balena-host city.example
    """
    from provisioning.balena_config import api_endpoint_for_host, write_balena_cfg

    endpoint = api_endpoint or api_endpoint_for_host(balena_host)
    path = write_balena_cfg(data_dir, api_endpoint=endpoint, balena_host=balena_host)
    out.print(f"wrote {path} (api_endpoint {endpoint})")


@fleet_app.command("list")
def fleet_list(
    *,
    fleet: Fleet,
    balena_dir: BalenaDir = DEFAULT_BALENA_DIR,
    balena_token: BalenaToken = None,
) -> None:
    """The fleet's devices as balena sees them.

    Example: cityops provision fleet list --fleet city/cameras
    """
    with _errors():
        balena = _balena(balena_dir, balena_token)
        balena.check_reachable()
        devices = balena.list_devices(fleet)
    table = Table(title=f"balena fleet {fleet}")
    for column in ("uuid", "name", "type", "balena online", "release", "status"):
        table.add_column(column)
    for dev in devices:
        table.add_row(
            dev.uuid[:7],
            dev.name,
            dev.device_type,
            "yes" if dev.online else "no",
            (dev.release or "-")[:12],
            dev.status,
        )
    out.print(table)


@fleet_app.command("status")
def fleet_status(
    *,
    fleet: Fleet,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON rows.")] = False,
    api_url: ApiUrl = DEFAULT_API,
    api_key: ApiKey = "",
    balena_dir: BalenaDir = DEFAULT_BALENA_DIR,
    balena_token: BalenaToken = None,
) -> None:
    """Online in balena vs on MQTT online, release and last event, per device of the fleet.

    Example: cityops provision fleet status --fleet city/cameras
    """
    from provisioning.fleet_status import join_fleet

    with _errors():
        balena = _balena(balena_dir, balena_token)
        balena.check_reachable()
        balena_devices = balena.list_devices(fleet)
        with _api(api_url, api_key) as api:
            rows = join_fleet(fleet, balena_devices, api.list_devices())
    if as_json:
        out.print_json(
            json.dumps(
                [
                    {
                        "device_id": r.device_id,
                        "balena_uuid": r.balena_uuid,
                        "device_type": r.device_type,
                        "balena_online": r.balena_online,
                        "mqtt_online": r.mqtt_online,
                        "release": r.release,
                        "last_event_at": r.last_event_at.isoformat() if r.last_event_at else None,
                        "attention": r.attention,
                    }
                    for r in rows
                ]
            )
        )
        return
    table = Table(title=f"fleet {fleet}")
    for column in (
        "device",
        "uuid",
        "type",
        "balena",
        "mqtt",
        "release",
        "last event",
        "attention",
    ):
        table.add_column(column)

    def yes(value: bool | None) -> str:
        return "-" if value is None else ("[green]online[/]" if value else "[red]offline[/]")

    for r in rows:
        table.add_row(
            r.device_id or "?",
            (r.balena_uuid or "-")[:7],
            r.device_type,
            yes(r.balena_online),
            yes(r.mqtt_online),
            (r.release or "-")[:12],
            f"{r.last_event_at:%Y-%m-%d %H:%M}" if r.last_event_at else "-",
            r.attention,
        )
    out.print(table)
