"""The edge agent: the detection pipeline feeding the MQTT uplink (``cityops edge run``).

``Agent`` owns the outbox and the uplink and runs an ``EventProducer`` (the pipeline loop, or a
test producer) until it ends or ``stop`` is set; then it flushes, says ``offline`` and returns.
"""

import logging
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from edge.settings import EdgeSettings
from edge.sink import EventSink, JsonlSink
from edge.uplink.mqtt import MqttUplink, check_tls_files
from edge.uplink.outbox import Outbox
from edge.uplink.roles import DeviceRoles, PipelineHealth
from edge.uplink.settings import UplinkSettings
from shared.config import DeviceConfig

if TYPE_CHECKING:
    from edge.debug.overlay import Annotator
    from edge.pipeline import Pipeline

logger = logging.getLogger(__name__)


class EventProducer(Protocol):
    def run(self, sink: EventSink, stop: threading.Event) -> None:
        """Emit events to *sink* until *stop* is set or the input ends."""


@dataclass(frozen=True, slots=True)
class AgentResult:
    outbox_depth: int
    """Messages still on disk at exit; they go out at the next start."""
    published: int
    acked: int


def resolve_uplink_paths(uplink: UplinkSettings, base_dir: Path | None) -> UplinkSettings:
    """Relative outbox and TLS paths are relative to the config file, not the working dir."""
    if base_dir is None:
        return uplink

    def fix(path: Path) -> Path:
        return path if path.is_absolute() else (base_dir / path).resolve()

    update: dict[str, object] = {
        "outbox": uplink.outbox.model_copy(update={"path": fix(uplink.outbox.path)})
    }
    if uplink.tls is not None:
        tls = uplink.tls
        update["tls"] = tls.model_copy(
            update={
                "ca_file": fix(tls.ca_file),
                "cert_file": None if tls.cert_file is None else fix(tls.cert_file),
                "key_file": None if tls.key_file is None else fix(tls.key_file),
            }
        )
    return uplink.model_copy(update=update)


class Agent:
    def __init__(
        self,
        device_id: str,
        uplink: UplinkSettings | None,
        producer: EventProducer,
        roles: DeviceRoles | None = None,
        *,
        software: str | None = None,
        events_out: Path | None = None,
    ) -> None:
        if uplink is None and events_out is None:
            raise ValueError("uplink: give an uplink section, or events_out for a JSON-lines file")
        self.device_id = device_id
        self.uplink_settings = uplink
        self.producer = producer
        self.roles = roles or DeviceRoles()
        self.software = software
        self.events_out = events_out

    def run(self, stop: threading.Event) -> AgentResult:
        if self.uplink_settings is None:
            return self._run_local(stop)
        outbox = Outbox(self.uplink_settings.outbox)
        logger.info(
            "agent %s: outbox %s holds %d message(s) from before",
            self.device_id,
            self.uplink_settings.outbox.path,
            outbox.depth,
        )
        uplink = MqttUplink(
            self.uplink_settings, self.device_id, outbox, self.roles, software=self.software
        )
        uplink.start()
        try:
            self.producer.run(uplink, stop)
        finally:
            uplink.stop()
            counters = uplink.counters()
            result = AgentResult(outbox.depth, counters.published, counters.acked)
            outbox.close()
        logger.info(
            "agent %s stopped: %d published, %d acknowledged, %d left in the outbox",
            self.device_id,
            result.published,
            result.acked,
            result.outbox_depth,
        )
        return result

    def _run_local(self, stop: threading.Event) -> AgentResult:
        """No uplink configured: events go to the ``events_out`` JSON-lines file."""
        assert self.events_out is not None  # noqa: S101 - checked in __init__
        logger.info("agent %s: no uplink, events go to %s", self.device_id, self.events_out)
        with JsonlSink(self.events_out) as sink:
            self.producer.run(sink, stop)
        return AgentResult(outbox_depth=0, published=sink.count, acked=0)


DEBUG_MAX_SIDE = 960
"""The debug view is larger than event snapshots (labels must be readable), still ≤ 96 KiB."""


class PipelineHandle:
    """The current ``Pipeline`` behind stable roles; ``reload`` swaps in a freshly built one."""

    def __init__(self, config_path: Path | None, settings: EdgeSettings) -> None:
        self.config_path = config_path
        self.settings = settings
        self.pipeline, self.annotator = self._build(settings)
        self._restart = threading.Event()
        self._lock = threading.Lock()

    @staticmethod
    def _build(settings: EdgeSettings) -> tuple["Pipeline", "Annotator"]:
        from edge.debug.overlay import Annotator
        from edge.pipeline import Pipeline

        pipeline = Pipeline.from_settings(settings)
        annotator = Annotator(pipeline.blurrer)  # keeps the last view for debug_snapshot
        pipeline.observer = annotator.observe
        return pipeline, annotator

    # -- roles for the uplink

    @property
    def config_version(self) -> int:
        return self.pipeline.config_version

    def apply_config(self, cfg: DeviceConfig) -> None:
        self.pipeline.apply_config(cfg)

    def latest_jpeg(self, camera_id: str | None = None) -> bytes | None:
        return self.pipeline.latest_jpeg(camera_id)

    def debug_jpeg(self, camera_id: str | None = None) -> bytes | None:
        """The debug view of the latest frame (faces pixelated first), as a bounded JPEG."""
        from edge.privacy.snapshot import encode_jpeg

        image = self.annotator.render(camera_id)
        if image is None:
            return None
        quality = self.settings.snapshot.quality
        return encode_jpeg(image, max_side=DEBUG_MAX_SIDE, quality=quality)[0]

    def health(self) -> PipelineHealth:
        stats = self.pipeline.stats()
        return PipelineHealth(
            fps=stats.fps, inference_ms=stats.inference_ms, cameras=tuple(stats.cameras)
        )

    def reload(self) -> str:
        """Re-read the config file and restart the pipeline stages with it.

        The zones the cloud sent last stay in force when they are newer than the file's.
        Uplink settings (broker, credentials) are only re-read at the next start.
        """
        if self.config_path is None:
            raise ValueError("reload: the agent was not started from a config file")
        settings = EdgeSettings.from_yaml(self.config_path)
        if settings.device_id != self.settings.device_id:
            raise ValueError("device_id: a reload cannot change the device id")
        fresh, annotator = self._build(settings)
        current = self.pipeline.config
        if current.version > fresh.config_version:
            fresh.apply_config(current)
        with self._lock:
            self.pipeline, self.annotator, self.settings = fresh, annotator, settings
        self._restart.set()
        logger.info("reload: pipeline rebuilt from %s", self.config_path)
        return f"reloaded {self.config_path.name}; config version {fresh.config_version}"

    def roles(self) -> DeviceRoles:
        return DeviceRoles(config=self, snapshot=self, health=self.health, reload=self.reload)

    # -- the producer

    def run(self, sink: EventSink, stop: threading.Event) -> None:
        from edge.pipeline import run

        while not stop.is_set():
            self._restart.clear()
            run_stop = threading.Event()
            watcher = threading.Thread(
                target=_either, args=(stop, self._restart, run_stop), daemon=True
            )
            watcher.start()
            summary = run(self.pipeline, sink, run_stop)
            run_stop.set()
            watcher.join()
            logger.info(
                "pipeline run ended: %d frames at %.1f fps, events %s",
                summary.frames,
                summary.fps,
                summary.events,
            )
            if not self._restart.is_set():
                return


def _either(a: threading.Event, b: threading.Event, out: threading.Event) -> None:
    """Set *out* as soon as *a* or *b* is set (or *out* is set by its owner)."""
    while not out.is_set():
        if a.wait(0.1) or b.is_set():
            out.set()


def build_agent(config_path: Path, *, software: str | None = None) -> Agent:
    """The agent of ``cityops edge run --config FILE``; raises ``ValueError`` naming the field."""
    settings = EdgeSettings.from_yaml(config_path)
    if settings.uplink is None and settings.events_out is None:
        raise ValueError(
            f"{config_path}: uplink: `edge run` needs an uplink section "
            "(or events_out, to write events to a JSON-lines file)"
        )
    uplink = None
    if settings.uplink is not None:
        uplink = resolve_uplink_paths(settings.uplink, settings.base_dir)
        check_tls_files(uplink)
    handle = PipelineHandle(config_path, settings)
    return Agent(
        settings.device_id,
        uplink,
        handle,
        handle.roles(),
        software=software,
        events_out=settings.events_out,
    )
