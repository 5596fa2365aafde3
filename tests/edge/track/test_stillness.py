"""Stillness check: shake and light do not move a parked car; a car that creeps does."""

from collections.abc import Callable

import numpy as np
import numpy.typing as npt
import pytest

from edge.detect.regions import Rect
from edge.track.stillness import StillnessCheck
from edge.track.tracker import Track

RNG = np.random.default_rng(3)
SCENE = RNG.integers(40, 200, (180, 320), dtype=np.uint8)
CAR = Rect(0.3, 0.4, 0.5, 0.7)


def parked(box: Rect = CAR) -> Track:
    return Track(
        id=1,
        label="car",
        score=0.8,
        box=box,
        first_seen=0.0,
        last_seen=1.0,
        hits=10,
        confirmed=True,
        stationary=True,
        stationary_since=0.0,
        speed=0.0,
        prev_center=None,
    )


def shifted(img: npt.NDArray[np.uint8], dx: int, dy: int) -> npt.NDArray[np.uint8]:
    return np.roll(np.roll(img, dy, axis=0), dx, axis=1)


@pytest.mark.parametrize(
    ("name", "change"),
    [
        ("shake 3 px", lambda g: shifted(g, 3, -2)),
        ("light +35 %", lambda g: np.clip(g * 1.35, 0, 255).astype(np.uint8)),
        ("light -45 %", lambda g: (g * 0.55).astype(np.uint8)),
        ("noise", lambda g: np.clip(g + RNG.normal(0, 4, g.shape), 0, 255).astype(np.uint8)),
    ],
)
def test_stillness_ignores_shake_light_and_noise(
    name: str, change: Callable[[npt.NDArray[np.uint8]], npt.NDArray[np.uint8]]
) -> None:
    check = StillnessCheck()
    assert check.moved([parked()], SCENE) == []  # takes the reference
    assert check.moved([parked()], change(SCENE)) == [], name


def test_stillness_sees_a_car_that_crept_beyond_the_shake_margin() -> None:
    check = StillnessCheck()
    check.moved([parked()], SCENE)
    crept = SCENE.copy()
    y1, y2, x1, x2 = 72, 126, 96, 160
    crept[y1:y2, x1 + 12 : x2 + 12] = SCENE[y1:y2, x1:x2]  # the car 12 px to the right
    assert check.moved([parked()], crept) == [1]


def test_stillness_pauses_while_the_light_is_unsettled() -> None:
    check = StillnessCheck()
    check.moved([parked()], SCENE)
    other = RNG.integers(40, 200, SCENE.shape, dtype=np.uint8)
    assert check.moved([parked()], other, settled=False) == []
    assert check.moved([parked()], other) == [1]
