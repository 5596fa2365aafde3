"""``cityops edge replay``: the whole pipeline on a video file, deterministic in video time."""

import logging
import threading
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from edge.settings import MATERIAL_PREFIX

if TYPE_CHECKING:
    from rich.console import Console

    from edge.pipeline import RunSummary

logger = logging.getLogger(__name__)


def replay(  # noqa: PLR0917 - Typer maps each option to one parameter
    video: Annotated[
        str,
        typer.Argument(
            help="Video file (or 'material:data/...' for the provided footage). Replaces the "
            "source of the config's first camera.",
        ),
    ],
    config: Annotated[
        Path,
        typer.Option("--config", "-c", help="Agent settings (YAML) with zones and rules."),
    ],
    events_out: Annotated[
        Path | None,
        typer.Option("--events-out", "-o", help="Write one Event JSON per line to this file."),
    ] = None,
    camera: Annotated[
        str | None,
        typer.Option(help="Camera id the video stands for (default: the config's first)."),
    ] = None,
    start_time: Annotated[
        datetime | None,
        typer.Option(
            "--start-time",
            help="Wall time of video time 0, UTC (events are stamped start + video time). "
            "Default: the config's start_time, else 2026-01-05T09:00:00Z.",
        ),
    ] = None,
    realtime: Annotated[
        bool, typer.Option("--realtime", help="Pace frames at the video's rate.")
    ] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar.")] = False,
) -> None:
    """Run detection, tracking and rules on a video file as fast as possible; print a summary.

    Example: cityops edge replay material:data/parking/car_parks_in_disabled_bay_composed.mp4
    --config edge/examples/parking-disabled-bay.yaml --events-out events.jsonl
    """
    from datetime import UTC

    from rich.console import Console
    from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

    from cityops import paths
    from edge.camera.source import OpenCvSource, SourceError
    from edge.detect.tflite import DetectorError
    from edge.pipeline import Pipeline, run
    from edge.settings import EdgeSettings
    from edge.sink import JsonlSink, ListSink

    err = Console(stderr=True)
    try:
        settings = EdgeSettings.from_yaml(config)
    except ValueError as exc:
        _error(err, "config error:", str(exc))
        raise typer.Exit(2) from exc
    cam_id = camera or settings.cameras[0].id
    if cam_id not in {c.id for c in settings.cameras}:
        _error(err, "--camera:", f"{cam_id!r} is not in {config}")
        raise typer.Exit(2)
    path = (
        paths.material_dir() / video.removeprefix(MATERIAL_PREFIX)
        if video.startswith(MATERIAL_PREFIX)
        else Path(video)
    )
    if not path.is_file():
        _error(err, "VIDEO:", f"no such file: {path}")
        raise typer.Exit(2)
    if start_time is not None and start_time.tzinfo is None:
        start_time = start_time.replace(tzinfo=UTC)
    base = start_time or settings.replay_start()
    try:
        pipeline = Pipeline.from_settings(settings)
        source = OpenCvSource(cam_id, str(path), realtime=realtime, start_time=base)
    except (DetectorError, SourceError, ValueError) as exc:
        _error(err, "error:", str(exc))
        raise typer.Exit(1) from exc
    total = source.frame_count
    sink: JsonlSink | ListSink = JsonlSink(events_out) if events_out else ListSink()
    progress = Progress(
        TextColumn("replay"),
        BarColumn(),
        TextColumn("{task.completed}/{task.total} frames"),
        TimeRemainingColumn(),
        console=err,
        disable=quiet,
    )
    with progress:
        task = progress.add_task("frames", total=total or None)
        summary = run(
            pipeline,
            sink,
            threading.Event(),
            sources=[source],
            on_frame=lambda _f: progress.advance(task),
        )
    if isinstance(sink, JsonlSink):
        sink.close()
    _print_summary(path.name, summary, pipeline.stats().inference_ms, events_out)


def _error(console: "Console", label: str, message: str) -> None:
    """*message* as plain text: settings errors quote patterns such as '^[a-z0-9]{0,62}$'."""
    from rich.text import Text

    console.print(Text.assemble((label, "red"), " ", message))


def _print_summary(
    name: str, summary: "RunSummary", inference_ms: float, events_out: Path | None
) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"replay of {name}", show_header=False)
    table.add_row("frames", str(summary.frames))
    table.add_row("video time", f"{summary.video_seconds:.1f} s")
    table.add_row("wall time", f"{summary.seconds:.1f} s")
    table.add_row("fps", f"{summary.fps:.1f}")
    table.add_row("detector calls", str(summary.detector_calls))
    table.add_row("detector time per frame", f"{inference_ms:.1f} ms")
    for kind, count in sorted(summary.events.items()):
        table.add_row(f"events: {kind}", str(count))
    if not summary.events:
        table.add_row("events", "none")
    if events_out:
        table.add_row("written to", str(events_out))
    Console().print(table)
