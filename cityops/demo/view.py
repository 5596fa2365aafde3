"""The live terminal view: devices, events as they arrive, incidents with department and SLA."""

from datetime import UTC, datetime
from typing import Any

from rich.console import Group
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from cityops.demo.monitor import Traffic

STATUS_STYLE = {
    "open": "bold red",
    "acknowledged": "yellow",
    "dispatched": "cyan",
    "resolved": "green",
    "false_alarm": "dim",
}


SHORT_ID = 12


def short_id(value: str) -> str:
    """The end of an id: UUIDv7s begin with their time, so two from one minute share a prefix."""
    return value if len(value) <= SHORT_ID else "…" + value[-SHORT_ID:]


def _age(ts: datetime | None, now: datetime) -> str:
    if ts is None:
        return "-"
    return f"{max(0.0, (now - ts).total_seconds()):.0f}s ago"


def _countdown(due: str | None, now: datetime) -> Text:
    if not due:
        return Text("-")
    left = (datetime.fromisoformat(due) - now).total_seconds()
    if left < 0:
        return Text(f"BREACHED {-left / 60:.1f} min", style="bold red")
    return Text(f"{int(left // 60)}:{int(left % 60):02d}", style="green" if left > 60 else "yellow")  # noqa: PLR2004


def render(
    title: str,
    devices: list[dict[str, Any]],
    traffic: Traffic,
    incidents: list[dict[str, Any]],
) -> Group:
    now = datetime.now(UTC)
    dev = Table(title="Devices", expand=True)
    for col in ("device", "site", "online", "fps", "infer ms", "outbox", "sent"):
        dev.add_column(col)
    for d in devices:
        tele = traffic.telemetry.get(d["id"])
        dev.add_row(
            d["id"],
            d.get("site", ""),
            Text("online", style="green") if d.get("online") else Text("offline", style="red"),
            f"{tele.fps:.1f}" if tele and tele.fps is not None else "-",
            f"{tele.inference_ms:.1f}" if tele and tele.inference_ms is not None else "-",
            str(tele.outbox_depth) if tele else "-",
            f"{traffic.bytes_by_device.get(d['id'], 0) / 1024:.1f} KiB",
        )
    ev = Table(title="Events as they arrive", expand=True)
    for col in ("observed", "device", "kind", "phase", "zone", "dwell"):
        ev.add_column(col)
    for e in reversed(traffic.recent_events[-8:]):
        ev.add_row(
            e.observed_at.strftime("%H:%M:%S"),
            e.device_id,
            e.kind.value,
            e.phase.value,
            e.zone_id or "-",
            f"{e.dwell_s:.0f}s",
        )
    inc = Table(title="Incidents", expand=True)
    for col in ("incident", "kind", "department", "status", "severity", "events", "ack SLA"):
        inc.add_column(col)
    for i in incidents:
        status = str(i.get("status", ""))
        inc.add_row(
            short_id(str(i["id"])),
            str(i.get("kind", "")),
            str(i.get("department", "")),
            Text(status, style=STATUS_STYLE.get(status, "")),
            str(i.get("severity", "")),
            str(i.get("event_count", "")),
            _countdown(i.get("ack_due_at") if status == "open" else None, now),
        )
    return Group(Panel(Text(title, style="bold")), dev, ev, inc)
