"""Zone preview on a real frame of the parking footage, through the CLI."""

from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest
from typer.testing import CliRunner

from cityops.cli import app
from provisioning.errors import InputError
from provisioning.zones import load_zones
from shared.config import ZoneKind

ZONES = Path(__file__).parent / "data" / "zones-parking.yaml"


def test_preview_draws_zones_on_the_real_frame(parking_frame: Path, tmp_path: Path) -> None:
    preview = tmp_path / "preview.png"
    result = CliRunner().invoke(
        app,
        [
            "provision", "zones", "pc-01",
            "--snapshot", str(parking_frame),
            "--zones", str(ZONES),
            "--preview", str(preview),
        ],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "2 zones, 1 lines" in result.output
    original = np.asarray(cv2.imread(str(parking_frame)), dtype=np.uint8)
    drawn = np.asarray(cv2.imread(str(preview)), dtype=np.uint8)
    assert original.shape == (480, 856, 3)
    # Enlarged to 960 px wide for readable labels; compare with the frame enlarged the same way.
    assert drawn.shape == (538, 960, 3)
    height, width = drawn.shape[:2]
    frame = cv2.resize(original, (width, height), interpolation=cv2.INTER_CUBIC)

    def patch(image: np.ndarray[Any, Any], x: float, y: float) -> np.ndarray[Any, Any]:
        px, py = round(x * width), round(y * height)
        block = image[py - 3 : py + 4, px - 3 : px + 4].reshape(-1, 3).astype(float)
        return np.asarray(block.mean(axis=0))

    # Inside the disabled bay (no_parking): tinted towards red (BGR: red channel up).
    before, after = patch(frame, 0.37, 0.93), patch(drawn, 0.37, 0.93)
    assert after[2] - after[0] > before[2] - before[0] + 20
    # Inside the aisle (watch): tinted towards blue.
    before, after = patch(frame, 0.6, 0.75), patch(drawn, 0.6, 0.75)
    assert after[0] - after[2] > before[0] - before[2] + 20
    # The sky, far from every zone, is untouched.
    assert np.abs(patch(drawn, 0.5, 0.1) - patch(frame, 0.5, 0.1)).max() < 1.0


def test_zones_file_errors_name_the_field(tmp_path: Path) -> None:
    bad = tmp_path / "zones.yaml"
    bad.write_text(
        "cameras:\n  - id: cam0\n    zones:\n"
        "      - {id: z, kind: crowding, polygon: [[0, 0], [1, 0], [1, 1]]}\n"
    )
    with pytest.raises(InputError, match="max_people"):
        load_zones(bad)
    bad.write_text("cameras:\n  - id: cam0\n    zones:\n      - {id: z, kind: no_parking}\n")
    with pytest.raises(InputError, match=r"cameras\.0\.zones\.0\.polygon"):
        load_zones(bad)


def test_zones_file_becomes_a_device_config() -> None:
    spec = load_zones(ZONES)
    config = spec.device_config("pc-01", None)
    assert config.device_id == "pc-01"
    kinds = [z.kind for z in config.cameras[0].zones]
    assert kinds == [ZoneKind.NO_PARKING, ZoneKind.WATCH]
    with pytest.raises(InputError, match="cam9"):
        spec.camera("cam9")


def test_unreadable_snapshot_is_a_clear_error(tmp_path: Path) -> None:
    junk = tmp_path / "frame.jpg"
    junk.write_bytes(b"not an image")
    result = CliRunner().invoke(
        app,
        [
            "provision", "zones", "pc-01",
            "--snapshot", str(junk),
            "--zones", str(ZONES),
            "--preview", str(tmp_path / "p.png"),
        ],
    )  # fmt: skip
    assert result.exit_code == 1
    assert "not a readable image" in result.output
