"""Write the broker's password file and ACL from the device registry, then make it reload."""

import os
import signal
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session

from cloud.broker.acl import AclSpec, ServiceAccount, render_acl
from cloud.broker.passwords import password_file
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


def _atomic_write(path: Path, text: str) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(text)
    tmp.chmod(0o600)
    tmp.replace(path)


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
) -> None:
    """Regenerate both files from the registry and signal the broker (if its pid is known)."""
    devices = list(session.scalars(select(Device)))
    passwd, acl = render_files(devices, services)
    _atomic_write(files.passwd, passwd)
    _atomic_write(files.acl, acl)
    reload_broker(files)


def reload_broker(files: BrokerFiles) -> bool:
    if files.pid_file is None or not files.pid_file.exists():
        return False
    try:
        os.kill(int(files.pid_file.read_text().strip()), signal.SIGHUP)
    except (ValueError, ProcessLookupError):
        return False
    return True
