"""Rule evaluation for one camera: tracks + static blobs in, ``RuleEvent``s out. No I/O.

Every rule keeps episodes with the same hysteresis: a condition must hold for the zone's limit
before ``start``; a started episode sends ``update`` every ``update_interval_s`` and ends only
after the condition has been false for ``end_grace_s`` (so one parked car is one event, even if
the detector drops it for a few frames or its track id changes: a new track on the same spot
takes over the episode).

One thing, one event: an episode may hold several subjects. A track or blob whose box overlaps
an episode of the same zone (IoU ≥ 0.3, or more than ``duplicate_overlap`` of the smaller box:
the detector's "ghost" box straddling two parked cars, a bag seen as two blobs) joins it
instead of opening a second one. A left object that was reported is remembered by its place,
so it is never reported twice while it stays.

Owners: an object is attended while a confirmed person has been within ``owner_radius`` of it
in the last ``owner_grace_s`` (the detector may lose a person in the dark for a moment); its
clock starts only once nobody has been near for that long, and a returning owner starts it
again. Person sightings of the last minute are kept (a few per second per person), so a new
candidate also knows who stood over it before it was ever a candidate.
"""

from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime

from edge.detect.regions import Rect
from edge.motion.static import StaticBlob
from edge.rules.zones import Shape, distance_to_rect, dwell_limit, line_side
from edge.track.tracker import Track
from shared.config import CameraConfig, LineConfig, RuleParams, Zone, ZoneKind
from shared.events import AttributeValue, EventKind, Phase, Severity

REATTACH_IOU = 0.3
ZONE_COVER = 0.5
"""A vehicle is in a no-parking zone when its centre is and half its box is (a ghost box
straddling the parked car and its neighbour in the next row is not)."""
SIGHTING_EVERY_S = 0.25
SIGHTINGS_KEPT_S = 60.0
FIRED_MEMORY_S = 120.0
"""A reported left object's place is remembered while something is seen there, and this long
after (then a new object on the same spot is a new event)."""
PERSON_OVERLAP = 0.3
KNOWN_RECENT_S = 1.0
VEHICLE_COVER = 0.5
LINE_MARGIN = 0.01
"""A track changes side of a counting line only once it is this far past it (hysteresis)."""

DEFAULT_SEVERITY = {
    EventKind.ILLEGAL_PARKING: Severity.MEDIUM,
    EventKind.ABANDONED_OBJECT: Severity.HIGH,
    EventKind.CROWDING: Severity.MEDIUM,
    EventKind.LINE_CROSSING: Severity.INFO,
}


@dataclass(frozen=True, slots=True)
class ObjectRef:
    label: str
    score: float
    box: Rect
    track_id: int | None = None


@dataclass(frozen=True, slots=True)
class RuleEvent:
    """One lifecycle step of an episode; the pipeline turns it into a wire ``Event``."""

    kind: EventKind
    phase: Phase
    episode: str
    camera_id: str
    zone_id: str | None
    started_ts: float
    ts: float
    dwell_s: float
    severity: Severity
    summary: str
    box: Rect | None = None
    objects: tuple[ObjectRef, ...] = ()
    attributes: dict[str, AttributeValue] = field(default_factory=dict)


@dataclass(slots=True)
class _Episode:
    key: str
    kind: EventKind
    zone_id: str | None
    subject: int
    box: Rect
    since: float
    last_true: float
    objects: tuple[ObjectRef, ...] = ()
    started: bool = False
    started_ts: float = 0.0
    last_sent: float = 0.0
    attended_at: float | None = None
    subjects: set[int] = field(default_factory=set)
    silent: bool = False
    history_checked: bool = False
    """Already reported as another episode (the same left object): sends nothing."""


@dataclass(slots=True)
class _Fired:
    """Where a left object was reported, and when something was last seen there."""

    zone_id: str
    box: Rect
    last_seen: float


@dataclass(frozen=True, slots=True)
class _Hit:
    """A subject (track or blob) that satisfies a zone's condition this frame."""

    subject: int
    box: Rect
    since: float
    objects: tuple[ObjectRef, ...]


class RuleEngine:
    def __init__(self, camera: CameraConfig, timezone: str = "UTC") -> None:
        self.camera = camera
        self.timezone = timezone
        self._episodes: dict[str, _Episode] = {}
        self._line_side: dict[tuple[str, int], int] = {}
        self._shapes: dict[str, Shape] = {}
        self.line_counts: dict[str, dict[str, int]] = {}
        self._seq = 0
        self._sightings: deque[tuple[float, Rect]] = deque()
        self._sighted: dict[int, float] = {}
        self._fired: list[_Fired] = []

    def set_config(self, camera: CameraConfig, timezone: str) -> None:
        """Swap zones and parameters; episodes of zones that are gone end at the next frame."""
        self.camera = camera
        self.timezone = timezone
        self._shapes.clear()

    def _shape(self, zone: Zone) -> Shape:
        shape = self._shapes.get(zone.id)
        if shape is None:
            shape = self._shapes[zone.id] = Shape.of(zone.polygon)
        return shape

    @property
    def params(self) -> RuleParams:
        return self.camera.rules

    def evaluate(
        self,
        tracks: Sequence[Track],
        blobs: Sequence[StaticBlob],
        ts: float,
        wall: datetime,
    ) -> list[RuleEvent]:
        """Advance every rule to video time *ts* (wall time *wall*, for schedules)."""
        out: list[RuleEvent] = []
        live = [t for t in tracks if t.confirmed and t.last_seen >= ts - 1e-6]
        self._stamp_people(live, ts)
        seen: set[str] = set()
        for zone in self.camera.zones:
            if zone.kind is ZoneKind.WATCH:
                continue
            limit = dwell_limit(zone, wall, self.timezone)
            hits = self._hits(zone, live, tracks, blobs, ts)
            # Oldest first: the first stationary thing on a spot owns the episode, later
            # overlapping ones (ghost boxes, split blobs) join it.
            for hit in sorted(hits, key=lambda h: h.since):
                ep = self._episode_for(zone, hit, ts)
                ep.subjects.add(hit.subject)
                if ep.key in seen:
                    continue
                seen.add(ep.key)
                ep.last_true = ts
                ep.box = hit.box
                ep.objects = hit.objects
                if ep.kind is EventKind.ILLEGAL_PARKING and not ep.started:
                    # Stopped, moved a little, stopped again: the stay counts from the last stop.
                    ep.since = max(ep.since, hit.since)
                if ep.kind is EventKind.ABANDONED_OBJECT:
                    self._check_owner(ep, tracks)
                out.extend(self._advance(ep, zone, limit, ts))
        out.extend(self._expire(seen, ts))
        out.extend(self._lines(live, ts))
        return out

    # -- conditions ------------------------------------------------------------------------

    def _hits(
        self,
        zone: Zone,
        live: Sequence[Track],
        tracks: Sequence[Track],
        blobs: Sequence[StaticBlob],
        ts: float,
    ) -> list[_Hit]:
        p = self.params
        shape = self._shape(zone)
        if zone.kind is ZoneKind.NO_PARKING:
            labels = set(zone.labels or p.vehicle_labels)
            return [
                _Hit(t.id, t.box, t.stationary_since, (_ref(t),))
                for t in live
                if t.label in labels
                and t.score >= p.min_score
                and t.stationary_since is not None
                and shape.contains(t.center)
                and shape.coverage(t.box) >= ZONE_COVER
            ]
        if zone.kind is ZoneKind.ABANDONED_WATCH:
            return [
                _Hit(b.id, b.box, b.static_since, (ObjectRef("object", 1.0, b.box),))
                for b in blobs
                if shape.contains(b.box.center) and not self._is_known_object(b, tracks, ts)
            ]
        if zone.kind is ZoneKind.CROWDING:
            people = set(zone.labels or p.person_labels)
            inside = [t for t in live if t.label in people and shape.contains(t.box.bottom_center)]
            if zone.max_people is not None and len(inside) > zone.max_people:
                box = Rect(
                    min(t.box.x1 for t in inside),
                    min(t.box.y1 for t in inside),
                    max(t.box.x2 for t in inside),
                    max(t.box.y2 for t in inside),
                )
                return [_Hit(0, box, ts, tuple(_ref(t) for t in inside[:64]))]
        return []

    def _is_known_object(self, blob: StaticBlob, tracks: Sequence[Track], ts: float) -> bool:
        """A static blob that is a standing person or a parked vehicle is not a left object."""
        p = self.params
        for t in tracks:
            if not t.confirmed or t.last_seen < ts - KNOWN_RECENT_S:
                continue  # a track kept through a detector miss is not evidence of anything
            inter = blob.box.intersection(t.box)
            if t.label in p.person_labels and inter >= PERSON_OVERLAP * blob.box.area:
                return True
            if t.label in p.vehicle_labels and inter >= VEHICLE_COVER * t.box.area:
                return True
        return False

    def _stamp_people(self, live: Sequence[Track], ts: float) -> None:
        """Remember where people were (a few sightings per second each, for a minute)."""
        people = self.params.person_labels
        ids = set()
        for t in live:
            if t.label not in people:
                continue
            ids.add(t.id)
            if ts - self._sighted.get(t.id, float("-inf")) >= SIGHTING_EVERY_S:
                self._sighted[t.id] = ts
                self._sightings.append((ts, t.box))
        self._sighted = {k: v for k, v in self._sighted.items() if k in ids}
        while self._sightings and ts - self._sightings[0][0] > SIGHTINGS_KEPT_S:
            self._sightings.popleft()

    def _check_owner(self, ep: _Episode, tracks: Sequence[Track]) -> None:
        p = self.params
        center = ep.box.center
        if not ep.history_checked:  # who stood here before it was a candidate
            ep.history_checked = True
            for seen, box in self._sightings:
                if distance_to_rect(center, box) <= p.owner_radius:
                    ep.attended_at = max(ep.attended_at or seen, seen)
        for t in tracks:
            if (
                t.confirmed
                and t.label in p.person_labels
                and distance_to_rect(center, t.box) <= p.owner_radius
            ):
                ep.attended_at = max(ep.attended_at or t.last_seen, t.last_seen)
        if not ep.started and ep.attended_at is not None:
            # Unattended only once nobody has been near for the grace period (a person the
            # detector misses for a moment still attends it); a returning owner restarts it.
            ep.since = max(ep.since, ep.attended_at + self.params.owner_grace_s)

    # -- lifecycle -------------------------------------------------------------------------

    def _episode_for(self, zone: Zone, hit: _Hit, ts: float) -> _Episode:
        kind = _KIND[zone.kind]
        same = [e for e in self._episodes.values() if e.zone_id == zone.id and e.kind is kind]
        for ep in same:
            if hit.subject in ep.subjects:
                return ep
        # A new subject on the spot of a recent one (new track id after a detector gap), or
        # overlapping one that is there now (a ghost box over a parked car), continues that
        # episode instead of opening a second one.
        for ep in same:
            if ep.box.iou(hit.box) >= REATTACH_IOU or self._duplicate(ep.box, hit.box):
                return ep
        key = f"{kind.value}:{zone.id}:{hit.subject}"
        ep = _Episode(key, kind, zone.id, hit.subject, hit.box, hit.since, ts, hit.objects)
        if kind is EventKind.ABANDONED_OBJECT and self._reported(zone.id, hit.box, ts):
            ep.started = True  # reported before and still there: never a second event
            ep.started_ts = ep.last_sent = ts
            ep.silent = True
        self._episodes[key] = ep
        return ep

    def _duplicate(self, a: Rect, b: Rect) -> bool:
        smaller = min(a.area, b.area)
        return smaller > 0 and a.intersection(b) > self.params.duplicate_overlap * smaller

    def _reported(self, zone_id: str, box: Rect, ts: float) -> bool:
        self._fired = [f for f in self._fired if ts - f.last_seen <= FIRED_MEMORY_S]
        for f in self._fired:
            if f.zone_id == zone_id and (
                f.box.iou(box) >= REATTACH_IOU or self._duplicate(f.box, box)
            ):
                f.last_seen = ts
                return True
        return False

    def _advance(self, ep: _Episode, zone: Zone, limit: float | None, ts: float) -> list[RuleEvent]:
        p = self.params
        if not ep.started:
            if limit is not None and ts - ep.since >= limit:
                ep.started, ep.started_ts, ep.last_sent = True, ep.since, ts
                if ep.kind is EventKind.ABANDONED_OBJECT:
                    self._fired.append(_Fired(ep.zone_id or "", ep.box, ts))
                return [self._event(ep, Phase.START, ts, zone)]
            return []
        if ep.kind is EventKind.ABANDONED_OBJECT:
            for f in self._fired:
                if f.zone_id == ep.zone_id and f.box.iou(ep.box) >= REATTACH_IOU:
                    f.last_seen = ts
        if ep.silent:
            return []
        if ts - ep.last_sent >= p.update_interval_s:
            ep.last_sent = ts
            return [self._event(ep, Phase.UPDATE, ts, zone)]
        return []

    def _expire(self, seen: set[str], ts: float) -> list[RuleEvent]:
        grace = self.params.end_grace_s
        zones = {z.id: z for z in self.camera.zones}
        out: list[RuleEvent] = []
        for key in list(self._episodes):
            ep = self._episodes[key]
            if key in seen:
                continue
            zone = zones.get(ep.zone_id or "")
            if zone is not None and ts - ep.last_true < grace:
                continue
            del self._episodes[key]
            if ep.started and not ep.silent:
                out.append(self._event(ep, Phase.END, ep.last_true, zone))
        return out

    def _event(self, ep: _Episode, phase: Phase, ts: float, zone: Zone | None) -> RuleEvent:
        severity = (zone.severity if zone else None) or DEFAULT_SEVERITY[ep.kind]
        dwell = max(0.0, ts - ep.since)
        where = f"zone {zone.name or zone.id}" if zone else f"zone {ep.zone_id}"
        label = ep.objects[0].label if ep.objects else "object"
        summary = {
            EventKind.ILLEGAL_PARKING: f"{label} parked in {where} for {dwell:.0f} s",
            EventKind.ABANDONED_OBJECT: f"object left unattended in {where} for {dwell:.0f} s",
            EventKind.CROWDING: f"{len(ep.objects)} people in {where} for {dwell:.0f} s",
        }.get(ep.kind, ep.kind.value)
        if phase is Phase.END:
            summary = f"ended: {summary}"
        return RuleEvent(
            kind=ep.kind,
            phase=phase,
            episode=ep.key,
            camera_id=self.camera.id,
            zone_id=ep.zone_id,
            started_ts=ep.started_ts,
            ts=ts,
            dwell_s=dwell,
            severity=severity,
            summary=summary,
            box=ep.box,
            objects=ep.objects,
            attributes={"people": len(ep.objects)} if ep.kind is EventKind.CROWDING else {},
        )

    # -- lines -----------------------------------------------------------------------------

    def _lines(self, live: Sequence[Track], ts: float) -> list[RuleEvent]:
        out: list[RuleEvent] = []
        ids = {t.id for t in live}
        self._line_side = {k: v for k, v in self._line_side.items() if k[1] in ids}
        for line in self.camera.lines:
            labels = set(line.labels)
            for t in live:
                if t.label not in labels:
                    continue
                dist, along = line_side(t.center, line.a, line.b)
                if abs(dist) < LINE_MARGIN or not 0.0 <= along <= 1.0:
                    continue
                side = -1 if dist < 0 else 1
                key = (line.id, t.id)
                before = self._line_side.get(key)
                self._line_side[key] = side
                if before is None or before == side:
                    continue
                direction = "a_to_b" if side < 0 else "b_to_a"
                if line.direction in ("any", direction):
                    out.extend(self._crossing(line, t, direction, ts))
        return out

    def _crossing(self, line: LineConfig, t: Track, direction: str, ts: float) -> list[RuleEvent]:
        counts = self.line_counts.setdefault(line.id, {"a_to_b": 0, "b_to_a": 0})
        counts[direction] += 1
        self._seq += 1
        attrs: dict[str, AttributeValue] = {
            "line_id": line.id,
            "direction": direction,
            "count_a_to_b": counts["a_to_b"],
            "count_b_to_a": counts["b_to_a"],
        }
        common = {
            "kind": EventKind.LINE_CROSSING,
            "episode": f"line_crossing:{line.id}:{t.id}:{self._seq}",
            "camera_id": self.camera.id,
            "zone_id": line.id,
            "started_ts": ts,
            "ts": ts,
            "dwell_s": 0.0,
            "severity": Severity.INFO,
            "summary": f"{t.label} crossed line {line.name or line.id} ({direction})",
            "box": t.box,
            "objects": (_ref(t),),
            "attributes": attrs,
        }
        # A crossing is instantaneous: its start and end are sent together.
        return [RuleEvent(phase=Phase.START, **common), RuleEvent(phase=Phase.END, **common)]  # type: ignore[arg-type]


_KIND = {
    ZoneKind.NO_PARKING: EventKind.ILLEGAL_PARKING,
    ZoneKind.ABANDONED_WATCH: EventKind.ABANDONED_OBJECT,
    ZoneKind.CROWDING: EventKind.CROWDING,
}


def _ref(t: Track) -> ObjectRef:
    return ObjectRef(t.label, t.score, t.box, t.id)
