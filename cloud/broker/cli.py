"""``cityops cloud broker``: write the broker's password file and ACL from cloud.yaml and the DB."""

from collections.abc import Mapping
from pathlib import Path

import typer
from pydantic import SecretStr

from cloud.api.cli import ConfigOption, _session, _settings
from cloud.api.settings import ApiSettings
from cloud.settings import BrokerFilesSettings, MqttClientSettings

broker_app = typer.Typer(
    help="The MQTT broker's accounts: password file and ACL from the device registry.\n\n"
    "Example: cityops cloud broker sync --config cloud.yaml",
    no_args_is_help=True,
)


def _fail(message: str, code: int = 2) -> typer.Exit:
    typer.echo(f"error: {message}", err=True)
    return typer.Exit(code)


def _login_mismatches(
    logins: Mapping[str, MqttClientSettings | None], services: Mapping[str, SecretStr]
) -> list[str]:
    """Cloud logins whose password differs from their account's: the broker would refuse them."""
    problems = []
    for where, login in logins.items():
        if login is None or login.username is None or login.password is None:
            continue
        expected = services.get(login.username)
        if (
            expected is not None
            and login.password.get_secret_value() != expected.get_secret_value()
        ):
            problems.append(
                f"{where}.password differs from api.broker_files.services.{login.username}"
            )
    return problems


def _field_of(path: str | None, files: BrokerFilesSettings) -> str:
    """Which setting names the file an ``OSError`` is about (its ``.tmp`` twin included)."""
    acl = {files.acl, Path(f"{files.acl}.tmp")}
    if files.acl.parent != files.passwd.parent:
        acl.add(files.acl.parent)
    return "api.broker_files.acl" if path and Path(path) in acl else "api.broker_files.passwd"


def _checked(settings: ApiSettings, source: str) -> BrokerFilesSettings:
    files = settings.api.broker_files
    if files is None:
        raise _fail(
            f"{source}: api.broker_files is not set: it names the broker's password file "
            "(passwd) and ACL (acl) to write, and the service accounts (services)"
        )
    if not files.services:
        typer.echo(
            f"warning: {source}: api.broker_files.services is empty: no cloud service can log "
            "in to the broker",
            err=True,
        )
    mismatches = _login_mismatches(
        {"mqtt": settings.cloud.mqtt, "api.mqtt": settings.api.mqtt}, files.services
    )
    if mismatches:
        raise _fail(f"{source}: {'; '.join(mismatches)}: the broker would refuse that login")
    return files


def _write(config: Path | None, source: str, files: BrokerFilesSettings) -> None:
    from sqlalchemy.exc import SQLAlchemyError

    from cloud.broker.passwords import read_password_file
    from cloud.broker.registry import BrokerFiles, service_credentials, sync_broker

    try:
        for path in (files.passwd, files.acl):
            path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        credentials = service_credentials(
            files.services, read_password_file(files.passwd), files.incident_readers
        )
        with _session(config) as session:
            result = sync_broker(session, BrokerFiles(files.passwd, files.acl), credentials)
    except ValueError as exc:  # a device id equal to a service name, a ':' in a name
        raise _fail(f"{source}: api.broker_files.services: {exc}") from exc
    except OSError as exc:
        field = _field_of(exc.filename, files)
        raise _fail(f"{source}: {field}: cannot write {exc.filename}: {exc.strerror}") from exc
    except SQLAlchemyError as exc:
        raise _fail(f"{source}: database_url: cannot read the devices: {exc}") from exc
    state = "wrote" if result.changed else "unchanged:"
    typer.echo(
        f"{state} {files.passwd} ({len(credentials)} service accounts, "
        f"{result.accounts - len(credentials)} devices) and {files.acl}"
    )


def _signal(source: str, files: BrokerFilesSettings) -> None:
    from cloud.broker.registry import BrokerFiles, reload_broker

    if files.pid_file is None:
        return  # the broker reloads on its own (compose's watcher, systemd's path unit)
    try:
        reloaded = reload_broker(BrokerFiles(files.passwd, files.acl, files.pid_file))
    except PermissionError as exc:
        raise _fail(
            f"{source}: api.broker_files.pid_file: not allowed to signal the process in "
            f"{files.pid_file} (run as the broker's user, or reload it another way)",
            code=1,
        ) from exc
    if reloaded:
        typer.echo(f"sent SIGHUP to the broker (pid file {files.pid_file})")
    else:
        typer.echo(f"broker not signalled: {files.pid_file} names no running process")


@broker_app.command("sync")
def sync(config: ConfigOption = None) -> None:
    """Write the broker's password file and ACL from the device registry and cloud.yaml.

    Accounts: the devices with MQTT credentials that are not revoked (state database), and the
    service accounts of api.broker_files.services, username -> password (role by name:
    '-ingest' ingest, '-admin' admin, others the API's). Their passwords must be those of
    mqtt.password and api.mqtt.password, and can come from the environment:
    CITYOPS_CLOUD_API__BROKER_FILES__SERVICES='{"cityops-ingest": "..."}'.

    Both files are written 0600 and atomically, and only when their content changes: running
    it again changes nothing. The broker need not run; it gets SIGHUP only when
    api.broker_files.pid_file names a running process. The API rewrites the same files when it
    issues or revokes device credentials.

    Example: cityops cloud broker sync --config cloud.yaml
    """
    source = str(config) if config else "environment (CITYOPS_CLOUD_*)"
    files = _checked(_settings(config), source)
    _write(config, source, files)
    _signal(source, files)
