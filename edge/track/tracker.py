"""IoU tracker with optimal assignment (``scipy.optimize.linear_sum_assignment``).

Tracks survive short occlusions (``max_age_s``), are confirmed after ``min_hits`` detections,
and know when they are stationary: the least-squares speed of the box centre over the last
``window_s`` seconds is below ``stationary_speed`` (normalised units per second), with a 1.5×
hysteresis band so a parked car does not flicker between parked and moving on detector jitter.

Every time constant is in seconds (box smoothing, score decay, ages), so the same scene at 30,
10 or 5 fps gives the same tracks (the constants equal the former per-frame factors at 15 fps,
the parking clip's rate). A stationary track is kept through longer detector misses
(``stationary_max_age_s``: a parked car lost in a dark or noisy stretch), so a detection on its
spot continues it with its stationary time intact.
"""

import math
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt
from scipy.optimize import linear_sum_assignment

from edge.detect.base import Detection
from edge.detect.regions import Rect

FloatArray = npt.NDArray[np.float64]


@dataclass(frozen=True, slots=True)
class TrackerParams:
    iou_min: float = 0.2
    max_age_s: float = 3.0
    min_hits: int = 2
    window_s: float = 3.0
    sample_s: float = 0.2
    """Centres are kept at most this often for the speed fit (bounds its cost per frame)."""
    min_cover: float = 0.5
    """The speed is judged only if centres were kept in this fraction of the window's slots."""
    stationary_speed: float = 0.02
    hysteresis: float = 1.5
    """A stationary track becomes moving only above hysteresis × stationary_speed."""
    smoothing_s: float = 0.1
    """Time constant of the box smoothing (0.5 per frame at 15 fps)."""
    hold_iou: float = 0.4
    hold_smoothing_s: float = 0.65
    """A stationary object's box is held with this slower constant (0.9 per frame at 15 fps)."""
    score_decay_s: float = 0.65
    stationary_max_age_s: float = 10.0
    """A stationary track survives this long without detections (a parked car does not leave
    unseen in a few seconds; a detection on its spot continues it, stay intact)."""
    """A track's best score decays with this constant (0.9 per frame at 15 fps)."""
    label_groups: tuple[tuple[str, ...], ...] = (("car", "truck", "bus", "motorcycle"),)


@dataclass(frozen=True, slots=True)
class Track:
    """A tracked object as the rules see it (a snapshot; the tracker keeps its own state)."""

    id: int
    label: str
    score: float
    box: Rect
    first_seen: float
    last_seen: float
    hits: int
    confirmed: bool
    stationary: bool
    stationary_since: float | None
    speed: float
    prev_center: tuple[float, float] | None

    @property
    def center(self) -> tuple[float, float]:
        return self.box.center


@dataclass(slots=True)
class _State:
    id: int
    label: str
    score: float
    box: Rect
    first_seen: float
    last_seen: float
    hits: int = 1
    stationary_since: float | None = None
    speed: float = 0.0
    prev_center: tuple[float, float] | None = None
    history: deque[tuple[float, float, float]] = field(default_factory=deque)


class Tracker:
    def __init__(self, params: TrackerParams | None = None) -> None:
        self.params = params or TrackerParams()
        self._tracks: list[_State] = []
        self._next_id = 1
        self._group = {
            label: i for i, group in enumerate(self.params.label_groups) for label in group
        }

    def _kind(self, label: str) -> str:
        """Labels in one group (car/truck/bus) may swap on one object between frames."""
        group = self._group.get(label)
        return label if group is None else f"group{group}"

    def update(self, detections: Sequence[Detection], ts: float) -> list[Track]:
        """Match *detections* at time *ts* to tracks; returns the live tracks."""
        p = self.params
        matched_t, matched_d = self._assign(detections)
        for ti, di in zip(matched_t, matched_d, strict=True):
            self._absorb(self._tracks[ti], detections[di], ts)
        used = set(matched_d)
        for di, det in enumerate(detections):
            if di not in used:
                self._tracks.append(self._new(det, ts))
        self._tracks = [
            t
            for t in self._tracks
            if ts - t.last_seen
            <= (p.stationary_max_age_s if t.stationary_since is not None else p.max_age_s)
        ]
        return [self._view(t) for t in self._tracks]

    def _assign(self, detections: Sequence[Detection]) -> tuple[list[int], list[int]]:
        if not self._tracks or not detections:
            return [], []
        tb = np.array([(t.box.x1, t.box.y1, t.box.x2, t.box.y2) for t in self._tracks])
        db = np.array([(d.box.x1, d.box.y1, d.box.x2, d.box.y2) for d in detections])
        iou = _iou_matrix(tb, db)
        kind = self._kind
        tk = np.array([kind(t.label) for t in self._tracks])
        dk = np.array([kind(d.label) for d in detections])
        iou[tk[:, None] != dk[None, :]] = 0.0
        rows, cols = linear_sum_assignment(-iou)
        keep = iou[rows, cols] >= self.params.iou_min
        return [int(r) for r in rows[keep]], [int(c) for c in cols[keep]]

    def _new(self, det: Detection, ts: float) -> _State:
        state = _State(self._next_id, det.label, det.score, det.box, ts, ts)
        state.history.append((ts, *det.box.center))
        self._next_id += 1
        return state

    def _absorb(self, t: _State, det: Detection, ts: float) -> None:
        p = self.params
        b, d = t.box, det.box
        dt = max(0.0, ts - t.last_seen)
        # A stationary object's box is held: detector jitter must not make a parked car move.
        held = t.stationary_since is not None and b.iou(d) >= p.hold_iou
        a = math.exp(-dt / (p.hold_smoothing_s if held else p.smoothing_s))
        c = 1.0 - a
        t.prev_center = ((b.x1 + b.x2) * 0.5, (b.y1 + b.y2) * 0.5)
        x1, y1 = a * b.x1 + c * d.x1, a * b.y1 + c * d.y1
        x2, y2 = a * b.x2 + c * d.x2, a * b.y2 + c * d.y2
        t.box = Rect(x1, y1, x2, y2)
        t.score = max(det.score, t.score * math.exp(-dt / p.score_decay_s))
        if det.label != t.label and det.score > t.score:
            t.label = det.label
        t.last_seen = ts
        t.hits += 1
        if ts - t.history[-1][0] < p.sample_s:
            return
        cx, cy = (x1 + x2) * 0.5, (y1 + y2) * 0.5
        t.history.append((ts, cx, cy))
        while len(t.history) > 2 and ts - t.history[1][0] >= p.window_s:  # noqa: PLR2004
            t.history.popleft()
        if ts - t.history[0][0] < p.window_s * 0.9:
            return  # not enough history to tell yet
        if len(t.history) < p.min_cover * p.window_s / p.sample_s:
            return  # seen now and then (a sporadic false detection): no evidence either way
        t.speed = _speed(t.history)
        threshold = p.stationary_speed * (p.hysteresis if t.stationary_since is not None else 1.0)
        if t.speed <= threshold:
            if t.stationary_since is None:
                # Not backdated: dwell counts from when the tracker is sure it stopped.
                t.stationary_since = ts
        else:
            t.stationary_since = None

    def restart_stationary(self, track_ids: Sequence[int], ts: float) -> None:
        """These objects were seen to move (appearance changed): their stay starts again."""
        ids = set(track_ids)
        for t in self._tracks:
            if t.id in ids and t.stationary_since is not None:
                t.stationary_since = ts

    def tracks(self) -> list[Track]:
        return [self._view(t) for t in self._tracks]

    def _view(self, t: _State) -> Track:
        return Track(
            id=t.id,
            label=t.label,
            score=t.score,
            box=t.box,
            first_seen=t.first_seen,
            last_seen=t.last_seen,
            hits=t.hits,
            confirmed=t.hits >= self.params.min_hits,
            stationary=t.stationary_since is not None,
            stationary_since=t.stationary_since,
            speed=t.speed,
            prev_center=t.prev_center,
        )


def _speed(history: Sequence[tuple[float, float, float]]) -> float:
    """Least-squares velocity of the centre over *history*: detector jitter averages out."""
    t0 = history[0][0]
    n = st = sx = sy = stt = stx = sty = 0.0
    for ts, x, y in history:
        t = ts - t0
        n += 1.0
        st += t
        sx += x
        sy += y
        stt += t * t
        stx += t * x
        sty += t * y
    den = n * stt - st * st
    if den <= 0.0:
        return 0.0
    vx = (n * stx - st * sx) / den
    vy = (n * sty - st * sy) / den
    return float((vx * vx + vy * vy) ** 0.5)


def _iou_matrix(a: FloatArray, b: FloatArray) -> FloatArray:
    x1 = np.maximum(a[:, None, 0], b[None, :, 0])
    y1 = np.maximum(a[:, None, 1], b[None, :, 1])
    x2 = np.minimum(a[:, None, 2], b[None, :, 2])
    y2 = np.minimum(a[:, None, 3], b[None, :, 3])
    inter = np.clip(x2 - x1, 0, None) * np.clip(y2 - y1, 0, None)
    area_a = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1])
    area_b = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    union = area_a[:, None] + area_b[None, :] - inter
    out: FloatArray = np.where(union > 0, inter / np.where(union > 0, union, 1.0), 0.0)
    return out
