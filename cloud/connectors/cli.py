"""``cityops cloud connectors``: check, list and try the integration hub's configuration."""

import json
import os
import sys
from pathlib import Path
from typing import Annotated

import typer
from pydantic import BaseModel

connectors_app = typer.Typer(
    help=(
        "Other city systems in (webhook, REST polling, MQTT bridge, file drop, NGSI-LD) and "
        "incidents out (signed webhook, e-mail). Joining a system is a change to sources.yaml.\n\n"
        "Example: cityops cloud connectors map --sources sources.yaml --source lisbon-air "
        "record.json"
    ),
    no_args_is_help=True,
)

SourcesOpt = Annotated[
    Path,
    typer.Option(
        "--sources",
        envvar="CITYOPS_INTEGRATIONS_SOURCES",
        exists=True,
        dir_okay=False,
        help="sources.yaml: one entry per connected system.",
    ),
]


def _fail(message: str) -> typer.Exit:
    typer.echo(f"error: {message}", err=True)
    return typer.Exit(1)


@connectors_app.command("list")
def list_sources(sources: SourcesOpt) -> None:
    """List the configured sources: id, type, virtual device, output.

    Example: cityops cloud connectors list --sources sources.yaml
    """
    from cloud.connectors.config import load_sources
    from cloud.connectors.mapping import EventMapping

    try:
        config = load_sources(sources)
    except ValueError as exc:
        raise _fail(str(exc)) from exc
    for source in config.sources:
        output = "event" if isinstance(source.mapping, EventMapping) else "telemetry"
        state = "" if source.enabled else "  (disabled)"
        typer.echo(f"{source.id:24} {source.type:12} {source.virtual_device_id:28} {output}{state}")


@connectors_app.command("check")
def check(
    sources: SourcesOpt,
    dispatch: Annotated[
        Path | None,
        typer.Option(
            "--dispatch",
            envvar="CITYOPS_INTEGRATIONS_DISPATCH",
            exists=True,
            dir_okay=False,
            help="dispatch.yaml: where incidents are delivered.",
        ),
    ] = None,
) -> None:
    """Validate sources.yaml (and dispatch.yaml) and that every named secret is set.

    Exit code 1 names the file and the field at fault.

    Example: cityops cloud connectors check --sources sources.yaml --dispatch dispatch.yaml
    """
    from cloud.connectors.integration import Integrations
    from cloud.dispatch.config import DispatchConfig, load_dispatch
    from cloud.dispatch.senders import sender_for
    from cloud.settings import dispatch_client_id

    try:
        integrations = Integrations.from_files(sources)
        config = load_dispatch(dispatch) if dispatch else DispatchConfig()
        for route in config.routes:
            sender_for(route.target, dispatch_client_id())
    except ValueError as exc:
        raise _fail(str(exc)) from exc
    typer.echo(
        f"ok: {len(integrations.sources.sources)} sources, {len(config.routes)} dispatch routes"
    )


@connectors_app.command("map")
def map_record(
    sources: SourcesOpt,
    source: Annotated[str, typer.Option("--source", help="Source id in sources.yaml.")],
    record: Annotated[
        Path,
        typer.Argument(
            exists=True, dir_okay=False, help="A JSON file holding one record (or a list)."
        ),
    ],
) -> None:
    """Dry run: show the Event/Telemetry the mapping makes of sample records; stores nothing.

    Example: cityops cloud connectors map --sources sources.yaml --source citizen-app rec.json
    """
    from cloud.connectors.config import load_sources
    from cloud.connectors.mapping import EventMapping, MappingError, map_event, map_telemetry
    from cloud.ngsi.forms import to_key_values

    try:
        config = load_sources(sources)
    except ValueError as exc:
        raise _fail(str(exc)) from exc
    chosen = config.get(source)
    if chosen is None:
        raise _fail(f"--source: no source {source!r} in {sources}")
    data = json.loads(record.read_text())
    records = data if isinstance(data, list) else [data]
    failed = 0
    for index, item in enumerate(records):
        if chosen.type == "ngsi_ld" and isinstance(item, dict):
            item = to_key_values(item)  # noqa: PLW2901 - notifications are read in key-values form
        try:
            if not isinstance(item, dict):
                raise MappingError("record", "a record must be a JSON object")  # noqa: TRY301
            mapping = chosen.mapping
            out: BaseModel
            if isinstance(mapping, EventMapping):
                out = map_event(
                    mapping, item, source_id=chosen.id, device_id=chosen.virtual_device_id
                )
            else:
                out = map_telemetry(mapping, item, device_id=chosen.virtual_device_id)
        except MappingError as exc:
            failed += 1
            typer.echo(f"record {index}: {exc.field}: {exc.reason}", err=True)
            continue
        typer.echo(out.model_dump_json(indent=2, exclude_none=True))
    if failed:
        raise typer.Exit(1)


@connectors_app.command("sign")
def sign_body(
    body: Annotated[Path, typer.Argument(exists=True, dir_okay=False, help="Request body file.")],
    secret_env: Annotated[
        str, typer.Option("--secret-env", help="Environment variable holding the secret.")
    ],
) -> None:
    """Print the signature headers a partner must send with BODY (for testing a webhook).

    Example: cityops cloud connectors sign --secret-env CITIZEN_APP_SECRET body.json
    """
    from cloud.connectors.signing import signature_headers

    secret = os.environ.get(secret_env)
    if not secret:
        raise _fail(f"--secret-env: environment variable {secret_env} is not set")
    for name, value in signature_headers(secret.encode(), body.read_bytes()).items():
        sys.stdout.write(f"{name}: {value}\n")
