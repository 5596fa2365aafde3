"""Edge pipeline speed, with same-run baselines on the same clip (issue #3).

Measures on the composed parking clip (mostly static after 12.7 s) with the example config:
- ``detector_calls_per_s``: ``invoke()`` alone on a prepared 300×300 input;
- ``decode_fps``: OpenCV decode only;
- ``decode_detect_fps``: decode + the detector on the same regions the pipeline uses (full frame
  and the zone crops), every frame: the limit the pipeline can reach without gating;
- ``pipeline_fps``: decode + the whole pipeline (gate, detector, tracker, stillness, rules,
  events) with motion gating off, and ``pipeline_gated_fps`` with it on;
- ``tracker_rules_ms_at_50``: tracker + rules per frame with 50 scripted objects, 3 zones, 1 line;
- ``static_ms`` (issue #20): the static-foreground stage per frame (shake alignment, lighting
  normalisation, both models) on the abandoned-bag clip, beside ``detect_ms``, one detector call
  on the same frames: cameras with an ``abandoned_watch`` zone pay it on every frame.
All four consume the clip in interleaved chunks of 25 frames (and the raw invoke rate is
sampled between chunks), so a busy shared machine slows every figure alike.

    .venv/bin/python benchmarks/edge_pipeline.py [--frames 750]
"""

import argparse
import json
import os
import platform
import random
import statistics
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import cv2
import numpy as np

from cityops.paths import REPO_ROOT, data_path
from edge.camera.frame import Frame, Image
from edge.detect.base import Detection
from edge.detect.regions import FULL_FRAME, Rect, zone_regions
from edge.motion.static import StaticForeground
from edge.pipeline import Pipeline
from edge.rules.engine import RuleEngine
from edge.settings import EdgeSettings
from edge.track.tracker import Tracker
from shared.config import CameraConfig, LineConfig, Zone, ZoneKind

CLIP = data_path("parking", "car_parks_in_disabled_bay_composed.mp4")
BAG_CLIP = data_path("abandoned", "aboda_video4.avi")
CONFIG = REPO_ROOT / "edge" / "examples" / "parking-disabled-bay.yaml"
START = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)
FPS = 15.0
W, H = 856, 480


class Mode:
    """One way of consuming the clip, advanced in chunks so every mode sees the same load."""

    def __init__(self, name: str, step: Callable[[Image, int], None]) -> None:
        self.name = name
        self.step = step
        self.cap = cv2.VideoCapture(str(CLIP))
        self.frames = 0
        self.seconds = 0.0

    def advance(self, n: int) -> bool:
        t0 = time.perf_counter()
        for _ in range(n):
            ok, image = self.cap.read()
            if not ok:
                self.seconds += time.perf_counter() - t0
                return False
            self.step(np.asarray(image, dtype=np.uint8), self.frames)
            self.frames += 1
        self.seconds += time.perf_counter() - t0
        return True

    @property
    def fps(self) -> float:
        return self.frames / self.seconds if self.seconds > 0 else 0.0


def make_pipeline(settings: EdgeSettings, *, gated: bool) -> Pipeline:
    motion = settings.motion.model_copy(update={"enabled": gated})
    return Pipeline.from_settings(settings.model_copy(update={"motion": motion}))


def feed(pipe: Pipeline) -> Callable[[Image, int], None]:
    def step(image: Image, index: int) -> None:
        ts = index / FPS
        pipe.process(Frame("lot", image, ts, START + timedelta(seconds=ts), index))

    return step


def invoke_rate(pipe: Pipeline, calls: int) -> tuple[int, float]:
    interp = pipe.detector._interp  # type: ignore[attr-defined]  # noqa: SLF001
    index = interp.get_input_details()[0]["index"]
    interp.set_tensor(index, np.zeros((1, 300, 300, 3), np.uint8))
    t0 = time.perf_counter()
    for _ in range(calls):
        interp.invoke()
    return calls, time.perf_counter() - t0


def tracker_rules_ms(objects: int = 50, frames: int = 600) -> tuple[float, float]:
    """Median and mean ms per frame (the median is robust to preemption on a busy machine)."""
    rnd = random.Random(3)
    poly = [(0.0, 0.5), (0.5, 0.5), (0.5, 1.0), (0.0, 1.0)]
    cam = CameraConfig(
        id="cam",
        zones=[
            Zone(id="np", kind=ZoneKind.NO_PARKING, polygon=poly, dwell_limit_s=5),
            Zone(
                id="crowd",
                kind=ZoneKind.CROWDING,
                polygon=[(0.5, 0.0), (1.0, 0.0), (1.0, 1.0), (0.5, 1.0)],
                max_people=10,
                dwell_limit_s=5,
            ),
            Zone(id="watch", kind=ZoneKind.WATCH, polygon=poly),
        ],
        lines=[LineConfig(id="l", a=(0.0, 0.4), b=(1.0, 0.4))],
    )
    tracker = Tracker()
    rules = RuleEngine(cam, "UTC")
    # Half parked cars, half walking people.
    starts = [(rnd.random() * 0.9, rnd.random() * 0.9) for _ in range(objects)]
    speeds = [(0.0, 0.0) if i % 2 else (rnd.uniform(-0.01, 0.01), 0.005) for i in range(objects)]
    times: list[float] = []
    for f in range(frames):
        ts = f / 15
        dets = []
        for i, ((x, y), (vx, vy)) in enumerate(zip(starts, speeds, strict=True)):
            cx, cy = (x + vx * f) % 0.9, (y + vy * f) % 0.9
            label = "car" if i % 2 else "person"
            dets.append(Detection(label, 0.8, Rect(cx, cy, cx + 0.05, cy + 0.08)))
        t0 = time.perf_counter()
        tracks = tracker.update(dets, ts)
        rules.evaluate(tracks, [], ts, START + timedelta(seconds=ts))
        times.append(time.perf_counter() - t0)
    return 1000.0 * statistics.median(times), 1000.0 * statistics.fmean(times)


def static_ms(pipe: Pipeline, frames: int = 300) -> tuple[float, float]:
    """Median ms per frame of the static-foreground stage and of one detector call."""
    cap = cv2.VideoCapture(str(BAG_CLIP))
    static = StaticForeground()
    st: list[float] = []
    det: list[float] = []
    for i in range(frames):
        ok, image = cap.read()
        if not ok:
            break
        img = np.asarray(image, dtype=np.uint8)
        t0 = time.perf_counter()
        static.update(img, i / 29.97)
        st.append(time.perf_counter() - t0)
        if i % 10 == 0:
            t0 = time.perf_counter()
            pipe.detector.detect(img, FULL_FRAME)
            det.append(time.perf_counter() - t0)
    cap.release()
    return 1000.0 * statistics.median(st), 1000.0 * statistics.median(det)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--frames", type=int, default=750)
    parser.add_argument("--chunk", type=int, default=25)
    args = parser.parse_args()
    settings = EdgeSettings.from_yaml(CONFIG)
    warm = make_pipeline(settings, gated=False)  # imports, model load, first-call costs
    warm_mode = Mode("warm", feed(warm))
    warm_mode.advance(20)
    baseline = Pipeline.from_settings(settings)
    zones = [(z.id, z.polygon) for z in settings.initial_config().cameras[0].zones]
    regions = [FULL_FRAME, *zone_regions(zones, margin=settings.regions.crop_margin, aspect=W / H)]

    def detect_only(image: Image, _index: int) -> None:
        for region in regions:
            baseline.detector.detect(image, region)

    ungated = make_pipeline(settings, gated=False)
    gated = make_pipeline(settings, gated=True)
    modes = [
        Mode("decode", lambda _i, _n: None),
        Mode("decode_detect", detect_only),
        Mode("pipeline", feed(ungated)),
        Mode("pipeline_gated", feed(gated)),
    ]
    calls, invoke_s = 0, 0.0
    while any(m.frames < args.frames for m in modes):
        for m in modes:
            if m.frames < args.frames and not m.advance(min(args.chunk, args.frames - m.frames)):
                m.frames = max(m.frames, args.frames)  # clip ended
        c, t = invoke_rate(baseline, 10)
        calls, invoke_s = calls + c, invoke_s + t
    fps = {m.name: m.fps for m in modes}
    tr_median, tr_mean = tracker_rules_ms()
    sf_ms, det_ms = static_ms(baseline)
    result = {
        "benchmark": "edge_pipeline",
        "clip": CLIP.name,
        "frames": args.frames,
        "regions_per_frame": len(regions),
        "machine": f"{platform.machine()} {os.cpu_count()} cpu, python {platform.python_version()}",
        "load_average_1m": round(os.getloadavg()[0], 2),
        "detector_calls_per_s": round(calls / invoke_s, 1),
        "decode_fps": round(fps["decode"], 1),
        "decode_detect_fps": round(fps["decode_detect"], 1),
        "pipeline_fps": round(fps["pipeline"], 1),
        "pipeline_gated_fps": round(fps["pipeline_gated"], 1),
        "detector_calls_ungated": ungated.stats().detector_calls,
        "detector_calls_gated": gated.stats().detector_calls,
        "ratio_pipeline_vs_decode_detect": round(fps["pipeline"] / fps["decode_detect"], 3),
        "ratio_gated_vs_decode_detect": round(fps["pipeline_gated"] / fps["decode_detect"], 3),
        "gating_gain": round(fps["pipeline_gated"] / fps["pipeline"], 2),
        "tracker_rules_ms_at_50": round(tr_median, 3),
        "tracker_rules_ms_at_50_mean": round(tr_mean, 3),
        "static_ms": round(sf_ms, 2),
        "detect_ms": round(det_ms, 2),
        "targets": {
            "ratio_pipeline_vs_decode_detect": ">= 0.85",
            "tracker_rules_ms_at_50": "< 1.0",
            "gating_gain": ">= 3.0",
        },
    }
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
