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
