"""Run the demo end to end and return its summary."""

import json
import re
import shutil
import signal
import time
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Self

import httpx
from rich.console import Console
from rich.live import Live
from rich.table import Table

from cityops.demo.agents import Agent, audit_log, provision, start_agent, write_agent_config
from cityops.demo.monitor import Monitor
from cityops.demo.scenario import EXPECTED_KINDS, SCENARIO, DemoCamera
from cityops.demo.stack import DEMO_USER, MONITOR_USER, Stack, start_stack
from cityops.demo.supervisor import Supervisor, leftover_pids
from cityops.demo.view import render
from cityops.paths import (
    audit_model_path,
    data_path,
    face_model_path,
    material_dir,
    model_path,
    models_cache_dir,
)


@dataclass(frozen=True, slots=True)
class DemoOptions:
    workdir: Path
    short: bool = False
    store: str = "sqlite"
    keep: bool = False
    live: bool = True
    timeout_s: float = 600.0
    settle_s: float = 4.0


class MaterialMissingError(RuntimeError):
    pass


def check_material(cameras: list[DemoCamera]) -> None:
    if not model_path().exists():
        raise MaterialMissingError(
            f"no detector model at {model_path()}. Run `cityops models fetch` (online), or put "
            f"detect.tflite and labelmap.txt in {material_dir() / 'models'} "
            "(or point CITYOPS_SHARED_DIR at a folder with models/ and data/)."
        )
    if face_model_path() is None or audit_model_path() is None:
        raise MaterialMissingError(
            "no face models (the device's and the privacy auditor's). Run `cityops models "
            f"fetch --face-only` (online) or put them in {models_cache_dir()}."
        )
    missing = [c.clip for c in cameras if not data_path(*c.clip.split("/")).exists()]
    if missing:
        raise MaterialMissingError(
            "missing demo videos: "
            + ", ".join(str(data_path(*m.split("/"))) for m in missing)
            + f". Put the clips under {material_dir() / 'data'} with those names."
        )


def _get(api: httpx.Client, path: str, **params: Any) -> list[dict[str, Any]]:
    try:
        resp = api.get(path, params=params)
    except httpx.HTTPError:
        return []
    if resp.status_code != 200:  # noqa: PLR2004
        return []
    body = resp.json()
    items: list[dict[str, Any]] = body["items"] if isinstance(body, dict) else body
    return items


def run_demo(opts: DemoOptions, console: Console) -> dict[str, Any]:
    cameras = [c for c in SCENARIO if c.in_short_mode or not opts.short]
    check_material(cameras)
    if opts.workdir.exists():
        shutil.rmtree(opts.workdir)  # rerunning starts clean
    opts.workdir.mkdir(parents=True)
    supervisor = Supervisor(opts.workdir)
    stack: Stack | None = None
    monitor: Monitor | None = None
    started = time.monotonic()
    summary: dict[str, Any] = {}
    previous = signal.signal(signal.SIGTERM, _raise_interrupt)
    try:
        console.print(f"[bold]CityOps demo[/] in {opts.workdir} (store: {opts.store})")
        console.print("• starting Mosquitto with per-device credentials, ingest and the API …")
        stack = start_stack(opts.workdir, supervisor, store=opts.store)
        console.print(f"• operations API at {stack.api_url} (OpenAPI: {stack.api_url}/docs)")
        console.print(
            f"• [bold]operator console[/] at {stack.api_url}/ — sign in as "
            f"[bold]{DEMO_USER}[/] / [bold]{stack.console_password}[/]"
        )
        monitor = Monitor(
            stack.broker.host,
            stack.broker.port,
            MONITOR_USER,
            stack.service_passwords[MONITOR_USER],
        )
        monitor.start()
        agents: list[Agent] = []
        start = datetime.now(UTC)
        for cam in cameras:
            creds = provision(stack.api_url, stack.keys.technician, cam)
            agent = write_agent_config(opts.workdir, cam, creds, fast=opts.short, start=start)
            agents.append(agent)
            console.print(f"• provisioned {cam.device_id} at {cam.site}: {cam.story}")
        for agent in agents:
            start_agent(supervisor, agent)
        summary = _watch(opts, console, stack, monitor, supervisor, agents, started)
        if opts.keep:
            console.print(
                f"\n[bold]API left running[/] at {stack.api_url} — operator key: "
                f"{stack.keys.operator}\n  operator console: {stack.api_url}/ — sign in as "
                f"{DEMO_USER} / {stack.console_password}\n  OpenAPI: {stack.api_url}/docs\n"
                "  live stream: "
                f"curl -N -H 'Authorization: Bearer {stack.keys.operator}' "
                f"{stack.api_url}/api/v1/live/sse  (WebSocket: /api/v1/live/ws)\n  Ctrl-C to stop."
            )
            while True:
                time.sleep(1)
    except KeyboardInterrupt:
        console.print("\n[yellow]stopping (Ctrl-C)…[/]")
        summary.setdefault("interrupted", True)
    finally:
        signal.signal(signal.SIGTERM, previous)
        if monitor is not None:
            monitor.stop()
        supervisor.stop_all()
        if stack is not None:
            stack.stop_services()
        summary["leftover_pids"] = leftover_pids(supervisor.pid_file)
        (opts.workdir / "summary.json").write_text(json.dumps(summary, indent=2, default=str))
    return summary


def _raise_interrupt(_signum: int, _frame: object) -> None:
    raise KeyboardInterrupt


def _watch(  # noqa: PLR0917 - one private call site
    opts: DemoOptions,
    console: Console,
    stack: Stack,
    monitor: Monitor,
    supervisor: Supervisor,
    agents: list[Agent],
    started: float,
) -> dict[str, Any]:
    headers = {"Authorization": f"Bearer {stack.keys.operator}"}
    done_at: float | None = None
    devices: list[dict[str, Any]] = []
    incidents: list[dict[str, Any]] = []
    with (
        httpx.Client(base_url=stack.api_url, headers=headers, timeout=5) as api,
        Live(console=console, refresh_per_second=4) if opts.live else _NoLive() as live,
    ):  # fmt: skip
        while True:
            devices = _get(api, "/api/v1/devices")
            incidents = _get(api, "/api/v1/incidents", limit=50)
            traffic = monitor.snapshot()
            if opts.live:
                live.update(
                    render("CityOps — operations center (demo)", devices, traffic, incidents)
                )
            running = [a for a in agents if supervisor.alive(a.camera.device_id)]
            if not running and done_at is None:
                done_at = time.monotonic()
            if done_at is not None and time.monotonic() - done_at > opts.settle_s:
                break
            if time.monotonic() - started > opts.timeout_s:
                console.print("[red]demo timed out[/]")
                break
            time.sleep(0.5)
    traffic = monitor.snapshot()
    frames = _frames(opts.workdir, agents)
    video_bytes = sum(a.clip_bytes for a in agents)
    sent = sum(traffic.bytes_by_device.values())
    summary: dict[str, Any] = {
        "devices": [a.camera.device_id for a in agents],
        "frames_processed": frames,
        "events_by_kind": dict(traffic.events_by_kind),
        "incidents": [
            {k: i.get(k) for k in ("id", "kind", "department", "status", "severity", "device_id")}
            for i in incidents
        ],
        "incidents_by_kind": dict(Counter(str(i.get("kind")) for i in incidents)),
        "bytes_sent": sent,
        "video_bytes": video_bytes,
        "sent_vs_video": round(sent / video_bytes, 5) if video_bytes else None,
        "elapsed_s": round(time.monotonic() - started, 1),
        "expected_kinds": list(EXPECTED_KINDS),
        "agent_exit_codes": {
            c.name: c.proc.returncode for c in supervisor.children if c.name.startswith("cam-")
        },
        "privacy_audit": _privacy_audit(traffic.snapshots, agents),
    }
    _print_summary(console, summary)
    return summary


def _privacy_audit(snapshots: list[bytes], agents: list[Agent]) -> dict[str, Any]:
    """An independent face model over every snapshot that left the devices (goal: 0 faces)."""
    from edge.privacy.audit import FaceAuditor, read_log

    auditor = FaceAuditor()
    device_side = [r for a in agents for r in read_log(audit_log(a.config_path.parent))]
    return {
        "auditor": "BlazeFace full range (not the blurring model), tiled",
        "snapshots_left_devices": len(snapshots),
        "readable_faces_after": sum(len(auditor.readable_in_jpeg(s)) for s in snapshots),
        "faces_found_after_incl_pixelated": sum(len(auditor.faces_in_jpeg(s)) for s in snapshots),
        "faces_before_blurring": sum(r.faces_before for r in device_side),
        "device_audit_records": len(device_side),
    }


_RUN_ENDED = re.compile(r"pipeline run ended: (\d+) frames")


def _frames(workdir: Path, agents: list[Agent]) -> dict[str, int | None]:
    """Frames each agent processed, from the line ``cityops edge run`` logs when its run ends."""
    out: dict[str, int | None] = {}
    for agent in agents:
        log = workdir / "logs" / f"{agent.camera.device_id}.log"
        found = _RUN_ENDED.findall(log.read_text(errors="replace")) if log.exists() else []
        out[agent.camera.device_id] = int(found[-1]) if found else None
    return out


def _print_summary(console: Console, summary: dict[str, Any]) -> None:
    table = Table(title="Demo summary")
    table.add_column("what")
    table.add_column("value")
    frames = summary["frames_processed"]
    table.add_row("frames processed", ", ".join(f"{k}: {v}" for k, v in frames.items()))
    table.add_row(
        "events (start) by kind",
        ", ".join(f"{k}: {v}" for k, v in summary["events_by_kind"].items()) or "none",
    )
    for inc in summary["incidents"]:
        table.add_row(
            "incident", f"{inc['kind']} → {inc['department']} ({inc['status']}, {inc['severity']})"
        )
    table.add_row(
        "bytes sent vs video",
        f"{summary['bytes_sent']:,} B sent for {summary['video_bytes']:,} B of video "
        f"({100 * (summary['sent_vs_video'] or 0):.3f} %)",
    )
    audit = summary["privacy_audit"]
    table.add_row(
        "privacy audit",
        f"{audit['snapshots_left_devices']} snapshots left the devices: "
        f"{audit['readable_faces_after']} readable faces "
        f"({audit['faces_before_blurring']} in the same frames before blurring)",
    )
    table.add_row("elapsed", f"{summary['elapsed_s']} s")
    console.print(table)


class _NoLive:
    def __enter__(self) -> Self:
        return self

    def __exit__(self, *_exc: object) -> None:
        return None

    def update(self, _renderable: object) -> None:
        return None
