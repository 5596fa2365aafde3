"""``cityops cloud serve`` and ``cityops cloud keys create|list|update|revoke``."""

import logging
import logging.config
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from cityops.settings_file import SettingsFileError, build
from cloud.api.settings import ApiSettings
from cloud.ops.roles import Role
from cloud.settings import CloudSettings

if TYPE_CHECKING:  # sqlalchemy stays out of `cityops` start-up (edge-only installs lack it)
    from datetime import datetime

    from sqlalchemy.orm import Session

ConfigOption = Annotated[
    Path | None,
    typer.Option(
        "--config",
        "-c",
        help="YAML file: cloud settings (database_url, mqtt, store, ingest) and an `api:` section.",
        exists=True,
        dir_okay=False,
    ),
]

keys_app = typer.Typer(
    help="Create, list and revoke API keys of the operations API.\n\n"
    "Example: cityops cloud keys create --name 'Police desk' --role operator "
    "--department traffic-enforcement",
    no_args_is_help=True,
)


def _settings(config: Path | None) -> ApiSettings:
    try:
        if config:
            return ApiSettings.from_yaml(config)
        return ApiSettings(cloud=build(CloudSettings, "environment (CITYOPS_CLOUD_*)", {}))
    except SettingsFileError as exc:
        typer.echo(f"invalid settings: {exc}", err=True)
        raise typer.Exit(2) from exc


def _session(config: Path | None) -> "Session":
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import SQLAlchemyError
    from sqlalchemy.orm import Session

    from cloud.db.base import create_all, make_engine

    settings = _settings(config)
    url = make_url(settings.cloud.database_url)
    try:
        if url.get_backend_name() == "sqlite" and url.database not in {None, "", ":memory:"}:
            # The documented default, sqlite:///var/cityops.sqlite, is relative: make var/.
            Path(str(url.database)).parent.mkdir(parents=True, exist_ok=True)
        engine = make_engine(settings.cloud.database_url)
        create_all(engine)
    except (SQLAlchemyError, OSError) as exc:
        where = url.render_as_string(hide_password=True)
        reason = getattr(exc, "orig", None) or exc
        typer.echo(f"error: cannot open the state database {where}: {reason}", err=True)
        raise typer.Exit(2) from exc
    return Session(engine, expire_on_commit=False)


@keys_app.command("create")
def create_key(
    name: Annotated[str, typer.Option("--name", help="Who or what uses the key.")],
    role: Annotated[Role, typer.Option("--role", help="What the key may do.")],
    department: Annotated[
        list[str] | None,
        typer.Option(
            "--department", "-d", help="Department it may see (repeat); all ('*') if none."
        ),
    ] = None,
    expires_in_h: Annotated[
        float | None,
        typer.Option(
            "--expires-in", help="Hours until the key stops working (default: never).", min=0.001
        ),
    ] = None,
    config: ConfigOption = None,
) -> None:
    """Create an API key and print it once (it is stored hashed)."""
    from cloud.ops.keys import create_api_key

    with _session(config) as session:
        try:
            key = create_api_key(
                session,
                name=name,
                role=role,
                departments=department or ["*"],
                expires_at=_expiry(expires_in_h),
            )
        except ValueError as exc:
            typer.echo(f"error: {exc}", err=True)
            raise typer.Exit(2) from exc
    typer.echo(key)


@keys_app.command("list")
def list_keys(config: ConfigOption = None) -> None:
    """List API keys (ids, names, roles, departments; never the secrets)."""
    from cloud.ops.keys import list_api_keys

    with _session(config) as session:
        keys = list_api_keys(session)
    for key in keys:
        state = f"revoked {key.revoked_at:%Y-%m-%d}" if key.revoked_at else "active"
        if not key.revoked_at and key.expires_at:
            state = f"expires {key.expires_at:%Y-%m-%d %H:%M}"
        used = f"{key.last_used_at:%Y-%m-%d %H:%M}" if key.last_used_at else "never"
        typer.echo(
            f"{key.id}  {key.role:<11} {','.join(key.departments):<30} {state:<18} "
            f"used {used}  {key.name}"
        )


def _expiry(hours: float | None) -> "datetime | None":
    from datetime import timedelta

    from shared.clock import utcnow

    return None if hours is None else utcnow() + timedelta(hours=hours)


@keys_app.command("update")
def update_key(
    key_id: Annotated[str, typer.Argument(help="The key id (from `list`).")],
    role: Annotated[str | None, typer.Option("--role", help="A new role.")] = None,
    department: Annotated[
        list[str] | None,
        typer.Option("--department", "-d", help="Replace its departments (repeat)."),
    ] = None,
    expires_in_h: Annotated[
        float | None,
        typer.Option("--expires-in", help="Hours from now until the key stops working.", min=0.001),
    ] = None,
    config: ConfigOption = None,
) -> None:
    """Narrow (or widen) a key: role, departments, expiry. Open live streams follow in 5 s."""
    from cloud.ops.keys import update_api_key

    with _session(config) as session:
        try:
            principal = update_api_key(
                session, key_id, role=role, departments=department, expires_at=_expiry(expires_in_h)
            )
        except ValueError as exc:
            typer.echo(f"error: {exc}", err=True)
            raise typer.Exit(2) from exc
    if principal is None:
        typer.echo(f"no active key {key_id!r}", err=True)
        raise typer.Exit(1)
    typer.echo(
        f"updated {key_id}: {principal.role.value} {','.join(sorted(principal.departments))}"
    )


@keys_app.command("revoke")
def revoke_key(
    key_id: Annotated[str, typer.Argument(help="The key id (from `list`) or the whole key.")],
    config: ConfigOption = None,
) -> None:
    """Revoke an API key; requests with it get 401 from then on."""
    from cloud.ops.keys import revoke_api_key

    with _session(config) as session:
        if not revoke_api_key(session, key_id):
            typer.echo(f"no active key {key_id!r}", err=True)
            raise typer.Exit(1)
    typer.echo(f"revoked {key_id}")


def serve(  # noqa: PLR0917 - a Typer command: one parameter per option
    config: ConfigOption = None,
    host: Annotated[str | None, typer.Option("--host", help="Overrides api.host.")] = None,
    port: Annotated[int | None, typer.Option("--port", help="Overrides api.port.")] = None,
    no_ingest: Annotated[
        bool,
        typer.Option("--no-ingest", help="Do not run the ingestor here (a separate one runs)."),
    ] = False,
    log_level: Annotated[str, typer.Option("--log-level", help="DEBUG, INFO, WARNING.")] = "INFO",
    sources: Annotated[
        Path | None,
        typer.Option(
            "--sources",
            envvar="CITYOPS_INTEGRATIONS_SOURCES",
            help="Connectors of other city systems (sources.yaml, see docs/integrations.md).",
            exists=True,
            dir_okay=False,
        ),
    ] = None,
    dispatch: Annotated[
        Path | None,
        typer.Option(
            "--dispatch",
            envvar="CITYOPS_INTEGRATIONS_DISPATCH",
            help="Where incidents go per department: webhook or e-mail (dispatch.yaml).",
            exists=True,
            dir_okay=False,
        ),
    ] = None,
) -> None:
    """Serve the operations API (and, unless --no-ingest, the ingestor in the same process).

    With --sources / --dispatch it also runs the integration hub: connectors that bring other
    city systems' records in, and dispatch of incidents to department systems.

    Example: cityops cloud serve --config cloud.yaml --sources sources.yaml --dispatch dispatch.yaml
    """
    import uvicorn

    from cloud.api.app import create_app
    from cloud.api.logs import log_config
    from cloud.connectors.integration import Integrations, build_integration_routers

    logging.config.dictConfig(log_config(log_level))
    settings = _settings(config)
    try:
        integrations = Integrations.from_files(sources, dispatch)
    except (ValueError, OSError) as exc:
        typer.echo(f"invalid integration settings: {exc}", err=True)
        raise typer.Exit(2) from exc
    app = create_app(
        settings, ingest=not no_ingest, extra_routers=build_integration_routers(integrations)
    )
    integrations.attach(app)
    uvicorn.run(
        app,
        host=host or settings.api.host,
        port=port or settings.api.port,
        log_level=log_level.lower(),
        log_config=log_config(log_level),
    )
