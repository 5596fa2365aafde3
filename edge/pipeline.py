"""The edge pipeline: frame → motion gate → detector on regions → tracker → rules → ``Event``.

``Pipeline`` holds one ``_Camera`` (gate, static model, tracker, rule engine) per camera id and
turns each ``Frame`` into wire events. ``run`` reads the configured sources and hands events to
an ``EventSink`` until told to stop or the files end.
"""

import logging
import queue
import threading
import time
from collections import Counter, deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from edge.camera.frame import Frame, Image
from edge.camera.source import FrameSource, open_source
from edge.debug.overlay import FrameView
from edge.detect.base import Detection, Detector
from edge.detect.regions import FULL_FRAME, Region, tiles, zone_regions
from edge.detect.tflite import TfliteDetector
from edge.motion.gate import MotionGate
from edge.motion.lighting import LightingMonitor
from edge.motion.static import StaticBlob, StaticForeground, StaticParams
from edge.privacy.blurrer import FaceBlurrer
from edge.privacy.faces import SnapshotRefusedError, make_blurrer
from edge.privacy.snapshot import crop_rect, encode_jpeg, snapshot
from edge.rules.engine import RuleEngine, RuleEvent
from edge.settings import EdgeSettings
from edge.sink import EventSink
from edge.track.stillness import StillnessCheck
from edge.track.tracker import Track, Tracker, TrackerParams
from shared.config import CameraConfig, DeviceConfig, ZoneKind
from shared.events import Box, DetectedObject, Event, ModelInfo, Phase, Snapshot
from shared.ids import new_id
from shared.telemetry import CameraHealth, CameraState

logger = logging.getLogger(__name__)

MERGE_IOU = 0.5
STATS_WINDOW = 120


@dataclass(frozen=True, slots=True)
class PipelineStats:
    fps: float
    """Frames processed per second over the last ~120 frames."""
    inference_ms: float
    """Mean detector time per processed frame (all its regions) over the same frames."""
    frames: int
    detector_calls: int
    cameras: tuple[CameraHealth, ...]


@dataclass(frozen=True, slots=True)
class RunSummary:
    frames: int
    seconds: float
    video_seconds: float
    events: dict[str, int]
    detector_calls: int

    @property
    def fps(self) -> float:
        return self.frames / self.seconds if self.seconds > 0 else 0.0


@dataclass(slots=True)
class _Camera:
    config: CameraConfig
    gate: MotionGate
    static: StaticForeground
    tracker: Tracker
    rules: RuleEngine
    stillness: StillnessCheck = field(default_factory=StillnessCheck)
    lighting: LightingMonitor = field(default_factory=LightingMonitor)
    regions: list[Region] = field(default_factory=list)
    cache: dict[Region, tuple[float, list[Detection]]] = field(default_factory=dict)
    shape: tuple[int, int] | None = None
    last_frame: Frame | None = None
    last_tracks: list[Track] = field(default_factory=list)
    last_seen_mono: float | None = None
    times: deque[float] = field(default_factory=lambda: deque(maxlen=STATS_WINDOW))


def _tracker_params(cfg: CameraConfig) -> TrackerParams:
    return TrackerParams(
        stationary_speed=cfg.rules.stationary_max_speed,
        label_groups=(tuple(cfg.rules.vehicle_labels),),
    )


class Pipeline:
    def __init__(
        self,
        settings: EdgeSettings,
        detector: Detector,
        blurrer: FaceBlurrer | None = None,
    ) -> None:
        self.settings = settings
        self.detector = detector
        self.blurrer = blurrer
        self._lock = threading.Lock()
        self._pending: DeviceConfig | None = None
        self._config = settings.initial_config()
        self._check(self._config)
        self._cameras: dict[str, _Camera] = {}
        self._static_params = StaticParams(**settings.static.model_dump(exclude={"enabled"}))
        self._install(self._config)
        self._frames = 0
        self._detector_calls = 0
        self._proc_times: deque[float] = deque(maxlen=STATS_WINDOW)
        self._infer_times: deque[float] = deque(maxlen=STATS_WINDOW)
        self.model = ModelInfo(name=detector.name, version=detector.version)
        self.observer: Callable[[FrameView], None] | None = None
        """Called after every frame with what the pipeline saw (the debug view)."""

    @classmethod
    def from_settings(cls, settings: EdgeSettings) -> "Pipeline":
        det = settings.detector
        detector = TfliteDetector(
            det.model_file(),
            det.labels_file(),
            threads=det.threads,
            min_score=det.min_score,
            label_offset=det.label_offset,
            edgetpu=det.type == "edgetpu",
        )
        return cls(settings, detector, make_blurrer(settings.snapshot))

    # -- configuration ---------------------------------------------------------------------

    @property
    def config_version(self) -> int:
        with self._lock:
            return (self._pending or self._config).version

    @property
    def config(self) -> DeviceConfig:
        with self._lock:
            return self._pending or self._config

    def _check(self, cfg: DeviceConfig) -> None:
        if cfg.device_id != self.settings.device_id:
            raise ValueError(
                f"device_id: config is for {cfg.device_id!r}, this is {self.settings.device_id!r}"
            )
        known = [c.id for c in self.settings.cameras]
        for i, cam in enumerate(cfg.cameras):
            if cam.id not in known:
                raise ValueError(f"cameras[{i}].id: unknown camera {cam.id!r}; known: {known}")

    def apply_config(self, cfg: DeviceConfig) -> None:
        """Validate *cfg* and apply it before the next frame; on error the old one stays.

        Raises ``ValueError`` naming the field (wrong device, unknown camera, older version).
        """
        self._check(cfg)
        with self._lock:
            current = (self._pending or self._config).version
            if cfg.version < current:
                raise ValueError(f"version: {cfg.version} is older than the applied {current}")
            self._pending = cfg

    def _install(self, cfg: DeviceConfig) -> None:
        by_id = {c.id: c for c in cfg.cameras}
        for cam in self.settings.cameras:
            cam_cfg = by_id.get(cam.id, CameraConfig(id=cam.id))
            existing = self._cameras.get(cam.id)
            if existing is None:
                self._cameras[cam.id] = _Camera(
                    config=cam_cfg,
                    gate=MotionGate(self.settings.motion.threshold, self.settings.motion.min_area),
                    static=StaticForeground(self._static_params),
                    tracker=Tracker(_tracker_params(cam_cfg)),
                    rules=RuleEngine(cam_cfg, cfg.timezone),
                )
            else:
                existing.config = cam_cfg
                existing.rules.set_config(cam_cfg, cfg.timezone)
                existing.tracker.params = _tracker_params(cam_cfg)
                existing.regions = []
                existing.cache.clear()
                existing.gate.reset()
        self._config = cfg

    def _swap_pending(self) -> None:
        with self._lock:
            pending, self._pending = self._pending, None
        if pending is not None and pending is not self._config:
            self._install(pending)
            logger.info("config version %s applied", pending.version)

    # -- per frame -------------------------------------------------------------------------

    def _regions(self, cam: _Camera, image: Image) -> list[Region]:
        h, w = image.shape[:2]
        if cam.regions and cam.shape == (h, w):
            return cam.regions
        r = self.settings.regions
        regions: list[Region] = []
        if r.full_frame:
            regions.extend(tiles(r.tiles))
        if r.zone_crops:
            polys = [(z.id, z.polygon) for z in cam.config.zones]
            regions.extend(zone_regions(polys, margin=r.crop_margin, aspect=w / h))
        cam.regions = regions or [FULL_FRAME]
        cam.shape = (h, w)
        cam.cache.clear()
        cam.gate.reset()
        return cam.regions

    def _detect(self, cam: _Camera, frame: Frame) -> list[Detection]:
        motion = self.settings.motion
        cam.gate.observe(frame.image)
        found: list[Detection] = []
        t0 = time.perf_counter()
        for region in self._regions(cam, frame.image):
            cached = cam.cache.get(region)
            fresh = cached is not None and frame.ts - cached[0] < motion.keyframe_s
            if motion.enabled and fresh and cached is not None and not cam.gate.changed(region):
                found.extend(cached[1])  # nothing moved there: the same objects are there
                continue
            dets = self.detector.detect(frame.image, region)
            cam.gate.mark(region)
            self._detector_calls += 1
            cam.cache[region] = (frame.ts, dets)
            found.extend(dets)
        self._infer_times.append(time.perf_counter() - t0)
        return merge(found)

    def process(self, frame: Frame) -> list[Event]:
        """Run every stage on *frame*; returns the events it caused (often none)."""
        self._swap_pending()
        cam = self._cameras.get(frame.camera_id)
        if cam is None:
            raise ValueError(f"camera_id: unknown camera {frame.camera_id!r}")
        t0 = time.perf_counter()
        detections = self._detect(cam, frame)
        tracks = cam.tracker.update(detections, frame.ts)
        grey = cam.gate.detail
        settled = True
        if grey is not None:
            # A sudden light change pauses stillness judgement instead of restarting clocks.
            cam.lighting.observe(grey, frame.ts)
            settled = cam.lighting.settled(frame.ts)
            moved = cam.stillness.moved(tracks, grey, ts=frame.ts, settled=settled)
            if moved:
                cam.tracker.restart_stationary(moved, frame.ts)
                tracks = cam.tracker.tracks()
        blobs: list[StaticBlob] = []
        if self.settings.static.enabled and any(
            z.kind is ZoneKind.ABANDONED_WATCH for z in cam.config.zones
        ):
            blobs = cam.static.update(frame.image, frame.ts, settled=settled)
        fired = cam.rules.evaluate(tracks, blobs, frame.ts, frame.captured_at)
        if self.observer is not None:
            self.observer(FrameView(frame, cam.config, detections, tracks, blobs, grey))
        cam.last_frame, cam.last_tracks = frame, tracks
        cam.last_seen_mono = time.monotonic()
        cam.times.append(cam.last_seen_mono)
        self._frames += 1
        events = [self._to_event(r, frame, cam) for r in fired]
        self._proc_times.append(time.perf_counter() - t0)
        return events

    def _wall(self, frame: Frame, ts: float) -> datetime:
        return frame.captured_at - timedelta(seconds=frame.ts - ts)

    def _to_event(self, r: RuleEvent, frame: Frame, cam: _Camera) -> Event:
        observed = self._wall(frame, r.ts)
        started = min(self._wall(frame, r.started_ts), observed)
        snap = None
        region: dict[str, float] = {}
        if r.phase is Phase.START and cam.config.rules.snapshot:
            people = [t.box for t in cam.last_tracks if t.label in cam.config.rules.person_labels]
            try:
                data, w, h = snapshot(
                    frame.image,
                    r.box,
                    self.blurrer,
                    people=people,
                    max_side=self.settings.snapshot.max_side,
                    quality=self.settings.snapshot.quality,
                )
                snap = Snapshot(data=data, width=w, height=h)
            except SnapshotRefusedError:  # no face model: the event goes, its image does not
                snap = None
            if snap is not None and r.box is not None:
                # Where the crop sits in the frame, so a console can draw boxes and zones on it.
                crop = crop_rect(r.box)
                region = {
                    "snapshot_x1": round(crop.x1, 4),
                    "snapshot_y1": round(crop.y1, 4),
                    "snapshot_x2": round(crop.x2, 4),
                    "snapshot_y2": round(crop.y2, 4),
                }
        objects = [
            DetectedObject(
                label=o.label,
                score=min(max(o.score, 0.0), 1.0),
                box=Box(x1=o.box.x1, y1=o.box.y1, x2=o.box.x2, y2=o.box.y2),
                track_id=o.track_id,
            )
            for o in r.objects[:64]
        ]
        return Event(
            id=new_id(int(observed.timestamp() * 1000)),
            device_id=self.settings.device_id,
            camera_id=r.camera_id,
            kind=r.kind,
            phase=r.phase,
            severity=r.severity,
            started_at=started,
            observed_at=observed,
            ended_at=observed if r.phase is Phase.END else None,
            zone_id=r.zone_id,
            location=self._config.location or self.settings.location,
            objects=objects,
            dwell_s=r.dwell_s,
            snapshot=snap,
            model=self.model,
            summary=r.summary,
            attributes={"episode": r.episode, **r.attributes, **region},
        )

    # -- health and snapshots --------------------------------------------------------------

    def stats(self) -> PipelineStats:
        now = time.monotonic()
        health = []
        for cam_id, cam in self._cameras.items():
            if cam.last_seen_mono is None:
                health.append(CameraHealth(camera_id=cam_id, state=CameraState.UNKNOWN))
                continue
            age = max(0.0, now - cam.last_seen_mono)
            span = cam.times[-1] - cam.times[0] if len(cam.times) > 1 else 0.0
            fps = (len(cam.times) - 1) / span if span > 0 else 0.0
            state = CameraState.DOWN if age > self.settings.camera_down_s else CameraState.OK
            health.append(
                CameraHealth(
                    camera_id=cam_id, state=state, fps=min(fps, 1000.0), last_frame_age_s=age
                )
            )
        busy = sum(self._proc_times)
        fps = len(self._proc_times) / busy if busy > 0 else 0.0
        infer = (
            1000.0 * sum(self._infer_times) / len(self._infer_times) if self._infer_times else 0.0
        )
        return PipelineStats(
            fps=fps,
            inference_ms=infer,
            frames=self._frames,
            detector_calls=self._detector_calls,
            cameras=tuple(health),
        )

    def latest_jpeg(self, camera_id: str | None = None) -> bytes | None:
        """The camera's latest frame as a bounded JPEG, faces and heads blurred."""
        cams = [self._cameras[camera_id]] if camera_id in self._cameras else []
        if camera_id is None:
            cams = list(self._cameras.values())
        for cam in cams:
            frame = cam.last_frame
            if frame is None:
                continue
            people = [t.box for t in cam.last_tracks if t.label in cam.config.rules.person_labels]
            image = frame.image
            if self.blurrer is not None:
                image = self.blurrer.blur(image, people)
            data, _, _ = encode_jpeg(
                image,
                max_side=self.settings.snapshot.max_side,
                quality=self.settings.snapshot.quality,
            )
            return data
        return None


def merge(detections: Sequence[Detection]) -> list[Detection]:
    """One detection per object when a zone crop and the full frame both see it."""
    ordered = sorted(detections, key=lambda d: -d.score)
    kept: list[Detection] = []
    for det in ordered:
        if all(det.box.iou(k.box) < MERGE_IOU for k in kept):
            kept.append(det)
    return kept


# -- the loop ----------------------------------------------------------------------------------


def _reader(source: FrameSource, out: "queue.Queue[Frame | None]", halt: threading.Event) -> None:
    try:
        for frame in source.frames():
            while not halt.is_set():
                try:
                    out.put(frame, timeout=0.5)
                    break
                except queue.Full:
                    continue
            if halt.is_set():
                break
    except Exception:
        logger.exception("camera %s: reader failed", source.camera_id)
    finally:
        if not halt.is_set():
            out.put(None)


def open_sources(settings: EdgeSettings, realtime: bool | None = None) -> list[FrameSource]:
    """Open every configured camera. Fast file replays are stamped from ``replay_start()``."""
    fast = realtime is False or (
        realtime is None and all(c.replay == "fast" for c in settings.cameras)
    )
    start = settings.start_time or (settings.replay_start() if fast else None)
    return [
        open_source(c, base_dir=settings.base_dir, start_time=start, realtime=realtime)
        for c in settings.cameras
    ]


def _drive(
    sources: Sequence[FrameSource], stop: threading.Event, handle: Callable[[Frame], None]
) -> None:
    """Feed frames to *handle*: directly for one file, else through reader threads.

    Live sources go through a thread even alone, so *stop* is seen while one reconnects.
    """
    if len(sources) == 1 and sources[0].is_file:
        for frame in sources[0].frames():
            if stop.is_set():
                return
            handle(frame)
        return
    halt = threading.Event()  # stops the reader threads; the caller's *stop* is theirs
    q: queue.Queue[Frame | None] = queue.Queue(maxsize=4 * len(sources))
    for s in sources:
        threading.Thread(target=_reader, args=(s, q, halt), daemon=True).start()
    ended = 0
    try:
        while ended < len(sources) and not stop.is_set():
            try:
                item = q.get(timeout=0.5)
            except queue.Empty:
                continue
            if item is None:
                ended += 1
            else:
                handle(item)
    finally:
        halt.set()


def run(
    settings_or_pipeline: EdgeSettings | Pipeline,
    sink: EventSink,
    stop: threading.Event,
    *,
    realtime: bool | None = None,
    sources: Sequence[FrameSource] | None = None,
    on_frame: Callable[[Frame], None] | None = None,
) -> RunSummary:
    """Read frames from the configured cameras and emit events to *sink*.

    Stops when *stop* is set or every source has ended. ``realtime`` overrides each camera's
    ``replay`` setting for files; ``sources`` replaces the configured ones (tests, replay).
    """
    pipeline = (
        settings_or_pipeline
        if isinstance(settings_or_pipeline, Pipeline)
        else Pipeline.from_settings(settings_or_pipeline)
    )
    if sources is None:
        sources = open_sources(pipeline.settings, realtime)
    counts: Counter[str] = Counter()
    frames = 0
    video_end = 0.0
    t0 = time.perf_counter()

    def handle(frame: Frame) -> None:
        nonlocal frames, video_end
        for event in pipeline.process(frame):
            if event.phase is Phase.START:
                counts[event.kind.value] += 1
            sink.emit(event)
        frames += 1
        video_end = max(video_end, frame.ts)
        if on_frame is not None:
            on_frame(frame)

    try:
        _drive(sources, stop, handle)
    finally:
        for s in sources:
            s.close()
    return RunSummary(
        frames=frames,
        seconds=time.perf_counter() - t0,
        video_seconds=video_end,
        events=dict(counts),
        detector_calls=pipeline.stats().detector_calls,
    )


__all__ = ["Frame", "Pipeline", "PipelineStats", "RunSummary", "merge", "open_sources", "run"]
