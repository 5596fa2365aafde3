"""The robustness matrix's material: clip windows, perturbations made in memory, one run per cell.

Each clip is decoded frame by frame and only over the window that holds its events; every
perturbation is a pure function of (frame, index, time) with its own fixed seed, so a cell is
reproducible and nothing is written to disk. The pipeline is the real one (TFLite detector,
motion gate, tracker, static foreground, rules).
"""

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import cache

import cv2
import numpy as np

from cityops.paths import REPO_ROOT, data_path
from edge.camera.frame import Frame, Image
from edge.pipeline import Pipeline
from edge.settings import EdgeSettings
from shared.config import ZoneKind
from shared.events import Event, EventKind, Phase

EXAMPLES = REPO_ROOT / "edge" / "examples"
START = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)
Perturb = Callable[[Image, int, float], Image]


@dataclass(frozen=True, slots=True)
class Expected:
    """One event the clean clip must raise: kind, zone and when (video seconds)."""

    kind: EventKind
    zone_id: str
    earliest: float
    latest: float


@dataclass(frozen=True, slots=True)
class Clip:
    name: str
    path: tuple[str, ...]
    config: str
    end_s: float
    """Only frames before this video time are decoded (the window that holds the events)."""
    change_s: float
    """When the brightness step happens (during the stay, before the event is due)."""
    dim: tuple[float, float]
    """Slow dimming to 55 % between these video times."""
    expected: tuple[Expected, ...]
    judged: frozenset[EventKind] = frozenset(
        {EventKind.ILLEGAL_PARKING, EventKind.ABANDONED_OBJECT}
    )
    """Kinds where any event beyond ``expected`` is a failure."""
    no_parking: tuple[str, ...] = ()
    """Watch zones turned into no-parking zones for the test (they must stay silent)."""

    def settings(self) -> EdgeSettings:
        settings = EdgeSettings.from_yaml(EXAMPLES / self.config)
        if not self.no_parking:
            return settings
        cfg = settings.initial_config()
        cams = []
        for cam in cfg.cameras:
            zones = [
                z.model_copy(update={"kind": ZoneKind.NO_PARKING}) if z.id in self.no_parking else z
                for z in cam.zones
            ]
            cams.append(cam.model_copy(update={"zones": zones}))
        return settings.model_copy(
            update={"device_config": cfg.model_copy(update={"cameras": cams})}
        )


CLIPS = {
    c.name: c
    for c in (
        Clip(
            # The car parks in the bay at ~12.7 s; limit 10 s (as in tests/edge/test_footage.py).
            name="parking",
            path=("parking", "car_parks_in_disabled_bay_composed.mp4"),
            config="parking-disabled-bay.yaml",
            end_s=27.0,
            change_s=17.0,
            dim=(10.0, 20.0),
            expected=(Expected(EventKind.ILLEGAL_PARKING, "disabled-bay", 19.7, 25.7),),
            no_parking=("aisle",),
        ),
        Clip(
            # The bag is unattended from ~23.4 s, the owner walks off from ~20 s; limit 10 s.
            name="abandoned",
            path=("abandoned", "aboda_video4.avi"),
            config="aboda-abandoned.yaml",
            end_s=38.5,
            change_s=27.0,
            dim=(20.0, 30.0),
            expected=(Expected(EventKind.ABANDONED_OBJECT, "sidewalk", 29.0, 38.4),),
        ),
        Clip(
            # Nobody stops: no parking and no left-object event.
            name="motorway",
            path=("traffic", "motorway_traffic.mp4"),
            config="motorway.yaml",
            end_s=31.0,
            change_s=8.0,
            dim=(2.0, 12.0),
            expected=(),
        ),
        Clip(
            name="towncentre",
            path=("pedestrians", "towncentre_segA.mp4"),
            config="towncentre.yaml",
            end_s=4.0,
            change_s=1.5,
            dim=(0.5, 3.0),
            # More than 8 people from the first frame; crowding limit 2 s.
            expected=(Expected(EventKind.CROWDING, "street", 2.0, 3.0),),
        ),
    )
}


# -- perturbations ----------------------------------------------------------------------------


def _scale(image: Image, gain: float) -> Image:
    return np.asarray(cv2.convertScaleAbs(image, alpha=gain), dtype=np.uint8)


def shake(amplitude: int, seed: int) -> Perturb:
    """Every frame moved by a random whole-pixel offset in [-amplitude, amplitude]²."""
    rng = np.random.default_rng(seed)
    offsets: dict[int, tuple[int, int]] = {}

    def apply(image: Image, index: int, ts: float) -> Image:
        del ts
        if index not in offsets:
            dx, dy = rng.integers(-amplitude, amplitude + 1, 2)
            offsets[index] = (int(dx), int(dy))
        dx, dy = offsets[index]
        h, w = image.shape[:2]
        m = np.array([[1.0, 0.0, dx], [0.0, 1.0, dy]], dtype=np.float32)
        return np.asarray(
            cv2.warpAffine(image, m, (w, h), borderMode=cv2.BORDER_REPLICATE), dtype=np.uint8
        )

    return apply


def step(at: float, gain: float) -> Perturb:
    """A light switching on or off: brightness × *gain* from *at* on."""

    def apply(image: Image, index: int, ts: float) -> Image:
        del index
        return _scale(image, gain) if ts >= at else image

    return apply


def dimming(start: float, end: float, to: float) -> Perturb:
    """Dusk: brightness falls linearly from 100 % at *start* to *to* at *end*, then stays."""

    def apply(image: Image, index: int, ts: float) -> Image:
        del index
        k = min(1.0, max(0.0, (ts - start) / (end - start)))
        return _scale(image, 1.0 + (to - 1.0) * k) if k > 0 else image

    return apply


def _noisy(image: Image, sigma: float) -> Image:
    h, w = image.shape[:2]
    noise = np.empty((h, w * 3), np.int16)
    cv2.randn(noise, np.zeros(1), np.full(1, sigma))
    shaped = noise.reshape(image.shape)
    return np.asarray(cv2.add(image, shaped, dtype=cv2.CV_8U), dtype=np.uint8)


def noise(sigma: float, seed: int) -> Perturb:
    cv2.setRNGSeed(seed)

    def apply(image: Image, index: int, ts: float) -> Image:
        del index, ts
        return _noisy(image, sigma)

    return apply


def night(seed: int) -> Perturb:
    """Low light: 20 % of the light, sensor noise, then ×3 gain and half the colour gone.

    The gain amplifies the noise and the grey-level banding, as a camera's night mode does.
    """
    cv2.setRNGSeed(seed)

    def apply(image: Image, index: int, ts: float) -> Image:
        del index, ts
        dark = _noisy(_scale(image, 0.2), 3.0)
        gained = _scale(dark, 3.0)
        grey = cv2.cvtColor(cv2.cvtColor(gained, cv2.COLOR_BGR2GRAY), cv2.COLOR_GRAY2BGR)
        return np.asarray(cv2.addWeighted(gained, 0.5, grey, 0.5, 0), dtype=np.uint8)

    return apply


def reencode(quality: int) -> Perturb:
    """A lossy re-encode with another codec: every frame through JPEG (MJPEG) at *quality*."""

    def apply(image: Image, index: int, ts: float) -> Image:
        del index, ts
        ok, data = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, quality])
        assert ok
        return np.asarray(cv2.imdecode(data, cv2.IMREAD_COLOR), dtype=np.uint8)

    return apply


@dataclass(frozen=True, slots=True)
class Perturbation:
    name: str
    make: Callable[[Clip], Perturb | None]
    """Builds the per-frame function for a clip (None: frames unchanged)."""
    fps: float | None = None
    """Drop frames down to this rate."""


PERTURBATIONS = {
    p.name: p
    for p in (
        Perturbation("clean", lambda _: None),
        Perturbation("shake_2px", lambda _: shake(2, seed=2)),
        Perturbation("shake_4px", lambda _: shake(4, seed=4)),
        Perturbation("brighter_35pct", lambda c: step(c.change_s, 1.35)),
        Perturbation("darker_35pct", lambda c: step(c.change_s, 0.65)),
        Perturbation("dimming_55pct", lambda c: dimming(*c.dim, to=0.55)),
        Perturbation("noise_sigma10", lambda _: noise(10.0, seed=10)),
        Perturbation("night", lambda _: night(seed=11)),
        Perturbation("fps_5", lambda _: None, fps=5.0),
        Perturbation("reencode_q20", lambda _: reencode(20)),
    )
}


# -- one run per cell -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class CellRun:
    clip: str
    perturbation: str
    events: tuple[Event, ...]
    frames: int
    seconds: float
    detector_calls: int
    starts: tuple[tuple[EventKind, str | None, float], ...] = field(default=())


def frames(clip: Clip, fps: float | None = None) -> Iterator[tuple[int, float, Image]]:
    cap = cv2.VideoCapture(str(data_path(*clip.path)))
    try:
        native = float(cap.get(cv2.CAP_PROP_FPS)) or 25.0
        every = max(1, round(native / fps)) if fps else 1
        index = 0
        while True:
            ok, image = cap.read()
            ts = index / native
            if not ok or ts >= clip.end_s:
                return
            if index % every == 0:
                yield index, ts, np.asarray(image, dtype=np.uint8)
            index += 1
    finally:
        cap.release()


def run_cell(clip_name: str, perturbation_name: str) -> CellRun:
    clip, pert = CLIPS[clip_name], PERTURBATIONS[perturbation_name]
    settings = clip.settings()
    pipe = Pipeline.from_settings(settings.model_copy(update={"snapshot": settings.snapshot}))
    camera = settings.cameras[0].id
    change = pert.make(clip)
    events: list[Event] = []
    n = 0
    t0 = time.perf_counter()
    for index, ts, image in frames(clip, pert.fps):
        shown = change(image, index, ts) if change is not None else image
        events += pipe.process(Frame(camera, shown, ts, START + timedelta(seconds=ts), index))
        n += 1
    seconds = time.perf_counter() - t0
    starts = tuple(
        (e.kind, e.zone_id, (e.observed_at - START).total_seconds())
        for e in events
        if e.phase is Phase.START
    )
    return CellRun(
        clip_name,
        perturbation_name,
        tuple(events),
        n,
        seconds,
        pipe.stats().detector_calls,
        starts,
    )


cached_run = cache(run_cell)


def main() -> None:
    """Print the matrix as the Markdown table in docs/edge-pipeline.md (one run per cell)."""
    from tests.edge.robustness.test_matrix import KNOWN, problems

    print("| clip | perturbation | parking / left-object / crowding starts (video s) | result |")
    print("| --- | --- | --- | --- |")
    for clip, spec in CLIPS.items():
        for pert in PERTURBATIONS:
            run = run_cell(clip, pert)
            starts = ", ".join(
                f"{k.value} {z} {t:.1f}"
                for k, z, t in run.starts
                if k is not EventKind.LINE_CROSSING
            )
            wrong = problems(spec, run)
            result = "pass" if not wrong else "FAIL: " + "; ".join(wrong)
            if (clip, pert) in KNOWN:
                result += " (strict xfail)"
            print(f"| {clip} | {pert} | {starts or 'none'} | {result} |", flush=True)


if __name__ == "__main__":
    main()
