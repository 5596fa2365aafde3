"""Zone polygons must be simple and have an area: a bow-tie zone once fired."""

import pytest
from pydantic import ValidationError

from shared.config import Zone, polygon_area, self_intersection


@pytest.mark.parametrize(
    ("polygon", "reason"),
    [
        ([(0.1, 0.1), (0.9, 0.9), (0.9, 0.1), (0.1, 0.9)], "self-intersecting"),  # bow-tie
        ([(0.1, 0.1), (0.6, 0.1), (0.3, 0.5), (0.3, -0.0), (0.1, 0.4)], "self-intersecting"),
        ([(0.1, 0.1), (0.5, 0.5), (0.9, 0.9)], "zero area"),  # collinear
        ([(0.2, 0.2), (0.2, 0.2), (0.2, 0.2)], "zero area"),
    ],
)
def test_degenerate_zones_are_refused(polygon: list[tuple[float, float]], reason: str) -> None:
    with pytest.raises(ValidationError, match=reason):
        Zone(id="z", kind="no_parking", polygon=polygon)


@pytest.mark.parametrize(
    "polygon",
    [
        [(0.298, 0.823), (0.438, 0.823), (0.438, 1.0), (0.298, 1.0)],
        [(0.30, 0.83), (0.435, 0.83), (0.455, 0.995), (0.285, 0.995)],
        [(0.1, 0.1), (0.5, 0.3), (0.9, 0.1), (0.9, 0.9), (0.5, 0.6), (0.1, 0.9)],  # concave
    ],
)
def test_simple_zones_are_accepted(polygon: list[tuple[float, float]]) -> None:
    zone = Zone(id="z", kind="no_parking", polygon=polygon)
    assert abs(polygon_area(zone.polygon)) > 0
    assert self_intersection(zone.polygon) is None
