"""Parking-bay occupancy from a 3-axis magnetometer under the bay (e.g. QMC5883L), with hysteresis.

A car's steel distorts the Earth's field: occupied when the field departs from the empty-bay
baseline by more than ``on_ut``, free again when it is back within ``off_ut``.
"""

import math
import struct

QMC5883L_ADDRESS = 0x0D
QMC5883L_DATA_REG = 0x00
LSB_PER_UT_2G = 120.0
"""At the +/-2 G range the QMC5883L gives 12000 LSB/G, i.e. 120 LSB per microtesla."""


def decode_qmc5883l(raw: bytes) -> "tuple[float, float, float]":
    """Six bytes X, Y, Z little-endian signed -> microtesla."""
    x, y, z = struct.unpack("<hhh", raw)
    return (x / LSB_PER_UT_2G, y / LSB_PER_UT_2G, z / LSB_PER_UT_2G)


class BayDetector:
    def __init__(
        self, baseline: "tuple[float, float, float]", on_ut: float = 12.0, off_ut: float = 6.0
    ) -> None:
        if off_ut >= on_ut:
            raise ValueError("off_ut: must be below on_ut (hysteresis)")
        self.baseline = baseline
        self.on_ut = on_ut
        self.off_ut = off_ut
        self.occupied = False

    def deviation(self, field: "tuple[float, float, float]") -> float:
        bx, by, bz = self.baseline
        return math.sqrt((field[0] - bx) ** 2 + (field[1] - by) ** 2 + (field[2] - bz) ** 2)

    def update(self, field: "tuple[float, float, float]") -> bool:
        d = self.deviation(field)
        if self.occupied and d < self.off_ut:
            self.occupied = False
        elif not self.occupied and d > self.on_ut:
            self.occupied = True
        return self.occupied
