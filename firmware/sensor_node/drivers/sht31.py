"""Sensirion SHT31 temperature/humidity over I2C: single-shot measurement, CRC-8 checked."""

from firmware.sensor_node.crc import crc8_sensirion

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Protocol

    class I2C(Protocol):
        """The two ``machine.I2C`` methods the driver needs."""

        def writeto(self, addr: int, buf: bytes) -> int: ...

        def readfrom(self, addr: int, nbytes: int) -> bytes: ...


ADDRESS = 0x44
MEASURE_HIGH = b"\x24\x00"
"""Single shot, high repeatability, no clock stretching."""
MEASURE_MS = 16
FULL_SCALE = 65535.0


class CrcError(ValueError):
    pass


class Climate:
    def __init__(self, temperature_c: float, humidity_pct: float) -> None:
        self.temperature_c = temperature_c
        self.humidity_pct = humidity_pct


def word_with_crc(value: int) -> bytes:
    data = bytes([(value >> 8) & 0xFF, value & 0xFF])
    return data + bytes([crc8_sensirion(data)])


def decode(raw: bytes) -> Climate:
    """Six bytes: temperature word, CRC, humidity word, CRC."""
    for i in (0, 3):
        if crc8_sensirion(raw[i : i + 2]) != raw[i + 2]:
            raise CrcError(("temperature" if i == 0 else "humidity") + ": CRC mismatch")
    t_raw = (raw[0] << 8) | raw[1]
    h_raw = (raw[3] << 8) | raw[4]
    return Climate(-45.0 + 175.0 * t_raw / FULL_SCALE, 100.0 * h_raw / FULL_SCALE)


class Sht31:
    def __init__(self, i2c: "I2C", sleep_ms: "Callable[[int], None]", addr: int = ADDRESS) -> None:
        self.i2c = i2c
        self.sleep_ms = sleep_ms
        self.addr = addr

    def measure(self) -> Climate:
        self.i2c.writeto(self.addr, MEASURE_HIGH)
        self.sleep_ms(MEASURE_MS)
        return decode(self.i2c.readfrom(self.addr, 6))
