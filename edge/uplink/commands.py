"""The small dispatcher for what arrives on ``config`` and ``cmd``; every answer is an ack."""

import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol, runtime_checkable

from edge.uplink.roles import DeviceRoles, SnapshotSource
from shared.clock import utcnow
from shared.codec import decode
from shared.commands import Command, CommandAck, CommandName
from shared.config import DeviceConfig
from shared.errors import ContractError
from shared.events import Snapshot
from shared.limits import MAX_SNAPSHOT_BYTES, MAX_TEXT

logger = logging.getLogger(__name__)

_SOF_MARKERS = frozenset({0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE})


@dataclass(frozen=True, slots=True)
class ImageSize:
    width: int
    height: int


def jpeg_size(data: bytes) -> ImageSize:
    """Width and height from a JPEG's start-of-frame header (no image library needed)."""
    if not data.startswith(b"\xff\xd8"):
        raise ValueError("snapshot: not a JPEG")
    i = 2
    while i + 9 < len(data):
        if data[i] != 0xFF:  # noqa: PLR2004
            i += 1
            continue
        marker = data[i + 1]
        if marker in _SOF_MARKERS:
            height = int.from_bytes(data[i + 5 : i + 7], "big")
            width = int.from_bytes(data[i + 7 : i + 9], "big")
            return ImageSize(width=width, height=height)
        if marker == 0xFF or 0xD0 <= marker <= 0xD9:  # noqa: PLR2004 - fill byte, RSTn, SOI/EOI
            i += 1 if marker == 0xFF else 2  # noqa: PLR2004
            continue
        i += 2 + int.from_bytes(data[i + 2 : i + 4], "big")
    raise ValueError("snapshot: JPEG has no frame header")


def _short(text: str) -> str:
    return text if len(text) <= MAX_TEXT else text[: MAX_TEXT - 1] + "…"


def _version_of(payload: bytes) -> int | None:
    """Best-effort version of a config that failed validation, so the ack can name it."""
    try:
        value = json.loads(payload).get("version")
    except (ValueError, AttributeError):
        return None
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else None


@runtime_checkable
class DebugSnapshotSource(Protocol):
    def debug_jpeg(self, camera_id: str | None = None) -> bytes | None: ...


def _take(source: SnapshotSource, command: Command) -> bytes | None:
    if command.name is not CommandName.DEBUG_SNAPSHOT:
        return source.latest_jpeg(command.camera_id)
    if not isinstance(source, DebugSnapshotSource):
        raise ValueError("name: this agent has no debug view")  # noqa: TRY004 - an answer
    return source.debug_jpeg(command.camera_id)


class CommandDispatcher:
    """Turns a ``config`` or ``cmd`` payload into the ``CommandAck`` to publish on ``cmd/ack``."""

    def __init__(
        self, device_id: str, roles: DeviceRoles, *, clock: Callable[[], datetime] = utcnow
    ) -> None:
        self.device_id = device_id
        self.roles = roles
        self._clock = clock
        self._applied: DeviceConfig | None = None

    @property
    def applied(self) -> DeviceConfig | None:
        """The last config this dispatcher applied."""
        return self._applied

    @property
    def config_version(self) -> int | None:
        target = self.roles.config
        return None if target is None else target.config_version

    def _ack(
        self, name: CommandName, *, ok: bool, message: str = "", **extra: object
    ) -> CommandAck:
        return CommandAck.model_validate(
            {
                "device_id": self.device_id,
                "name": name,
                "ok": ok,
                "ts": self._clock(),
                "message": _short(message),
                **extra,
            }
        )

    def on_config(self, payload: bytes) -> CommandAck | None:
        """Validate and apply a ``DeviceConfig``; None for an empty (cleared) retained message."""
        if not payload:
            return None
        try:
            cfg = decode(DeviceConfig, payload)
        except ContractError as exc:
            logger.warning("config refused: %s", exc)
            return self._ack(
                CommandName.CONFIG,
                ok=False,
                message=f"{exc.field}: {exc.reason}",
                config_version=_version_of(payload),
            )
        # The retained config comes again after every reconnect: acknowledge, do not re-apply.
        problem = None if cfg == self._applied else self._apply(cfg)
        return self._ack(
            CommandName.CONFIG,
            ok=problem is None,
            message=problem or "",
            config_version=cfg.version,
        )

    def _apply(self, cfg: DeviceConfig) -> str | None:
        """Apply *cfg*; the reason it was refused, or None."""
        if cfg.device_id != self.device_id:
            return f"device_id: config is for {cfg.device_id!r}, this is {self.device_id!r}"
        target = self.roles.config
        if target is None:
            return "payload: this agent runs no pipeline"
        if cfg.version < target.config_version:
            return f"version: {cfg.version} is older than the applied {target.config_version}"
        try:
            target.apply_config(cfg)
        except ValueError as exc:
            logger.warning("config version %s refused: %s", cfg.version, exc)
            return str(exc)
        self._applied = cfg
        logger.info("config version %s applied", cfg.version)
        return None

    def on_command(self, payload: bytes) -> CommandAck | None:
        """Run a ``Command``; None when it is too broken to answer (no id to answer to)."""
        try:
            command = decode(Command, payload)
        except ContractError as exc:
            logger.warning("command refused: %s", exc)
            return None
        if command.device_id != self.device_id:
            return self._ack(
                command.name,
                ok=False,
                command_id=command.id,
                message=f"device_id: command is for {command.device_id!r}",
            )
        if command.name in {CommandName.SNAPSHOT, CommandName.DEBUG_SNAPSHOT}:
            return self._snapshot(command)
        if command.name is CommandName.RELOAD:
            return self._reload(command)
        return self._ack(
            command.name,
            ok=False,
            command_id=command.id,
            message="name: configs are sent on the config topic, not as commands",
        )

    def _snapshot(self, command: Command) -> CommandAck:
        source = self.roles.snapshot
        try:
            jpeg = None if source is None else _take(source, command)
        except ValueError as exc:  # e.g. no face model: no image may leave
            return self._ack(command.name, ok=False, command_id=command.id, message=str(exc))
        if jpeg is None:
            return self._ack(
                command.name, ok=False, command_id=command.id, message="camera_id: no frame yet"
            )
        if len(jpeg) > MAX_SNAPSHOT_BYTES:
            return self._ack(
                command.name,
                ok=False,
                command_id=command.id,
                message=f"snapshot: {len(jpeg)} bytes exceeds {MAX_SNAPSHOT_BYTES}",
            )
        try:
            size = jpeg_size(jpeg)
        except ValueError as exc:
            return self._ack(command.name, ok=False, command_id=command.id, message=str(exc))
        snapshot = Snapshot(data=jpeg, width=size.width, height=size.height)
        return self._ack(
            command.name,
            ok=True,
            command_id=command.id,
            snapshot=snapshot,
            config_version=self.config_version,
        )

    def _reload(self, command: Command) -> CommandAck:
        if self.roles.reload is None:
            return self._ack(
                command.name, ok=False, command_id=command.id, message="name: reload not supported"
            )
        try:
            message = self.roles.reload()
        except ValueError as exc:
            return self._ack(command.name, ok=False, command_id=command.id, message=str(exc))
        return self._ack(
            command.name,
            ok=True,
            command_id=command.id,
            message=message,
            config_version=self.config_version,
        )
