"""The real detector on the provided photos and on a zone crop of the parking clip."""

from pathlib import Path

import cv2
import numpy as np
import pytest

from edge.detect.regions import FULL_FRAME, Rect, Region, square_up, tiles, zone_regions
from edge.detect.tflite import DetectorError, TfliteDetector

BAY = [(0.298, 0.823), (0.438, 0.823), (0.438, 1.0), (0.298, 1.0)]


@pytest.fixture(scope="module")
def detector(material: Path) -> TfliteDetector:
    models = material / "models"
    return TfliteDetector(models / "detect.tflite", models / "labelmap.txt", min_score=0.3)


def test_detector_finds_the_person_in_the_sanity_photo(
    detector: TfliteDetector, material: Path
) -> None:
    image = np.asarray(cv2.imread(str(material / "data" / "images" / "grace_hopper.bmp")))
    best = detector.detect(image.astype(np.uint8), FULL_FRAME)[0]
    assert best.label == "person"
    assert best.score == pytest.approx(0.72, abs=0.05)  # PROVENANCE.md: person 0.72
    assert best.box.x1 < 0.1
    assert best.box.y2 > 0.9


def test_zone_crop_finds_the_parked_car_the_full_frame_misses(
    detector: TfliteDetector, material: Path
) -> None:
    cap = cv2.VideoCapture(
        str(material / "data" / "parking" / "car_parks_in_disabled_bay_composed.mp4")
    )
    cap.set(cv2.CAP_PROP_POS_FRAMES, 400)  # 26.7 s: the car is in the bay
    ok, raw = cap.read()
    cap.release()
    assert ok
    image = np.asarray(raw, dtype=np.uint8)

    def in_bay(region: Region) -> list[str]:
        return [
            d.label
            for d in detector.detect(image, region)
            if d.label == "car" and 0.30 < d.box.center[0] < 0.44 and d.box.center[1] > 0.82
        ]

    crop = zone_regions([("bay", BAY)], margin=0.25, aspect=856 / 480)[0]
    assert in_bay(FULL_FRAME) == []
    assert in_bay(crop)  # found (sometimes twice: the merge step keeps one)


def test_missing_model_names_the_setting(tmp_path: Path) -> None:
    with pytest.raises(DetectorError, match=r"detector\.model_path"):
        TfliteDetector(tmp_path / "none.tflite", tmp_path / "labels.txt")


def test_regions_tiles_and_square_crops() -> None:
    grid = tiles(2)
    assert len(grid) == 4
    assert min(t.rect.x1 for t in grid) == 0.0
    assert max(t.rect.x2 for t in grid) == pytest.approx(1.0)
    assert grid[0].rect.x2 > grid[1].rect.x1  # tiles overlap
    sq = square_up(Rect(0.3, 0.8, 0.45, 1.0), aspect=16 / 9)
    assert sq.width * 16 / 9 == pytest.approx(sq.height, rel=0.05)
    assert sq.y2 <= 1.0
    # A zone covering most of the frame gets no crop of its own.
    assert zone_regions([("all", [(0, 0), (1, 0), (1, 1)])], margin=0.1, aspect=1.0) == []
