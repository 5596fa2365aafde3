"""``cityops cloud serve``, ``cloud keys`` (create, list, update, revoke) and ``cloud db``."""

import logging.config
import os
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from pydantic import BaseModel, ConfigDict

from cityops.settings_file import SettingsFileError, build
from cloud.api.settings import ApiSettings
from cloud.ops.roles import Role
from cloud.settings import CloudSettings

if TYPE_CHECKING:  # sqlalchemy stays out of `cityops` start-up (edge-only installs lack it)
    from datetime import datetime

    from fastapi import FastAPI
    from sqlalchemy.orm import Session

ConfigOption = Annotated[
    Path | None,
    typer.Option(
        "--config",
        "-c",
        help="The cloud.yaml every cloud command reads: database_url, mqtt, store, ingest, api.",
        exists=True,
        dir_okay=False,
    ),
]

keys_app = typer.Typer(
    help="Create, list, update and revoke API keys of the operations API.\n\n"
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

    from cloud.db.base import make_engine
    from cloud.db.schema import prepare_schema

    settings = _settings(config)
    url = make_url(settings.cloud.database_url)
    try:
        if url.get_backend_name() == "sqlite" and url.database not in {None, "", ":memory:"}:
            # The documented default, sqlite:///var/cityops.sqlite, is relative: make var/.
            Path(str(url.database)).parent.mkdir(parents=True, exist_ok=True)
        engine = make_engine(settings.cloud.database_url)
        prepare_schema(engine)
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
    from cloud.runtime.postgres import notify_keys_changed

    with _session(config) as session:
        try:
            principal = update_api_key(
                session, key_id, role=role, departments=department, expires_at=_expiry(expires_in_h)
            )
        except ValueError as exc:
            typer.echo(f"error: {exc}", err=True)
            raise typer.Exit(2) from exc
        if principal is not None:
            notify_keys_changed(session)  # every API process forgets the keys it verified
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
    from cloud.runtime.postgres import notify_keys_changed

    with _session(config) as session:
        if not revoke_api_key(session, key_id):
            typer.echo(f"no active key {key_id!r}", err=True)
            raise typer.Exit(1)
        notify_keys_changed(session)  # every API process forgets the keys it verified
    typer.echo(f"revoked {key_id}")


SERVE_ENV = "CITYOPS_CLOUD_SERVE"
"""How ``cloud serve --workers N`` hands its options to the worker processes uvicorn spawns."""


class ServeOptions(BaseModel):
    """What every API process of one ``cloud serve`` builds its app from."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    config: Path | None = None
    ingest: bool = True
    sources: Path | None = None
    dispatch: Path | None = None
    log_level: str = "INFO"


def _configure_logging(level: str) -> None:
    """One format and the secret filter (``cloud.api.logs``); in a uvicorn worker, run again."""
    from cloud.api.logs import log_config

    logging.config.dictConfig(log_config(level))


def build_served_app(options: ServeOptions) -> "FastAPI":
    """The app of one API process: the runtime, the API routes, the integrations."""
    from cloud.api.app import create_app
    from cloud.connectors.integration import Integrations, build_integration_routers

    settings = ApiSettings.from_yaml(options.config) if options.config else ApiSettings()
    files = settings.cloud.integrations
    files = files.model_copy(
        update={
            "sources": options.sources or files.sources,
            "dispatch": options.dispatch or files.dispatch,
        }
    )
    settings = settings.model_copy(
        update={"cloud": settings.cloud.model_copy(update={"integrations": files})}
    )
    integrations = Integrations.from_files(files.sources)
    app = create_app(
        settings, ingest=options.ingest, extra_routers=build_integration_routers(integrations)
    )
    integrations.attach(app)
    return app


def app_from_env() -> "FastAPI":
    """Uvicorn factory of each ``--workers`` process (options in ``CITYOPS_CLOUD_SERVE``)."""
    return build_served_app(ServeOptions.model_validate_json(os.environ[SERVE_ENV]))


def serve(  # noqa: PLR0917 - a Typer command: one parameter per option
    config: ConfigOption = None,
    host: Annotated[str | None, typer.Option("--host", help="Overrides api.host.")] = None,
    port: Annotated[int | None, typer.Option("--port", help="Overrides api.port.")] = None,
    no_ingest: Annotated[
        bool,
        typer.Option("--no-ingest", help="Do not run the ingestor here (a separate one runs)."),
    ] = False,
    workers: Annotated[
        int,
        typer.Option(
            "--workers",
            "-w",
            min=1,
            max=64,
            help="API processes on one port (needs PostgreSQL and --no-ingest: run the "
            "ingestors with `cloud ingest`). The SLA check runs once across them.",
        ),
    ] = 1,
    log_level: Annotated[str, typer.Option("--log-level", help="DEBUG, INFO, WARNING.")] = "INFO",
    sources: Annotated[
        Path | None,
        typer.Option(
            "--sources",
            envvar="CITYOPS_INTEGRATIONS_SOURCES",
            help="Connectors of other city systems (sources.yaml, see docs/integrations.md); "
            "overrides integrations.sources of cloud.yaml.",
            exists=True,
            dir_okay=False,
        ),
    ] = None,
    dispatch: Annotated[
        Path | None,
        typer.Option(
            "--dispatch",
            envvar="CITYOPS_INTEGRATIONS_DISPATCH",
            help="Where incidents go per department: webhook, e-mail or MQTT topic "
            "(dispatch.yaml); overrides integrations.dispatch of cloud.yaml. Ingest processes "
            "read integrations.dispatch: set it there when ingest runs apart.",
            exists=True,
            dir_okay=False,
        ),
    ] = None,
) -> None:
    """Serve the operations API (and, unless --no-ingest, the ingestor in the same process).

    With --sources / --dispatch it also runs the integration hub: connectors that bring other
    city systems' records in, and dispatch of incidents to department systems.

    Example: cityops cloud serve --config cloud.yaml --sources sources.yaml --dispatch dispatch.yaml

    Example (scaled, PostgreSQL): cityops cloud serve --config cloud.yaml --no-ingest --workers 2
    """
    import uvicorn

    from cloud.api.logs import log_config

    _configure_logging(log_level)
    settings = _settings(config)
    if workers > 1 and not no_ingest:
        typer.echo(
            "--workers needs --no-ingest: N API processes would run N ingestors with one MQTT "
            "client id; run them with `cityops cloud ingest --workers N` instead",
            err=True,
        )
        raise typer.Exit(2)
    if workers > 1 and not settings.cloud.database_url.startswith("postgresql"):
        typer.echo(
            f"--workers {workers}: database_url is {settings.cloud.database_url.split(':')[0]}; "
            "several API processes share incidents and the live stream through PostgreSQL "
            "(postgresql+psycopg://...)",
            err=True,
        )
        raise typer.Exit(2)
    options = ServeOptions(
        config=config.resolve() if config else None,
        ingest=not no_ingest,
        sources=sources.resolve() if sources else None,
        dispatch=dispatch.resolve() if dispatch else None,
        log_level=log_level,
    )
    listen = {
        "host": host or settings.api.host,
        "port": port or settings.api.port,
        "log_level": log_level.lower(),
        "log_config": log_config(log_level),
    }
    if workers > 1:
        from cloud.api.multiproc import shared_metrics_dir

        os.environ[SERVE_ENV] = options.model_dump_json()
        with shared_metrics_dir():  # /metrics adds up every worker's counters
            uvicorn.run("cloud.api.cli:app_from_env", factory=True, workers=workers, **listen)  # type: ignore[arg-type]
        return
    try:
        app = build_served_app(options)
    except (ValueError, OSError) as exc:
        typer.echo(f"invalid integration settings: {exc}", err=True)
        raise typer.Exit(2) from exc
    uvicorn.run(app, **listen)  # type: ignore[arg-type]


db_app = typer.Typer(
    help="The state database's schema (Alembic migrations).\n\n"
    "Example: cityops cloud db upgrade --config cloud.yaml",
    no_args_is_help=True,
)


@db_app.command("upgrade")
def db_upgrade(config: ConfigOption = None) -> None:
    """Apply every migration not yet applied (a database from before migrations is adopted)."""
    from cloud.db.base import make_engine
    from cloud.db.schema import upgrade

    engine = make_engine(_settings(config).cloud.database_url)
    try:
        before, after = upgrade(engine)
    finally:
        engine.dispose()
    typer.echo(f"schema {before or 'unversioned'} -> {after}")


@db_app.command("current")
def db_current(config: ConfigOption = None) -> None:
    """Print the schema revision of the database and the newest one this version knows."""
    from cloud.db.base import make_engine
    from cloud.db.schema import current, head

    engine = make_engine(_settings(config).cloud.database_url)
    try:
        revision = current(engine)
    finally:
        engine.dispose()
    state = "up to date" if revision == head() else "behind: run `cityops cloud db upgrade`"
    typer.echo(f"{revision or 'unversioned'} (head {head()}, {state})")
