"""The provisioning bundle: what a technician copies onto the unit (``/data`` on balena).

The folder is 0700 and every file 0600: ``agent.yaml`` and ``credentials.json`` hold the MQTT
password, ``config.json`` the balena device API key.
"""

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from provisioning.errors import InputError

AGENT_FILE = "agent.yaml"
CREDENTIALS_FILE = "credentials.json"
BALENA_CONFIG_FILE = "config.json"
MANIFEST_FILE = "provisioning.json"


@dataclass(frozen=True, slots=True)
class BundleContent:
    agent: Mapping[str, Any]
    credentials: Mapping[str, Any]
    manifest: Mapping[str, Any]
    """No secrets: ids, location, fleet, balena uuid, when; lets a re-run find the device."""
    balena_config: Mapping[str, Any] | None = None


def _write_private(path: Path, text: str) -> None:
    """Create the file 0600 before any byte is written (no window where it is readable)."""
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(text)
    tmp.chmod(0o600)
    tmp.replace(path)


def write_bundle(out_dir: Path, content: BundleContent) -> list[Path]:
    """Write (or overwrite) the bundle; returns the files written."""
    try:
        out_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        out_dir.chmod(0o700)
    except OSError as exc:
        raise InputError(f"--out {out_dir}: cannot create the bundle folder: {exc}") from exc
    files = {
        AGENT_FILE: "# CityOps agent settings written by `cityops provision device`.\n"
        "# Holds the device's MQTT password: keep it private.\n"
        + yaml.safe_dump(dict(content.agent), sort_keys=False),
        CREDENTIALS_FILE: json.dumps(dict(content.credentials), indent=2) + "\n",
        MANIFEST_FILE: json.dumps(dict(content.manifest), indent=2, default=str) + "\n",
    }
    if content.balena_config is not None:
        files[BALENA_CONFIG_FILE] = json.dumps(dict(content.balena_config), indent=2) + "\n"
    written = []
    for name, text in files.items():
        path = out_dir / name
        _write_private(path, text)
        written.append(path)
    return written


def read_manifest(out_dir: Path) -> dict[str, Any] | None:
    path = out_dir / MANIFEST_FILE
    if not path.exists():
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise InputError(f"{path}: unreadable manifest: {exc}") from exc
    return data if isinstance(data, dict) else None
