"""Write the broker's password file and ACL from the device registry, then make it reload."""

import os
import signal
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from pydantic import SecretStr
from sqlalchemy import select
from sqlalchemy.orm import Session

from cloud.broker.acl import AclSpec, ServiceAccount, ServiceRole, render_acl
from cloud.broker.passwords import hash_password, password_file, verify_password
from cloud.db.devices import Device


@dataclass(frozen=True, slots=True)
class ServiceCredential:
    account: ServiceAccount
    password_hash: str


@dataclass(frozen=True, slots=True)
class BrokerFiles:
    passwd: Path
    acl: Path
    pid_file: Path | None = None
    """Mosquitto's ``pid_file``; SIGHUP makes it re-read the password and ACL files."""


@dataclass(frozen=True, slots=True)
class SyncResult:
    accounts: int
    """Lines in the password file: service accounts plus active, provisioned devices."""
    changed: bool
    """False when both files already held exactly this (nothing was written)."""


def service_role(name: str) -> ServiceRole:
    """The role of a service account named in ``api.broker_files.services``, by its suffix."""
    if name.endswith("-ingest"):
        return ServiceRole.INGEST
    if name.endswith("-admin"):
        return ServiceRole.ADMIN
    if name.endswith("-dispatch"):
        return ServiceRole.DISPATCH
    if name.endswith("-incidents"):
        return ServiceRole.INCIDENTS
    # The API account: ``cloud serve`` ingests in-process by default, so it also confirms
    # stored events to devices (``event/ack``).
    return ServiceRole.SERVE


def service_credentials(
    passwords: Mapping[str, SecretStr],
    current: Mapping[str, str],
    readers: Mapping[str, Sequence[str]] | None = None,
) -> list[ServiceCredential]:
    """Hashed service accounts; a hash in *current* (the file in place) is kept if it matches.

    Hashes are salted, so hashing again would change the file at every sync; keeping the
    matching ones makes a sync with nothing new write nothing (and reload nothing). *readers*
    (``api.broker_files.incident_readers``) makes an account an incidents reader of those
    departments only.
    """
    readers = readers or {}
    unknown = sorted(set(readers) - set(passwords))
    if unknown:
        raise ValueError(f"incident_readers: {unknown[0]!r} is not in services")
    credentials = []
    for name, password in passwords.items():
        clear = password.get_secret_value()
        kept = current.get(name)
        hashed = kept if kept and verify_password(clear, kept) else hash_password(clear)
        if name in readers:
            account = ServiceAccount(name, ServiceRole.INCIDENTS, tuple(readers[name]))
        else:
            account = ServiceAccount(name, service_role(name))
        credentials.append(ServiceCredential(account, hashed))
    return credentials


def _atomic_write(path: Path, text: str) -> bool:
    """Replace *path* by *text*, mode 0600; False (and no write) when it already holds it."""
    try:
        if path.read_text() == text and path.stat().st_mode & 0o777 == 0o600:  # noqa: PLR2004
            return False
    except FileNotFoundError:
        pass
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(text)
    tmp.chmod(0o600)
    tmp.replace(path)
    return True


def render_files(
    devices: Sequence[Device], services: Sequence[ServiceCredential]
) -> tuple[str, str]:
    """(password file, ACL) for the active devices and the service accounts."""
    entries = {s.account.username: s.password_hash for s in services}
    for device in devices:
        if device.revoked or not device.mqtt_password_hash:
            continue
        if device.id in entries:
            raise ValueError(f"device id {device.id!r} collides with a service account")
        entries[device.id] = device.mqtt_password_hash
    return password_file(entries), render_acl(AclSpec(services=[s.account for s in services]))


def sync_broker(
    session: Session, files: BrokerFiles, services: Sequence[ServiceCredential]
) -> SyncResult:
    """Regenerate both files from the registry and signal the broker (if its pid is known)."""
    devices = list(session.scalars(select(Device)))
    passwd, acl = render_files(devices, services)
    changed = _atomic_write(files.passwd, passwd)
    changed = _atomic_write(files.acl, acl) or changed
    reload_broker(files)
    return SyncResult(accounts=passwd.count("\n"), changed=changed)


def reload_broker(files: BrokerFiles) -> bool:
    if files.pid_file is None or not files.pid_file.exists():
        return False
    try:
        os.kill(int(files.pid_file.read_text().strip()), signal.SIGHUP)
    except (ValueError, ProcessLookupError):
        return False
    return True
