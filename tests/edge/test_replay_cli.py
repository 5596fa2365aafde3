"""``cityops edge replay`` end to end on a real clip."""

from pathlib import Path

from typer.testing import CliRunner

from cityops.cli import app
from cityops.paths import REPO_ROOT
from shared.codec import decode
from shared.events import Event

runner = CliRunner()
CONFIG = REPO_ROOT / "edge" / "examples" / "towncentre.yaml"
VIDEO = "material:data/pedestrians/towncentre_segA.mp4"


def test_replay_writes_events_and_prints_a_summary(material: Path, tmp_path: Path) -> None:
    out = tmp_path / "events.jsonl"
    result = runner.invoke(
        app,
        [
            "edge", "replay", VIDEO, "--config", str(CONFIG), "--events-out", str(out),
            "--start-time", "2026-02-01T10:00:00Z", "--quiet",
        ],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "frames" in result.output
    assert "96" in result.output  # the clip has 96 frames
    events = [decode(Event, line) for line in out.read_bytes().splitlines()]
    assert events, "the crowd clip crosses the counting line"
    assert all(e.device_id == "cam-street-01" for e in events)
    # Deterministic in video time: stamped from --start-time, within the 3.8 s clip.
    assert all(
        "2026-02-01T10:00:00" <= e.observed_at.isoformat() < "2026-02-01T10:00:04" for e in events
    )
    kinds = {e.kind.value for e in events}
    for kind in kinds:
        assert f"events: {kind}" in result.output


def test_replay_config_errors_name_the_field(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("device_id: Not Valid\ncameras: []\n", encoding="utf-8")
    result = runner.invoke(app, ["edge", "replay", "x.mp4", "--config", str(bad)])
    assert result.exit_code == 2
    assert "device_id" in result.output
    assert "cameras" in result.output


def test_replay_missing_video_is_a_clear_error(tmp_path: Path) -> None:
    result = runner.invoke(
        app, ["edge", "replay", str(tmp_path / "nope.mp4"), "--config", str(CONFIG)]
    )
    assert result.exit_code == 2
    assert "no such file" in result.output


def test_replay_is_deterministic_in_video_time(material: Path, tmp_path: Path) -> None:
    outs = []
    for name in ("a.jsonl", "b.jsonl"):
        out = tmp_path / name
        args = ["edge", "replay", VIDEO, "--config", str(CONFIG), "-o", str(out), "-q"]
        assert runner.invoke(app, args).exit_code == 0
        outs.append(
            [
                (e.kind, e.phase, e.observed_at, e.zone_id, e.attributes.get("episode"))
                for e in (decode(Event, line) for line in out.read_bytes().splitlines())
            ]
        )
    assert outs[0]
    assert outs[0] == outs[1]


def test_replay_annotate_writes_the_debug_view(
    material: Path, face_model: Path, tmp_path: Path
) -> None:
    import cv2
    import numpy as np

    from edge.debug.overlay import TRACK_COLOUR, ZONE_COLOURS
    from shared.config import ZoneKind

    out = tmp_path / "debug.mp4"
    args = ["edge", "replay", VIDEO, "--config", str(CONFIG), "--quiet"]
    result = runner.invoke(app, [*args, "--annotate", str(out), "--stills", "20,60"])
    assert result.exit_code == 0, result.output
    assert "annotated video" in result.output
    cap = cv2.VideoCapture(str(out))
    raw = cv2.VideoCapture(str(material / "data" / "pedestrians" / "towncentre_segA.mp4"))
    frames, changed, tracked = 0, 0, 0
    while True:
        ok, image = cap.read()
        ok_raw, original = raw.read()
        if not ok or not ok_raw:
            break
        frames += 1
        assert image.shape == original.shape
        changed += int(np.abs(image.astype(int) - original.astype(int)).mean() > 3)
        tracked += int((np.abs(image.astype(int) - TRACK_COLOUR).sum(axis=2) < 60).sum() > 200)
    cap.release()
    raw.release()
    assert frames == 96
    assert changed == frames  # every frame carries the overlay
    assert tracked > frames // 2  # tracked persons' boxes
    stills = cv2.imread(str(out.with_suffix(".png")))
    assert stills is not None
    assert stills.shape[1] == 640  # two stills side by side
    crowd = ZONE_COLOURS[ZoneKind.CROWDING]
    assert (np.abs(stills.astype(int) - crowd).sum(axis=2) < 60).sum() > 100
