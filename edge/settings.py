"""``EdgeSettings``: the camera unit's config file (YAML), read once at start.

Paths in the file are relative to the file itself; a camera ``source`` may start with
``material:`` to name a file under the provided material folder (``cityops.paths``), so the
example configs never carry absolute paths.
"""

from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal, Self

import yaml
from pydantic import BaseModel, ConfigDict, Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from cityops import paths
from cityops.settings_file import SettingsFileError, build, layered, read_mapping
from edge.uplink.settings import UplinkSettings
from shared.base import DeviceId, LocalId, UtcDatetime
from shared.config import DeviceConfig
from shared.events import Location

MATERIAL_PREFIX = "material:"
DEFAULT_REPLAY_START = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)
"""Base time of file replays when none is given: in the past, so events validate."""


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class CameraSettings(_Section):
    id: LocalId = Field(description="Camera id; zones in the device config refer to it.")
    source: str = Field(
        min_length=1,
        description=(
            "Video source for OpenCV: a file path (relative to this file, or 'material:data/...'),"
            " an rtsp:// or http:// URL, a USB camera index such as '0', or a GStreamer pipeline"
            " ending in 'appsink' (Jetson CSI). Ignored when kind is 'picamera2'."
        ),
    )
    kind: Literal["opencv", "picamera2"] = Field(
        default="opencv", description="'picamera2' uses the Raspberry Pi camera stack (apt)."
    )
    replay: Literal["realtime", "fast"] = Field(
        default="realtime",
        description="For files: pace frames at the video's own rate, or as fast as possible.",
    )
    loop: bool = Field(default=False, description="For files: start again at the end.")
    width: int | None = Field(
        default=None, ge=16, le=8192, description="Requested capture width (live sources)."
    )
    height: int | None = Field(
        default=None, ge=16, le=8192, description="Requested capture height (live sources)."
    )
    fps: float | None = Field(
        default=None, gt=0.0, le=240.0, description="Requested capture rate (live sources)."
    )

    def resolved_source(self, base_dir: Path | None = None) -> str:
        """The source with ``material:`` and relative file paths made absolute."""
        src = self.source
        if src.startswith(MATERIAL_PREFIX):
            return str(paths.material_dir() / src.removeprefix(MATERIAL_PREFIX))
        if _looks_like_path(src) and base_dir is not None and not Path(src).is_absolute():
            return str((base_dir / src).resolve())
        return src


def _looks_like_path(src: str) -> bool:
    return "://" not in src and not src.isdigit() and "!" not in src


class DetectorSettings(_Section):
    type: Literal["tflite", "edgetpu"] = Field(
        default="tflite",
        description="Backend: 'tflite' (ai-edge-litert, else tflite_runtime) on the CPU, or "
        "'edgetpu' (same runtime with the libedgetpu delegate; needs an Edge TPU model).",
    )
    model_path: Path | None = Field(
        default=None, description="TFLite model; default: the provided models/detect.tflite."
    )
    labels_path: Path | None = Field(
        default=None, description="Label file, one per line; default: models/labelmap.txt."
    )
    label_offset: int = Field(
        default=1,
        ge=0,
        le=10,
        description="label = lines[class_id + label_offset] (1 for the COCO SSD labelmap).",
    )
    threads: int = Field(default=2, ge=1, le=64, description="Interpreter CPU threads.")
    min_score: float = Field(
        default=0.35,
        ge=0.0,
        le=1.0,
        description="Detections below this score are dropped before tracking.",
    )

    def model_file(self) -> Path:
        return self.model_path if self.model_path is not None else paths.model_path()

    def labels_file(self) -> Path:
        return self.labels_path if self.labels_path is not None else paths.labels_path()


class MotionSettings(_Section):
    enabled: bool = Field(
        default=True, description="Run the detector only on regions where something changed."
    )
    threshold: int = Field(
        default=18, ge=1, le=255, description="Grey-level difference that counts as change."
    )
    min_area: float = Field(
        default=0.0004,
        ge=0.0,
        le=1.0,
        description="Smallest changed area (fraction of the frame) that wakes the detector.",
    )
    keyframe_s: float = Field(
        default=2.0,
        gt=0.0,
        le=600.0,
        description="Run the detector at least this often even without motion (refresh).",
    )


class RegionSettings(_Section):
    full_frame: bool = Field(default=True, description="Run the detector on the whole frame.")
    zone_crops: bool = Field(
        default=True,
        description="Also run it on a crop around each zone, so small and distant objects "
        "(bottom-row parked cars) are found.",
    )
    crop_margin: float = Field(
        default=0.25,
        ge=0.0,
        le=2.0,
        description="Margin added around a zone's bounding box, as a fraction of its size.",
    )
    tiles: int = Field(
        default=1, ge=1, le=4, description="Split the frame into N×N overlapping tiles (1 = off)."
    )


class StaticSettings(_Section):
    enabled: bool = Field(
        default=True,
        description="Dual background model (long- vs short-term) that finds new stationary "
        "objects the detector does not know (bags); needed by abandoned_watch zones.",
    )
    scale_width: int = Field(
        default=320, ge=64, le=1920, description="Width the frame is reduced to for the model."
    )
    long_term_s: float = Field(
        default=120.0, gt=0.0, description="Time constant of the long-term background."
    )
    short_term_s: float = Field(
        default=1.5, gt=0.0, description="Time constant of the short-term background."
    )
    threshold: int = Field(default=25, ge=1, le=255, description="Foreground grey difference.")
    min_area: float = Field(
        default=0.0008, ge=0.0, le=1.0, description="Smallest static blob (fraction of frame)."
    )
    max_area: float = Field(
        default=0.03, ge=0.0, le=1.0, description="Largest static blob (fraction of frame)."
    )
    settle_s: float = Field(
        default=2.0, ge=0.0, description="A blob must be static this long to become a candidate."
    )


class SnapshotSettings(_Section):
    max_side: int = Field(
        default=480, ge=64, le=2048, description="Longest side of a snapshot JPEG, pixels."
    )
    quality: int = Field(default=80, ge=20, le=95, description="JPEG quality.")
    blur_faces: bool = Field(
        default=True, description="Blur faces before any image leaves the device."
    )
    face_model_path: Path | None = Field(
        default=None,
        description="BlazeFace 'back' model (face_detection_back.tflite). Default: the one "
        "beside the detector (the balena release puts it there), else the one `cityops models "
        "fetch` wrote to $CITYOPS_MODELS_DIR or ~/.cache/cityops/models.",
    )
    privacy_audit: Path | None = Field(
        default=None,
        description="Audits and the demo: count faces with an independent detector (BlazeFace "
        "full range, not the blurring model) before and after blurring every image that "
        "leaves, and append the counts (never an image) to this JSON-lines file. Costs tens "
        "of ms per snapshot.",
    )
    without_face_model: Literal["refuse", "heads_only"] = Field(
        default="refuse",
        description="blur_faces is on but no face model is found: 'refuse' sends no image at "
        "all (events still go, without snapshot); 'heads_only' pixelates only the heads of "
        "detected persons and logs that on every image.",
    )


class EdgeSettings(BaseSettings):
    """The agent's configuration (``cityops edge run --config FILE``)."""

    model_config = SettingsConfigDict(
        env_prefix="CITYOPS_EDGE_", env_nested_delimiter="__", extra="forbid"
    )

    device_id: DeviceId = Field(description="This device's id (also its MQTT username).")
    location: Location | None = Field(
        default=None, description="Where the unit is mounted (WGS84), copied into events."
    )
    cameras: list[CameraSettings] = Field(
        min_length=1, max_length=16, description="Frame sources, one per camera id."
    )
    detector: DetectorSettings = Field(
        default_factory=DetectorSettings, description="Object detector."
    )
    motion: MotionSettings = Field(default_factory=MotionSettings, description="Motion gating.")
    regions: RegionSettings = Field(
        default_factory=RegionSettings, description="Where in the frame the detector runs."
    )
    static: StaticSettings = Field(
        default_factory=StaticSettings, description="Static-foreground stage (left objects)."
    )
    snapshot: SnapshotSettings = Field(
        default_factory=SnapshotSettings, description="Snapshot crops attached to events."
    )
    device_config: DeviceConfig | None = Field(
        default=None,
        description="Initial zones, lines and rule parameters (the cloud may replace them on "
        "the retained config topic). device_id and version may be left out.",
    )
    device_config_path: Path | None = Field(
        default=None, description="Or: a YAML/JSON file holding the initial device config."
    )
    start_time: UtcDatetime | None = Field(
        default=None,
        description="File replay: wall time of video time 0 (events are stamped base + video "
        "time). Default 2026-01-05T09:00:00Z. Live sources always use the clock.",
    )
    camera_down_s: float = Field(
        default=5.0, gt=0.0, le=3600.0, description="No frame for this long: camera is 'down'."
    )
    uplink: UplinkSettings | None = Field(
        default=None, description="MQTT uplink; without it events go to a JSON-lines file."
    )
    events_out: Path | None = Field(
        default=None, description="JSON-lines file for events when there is no uplink."
    )
    base_dir: Path | None = Field(
        default=None,
        exclude=True,
        description="Folder relative paths are resolved against (set by from_yaml).",
    )

    @model_validator(mode="before")
    @classmethod
    def _fill_device_config(cls, data: Any) -> Any:
        if isinstance(data, dict) and isinstance(data.get("device_config"), dict):
            cfg = dict(data["device_config"])
            cfg.setdefault("device_id", data.get("device_id"))
            cfg.setdefault("version", 0)
            data = {**data, "device_config": cfg}
        return data

    @model_validator(mode="after")
    def _check(self) -> Self:
        if self.device_config is not None and self.device_config_path is not None:
            raise ValueError("device_config_path: give device_config or its path, not both")
        ids = [c.id for c in self.cameras]
        if len(ids) != len(set(ids)):
            raise ValueError("cameras: camera ids must be unique")
        if self.device_config is not None:
            if self.device_config.device_id != self.device_id:
                raise ValueError(
                    f"device_config.device_id: {self.device_config.device_id!r} is not "
                    f"this device ({self.device_id!r})"
                )
            unknown = {c.id for c in self.device_config.cameras} - set(ids)
            if unknown:
                raise ValueError(
                    f"device_config.cameras: unknown camera id(s) {sorted(unknown)}; "
                    f"configured cameras are {ids}"
                )
        return self

    @classmethod
    def from_yaml(cls, path: Path, **overrides: Any) -> Self:
        """Read *path*: ``CITYOPS_EDGE_*`` variables win over the file, *overrides* over both.

        Raises ``SettingsFileError`` (a ``ValueError``) naming the file and the field.
        """
        raw = read_mapping(path)
        base = path.resolve().parent
        data: dict[str, Any] = {**layered(cls, raw, overrides), "base_dir": base}
        cfg_path = data.get("device_config_path")
        if cfg_path is not None:
            cfg_file = _resolve(Path(cfg_path), base)
            try:
                cfg_raw = yaml.safe_load(cfg_file.read_text(encoding="utf-8"))
            except (OSError, yaml.YAMLError) as exc:
                raise SettingsFileError(
                    f"{path}: device_config_path: cannot read {cfg_file}: {exc}"
                ) from exc
            data.pop("device_config_path")
            data["device_config"] = cfg_raw
        return build(cls, path, data).resolved()

    def resolved(self) -> Self:
        """Copy with relative model/label/output paths resolved against ``base_dir``."""
        base = self.base_dir
        if base is None:
            return self
        det = self.detector.model_copy(
            update={
                "model_path": _maybe(self.detector.model_path, base),
                "labels_path": _maybe(self.detector.labels_path, base),
            }
        )
        snap = self.snapshot.model_copy(
            update={
                "face_model_path": _maybe(self.snapshot.face_model_path, base),
                "privacy_audit": _maybe(self.snapshot.privacy_audit, base),
            }
        )
        return self.model_copy(
            update={"detector": det, "snapshot": snap, "events_out": _maybe(self.events_out, base)}
        )

    def initial_config(self) -> DeviceConfig:
        """The device config to start with: the given one, or one camera entry per source."""
        if self.device_config is not None:
            return self.device_config
        from shared.config import CameraConfig

        return DeviceConfig(
            device_id=self.device_id,
            version=0,
            location=self.location,
            cameras=[CameraConfig(id=c.id) for c in self.cameras],
        )

    def replay_start(self) -> datetime:
        return self.start_time if self.start_time is not None else DEFAULT_REPLAY_START


def _resolve(path: Path, base: Path) -> Path:
    return path if path.is_absolute() else (base / path).resolve()


def _maybe(path: Path | None, base: Path) -> Path | None:
    return None if path is None else _resolve(path, base)
