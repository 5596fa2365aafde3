"""Face privacy on the provided footage: faces found, cost per snapshot, and what an auditor finds.

Each clip runs through the real pipeline (example config, real detector and tracker); every
``--every``-th frame the unit's whole-frame snapshot is taken as the ``snapshot`` command takes
it (``Pipeline.latest_jpeg``: BlazeFace faces and the heads of tracked persons pixelated, JPEG at
``max_side``). Per clip:
- ``snapshots``, ``blazeface_faces``: faces the device's face model found in those frames;
- ``ms_per_snapshot``: median time of ``latest_jpeg`` (blur + JPEG); baseline from the same
  frames, ``encode_only_ms``: JPEG without blurring, and their ratio;
- ``auditor_before``: faces the auditor (BlazeFace full range, a different network) finds in
  the same frames before blurring, at the snapshot's size; ``auditor_after_readable``: faces it
  finds in the JPEGs that are sent, not counting pixelated ones (goal 0);
  ``auditor_after_pixelated``: pixelated heads it still takes for faces.

    .venv/bin/python benchmarks/face_privacy.py [--every 8]
"""

import argparse
import json
import platform
import statistics
import threading
import time

from cityops.paths import REPO_ROOT, face_model_path
from edge.camera.frame import Frame
from edge.pipeline import Pipeline, run
from edge.privacy.audit import FaceAuditor
from edge.privacy.faces import BlazeFaceBlurrer
from edge.privacy.snapshot import encode_jpeg
from edge.settings import EdgeSettings
from edge.sink import ListSink

CLIPS = {
    "towncentre": "towncentre.yaml",
    "aboda": "aboda-abandoned.yaml",
}


def measure(config: str, every: int, auditor: FaceAuditor) -> dict[str, float]:
    settings = EdgeSettings.from_yaml(REPO_ROOT / "edge" / "examples" / config)
    pipeline = Pipeline.from_settings(settings)
    blurrer = pipeline.blurrer
    if not isinstance(blurrer, BlazeFaceBlurrer):
        raise SystemExit("no face model: run `cityops models fetch --face-only`")
    snap = settings.snapshot
    stats = {"snapshots": 0, "blazeface_faces": 0, "auditor_before": 0}
    stats |= {"auditor_after_readable": 0, "auditor_after_pixelated": 0}
    total_ms: list[float] = []
    encode_ms: list[float] = []
    count = 0

    def on_frame(frame: Frame) -> None:
        nonlocal count
        count += 1
        if count % every:
            return
        t0 = time.perf_counter()
        sent = pipeline.latest_jpeg(frame.camera_id)
        total_ms.append(1000 * (time.perf_counter() - t0))
        assert sent is not None
        t0 = time.perf_counter()
        _, w, h = encode_jpeg(frame.image, max_side=snap.max_side, quality=snap.quality)
        encode_ms.append(1000 * (time.perf_counter() - t0))
        stats["snapshots"] += 1
        stats["blazeface_faces"] += len(blurrer.faces(frame.image))
        stats["auditor_before"] += len(auditor.faces(frame.image, (w, h)))
        found = len(auditor.faces_in_jpeg(sent))
        readable = len(auditor.readable_in_jpeg(sent))
        stats["auditor_after_readable"] += readable
        stats["auditor_after_pixelated"] += found - readable

    run(pipeline, ListSink(), threading.Event(), realtime=False, on_frame=on_frame)
    return {
        **stats,
        "ms_per_snapshot": round(statistics.median(total_ms), 1),
        "encode_only_ms": round(statistics.median(encode_ms), 1),
        "ratio_vs_encode_only": round(
            statistics.median(total_ms) / statistics.median(encode_ms), 2
        ),
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--every", type=int, default=8)
    args = parser.parse_args()
    if face_model_path() is None:
        raise SystemExit("no face model: run `cityops models fetch --face-only`")
    auditor = FaceAuditor()
    result: dict[str, object] = {"machine": platform.machine(), "every_nth_frame": args.every}
    for name, config in CLIPS.items():
        result[name] = measure(config, args.every, auditor)
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
