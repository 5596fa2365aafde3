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

    from edge.camera.source import OpenCvSource
    from edge.debug.video import AnnotatedVideo
    from edge.pipeline import Pipeline, RunSummary

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
    annotate: Annotated[
        Path | None,
        typer.Option(
            "--annotate",
            help="Also write the debug view as a video (mp4): detections, tracks with ids, "
            "zones, lines, dwell timers, static objects and the motion mask; faces pixelated.",
        ),
    ] = None,
    stills: Annotated[
        str | None,
        typer.Option(
            help="With --annotate: frame numbers (e.g. 330,450,760,1000) put side by side in "
            "<annotate>.png, a small picture for docs and tickets.",
        ),
    ] = None,
) -> None:
    """Run detection, tracking and rules on a video file as fast as possible; print a summary.

    Example: cityops edge replay material:data/parking/car_parks_in_disabled_bay_composed.mp4
    --config edge/examples/parking-disabled-bay.yaml --events-out events.jsonl
    """
    from rich.console import Console
    from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

    from edge.pipeline import run
    from edge.sink import JsonlSink, ListSink

    err = Console(stderr=True)
    pipeline, source = _open(err, video, config, camera, start_time, realtime=realtime)
    total = source.frame_count
    video_out = None
    if annotate is not None:
        try:
            video_out = _annotated_video(annotate, stills, source.fps, pipeline)
        except ValueError as exc:
            _error(err, "--annotate:", str(exc))
            raise typer.Exit(2) from exc
        pipeline.observer = video_out.observe
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
    _print_summary(Path(source.source).name, summary, pipeline.stats().inference_ms, events_out)
    if video_out is not None:
        png = video_out.close()
        typer.echo(f"annotated video: {video_out.path} ({video_out.frames} frames)")
        if png is not None:
            typer.echo(f"stills: {png}")


def _open(
    err: "Console",
    video: str,
    config: Path,
    camera: str | None,
    start_time: datetime | None,
    *,
    realtime: bool,
) -> tuple["Pipeline", "OpenCvSource"]:
    """The pipeline and the video source, or a plain error naming what is wrong and exit 2/1."""
    from datetime import UTC

    from cityops import paths
    from edge.camera.source import OpenCvSource, SourceError
    from edge.detect.tflite import DetectorError
    from edge.pipeline import Pipeline
    from edge.settings import EdgeSettings

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
    return pipeline, source


def _annotated_video(
    path: Path, stills: str | None, fps: float, pipeline: "Pipeline"
) -> "AnnotatedVideo":
    from edge.debug.video import AnnotatedVideo
    from edge.privacy.faces import RefusingBlurrer

    if isinstance(pipeline.blurrer, RefusingBlurrer):
        raise ValueError(pipeline.blurrer.reason)  # noqa: TRY004 - a settings problem
    try:
        picked = tuple(int(n) for n in stills.split(",")) if stills else ()
    except ValueError as exc:
        raise ValueError(f"--stills: frame numbers separated by commas, not {stills!r}") from exc
    return AnnotatedVideo(
        path, fps, pipeline.blurrer, stills=picked, stills_path=path.with_suffix(".png")
    )


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
