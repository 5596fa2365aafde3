"""A simulated sensor board: the same drivers as the ESP32, fed with bytes and samples from a scene.

Each sensor is simulated at its bus (PMS5003 UART frames, SHT31 I2C bytes with CRC, I2S samples of
a tone at the scene's dB(A), QMC5883L field bytes), so the drivers' parsing runs on the host too.
"""

import math
import struct
from collections.abc import Callable
from dataclasses import dataclass

from firmware.sensor_node.drivers import magnetometer, noise, pms5003, sht31

SAMPLE_RATE = 16_000
NOISE_WINDOW_S = 0.05
TONE_HZ = 1000.0
CAR_FIELD_UT = (18.0, -9.0, 25.0)
EARTH_FIELD_UT = (22.0, 1.5, -40.0)


@dataclass(frozen=True, slots=True)
class Scene:
    """What the sensors would measure at one moment."""

    pm25_ugm3: int = 8
    temperature_c: float = 18.5
    humidity_pct: float = 62.0
    noise_dba: float = 55.0
    car_in_bay: bool = False
    battery_pct: float = 87.0


class SimulatedSht31Bus:
    """I2C bus with an SHT31 at 0x44 that answers a single-shot measurement."""

    def __init__(self) -> None:
        self.scene = Scene()
        self.commands: list[bytes] = []

    def writeto(self, addr: int, buf: bytes) -> int:
        if addr != sht31.ADDRESS:
            raise OSError(19, "ENODEV")  # what machine.I2C raises for a missing device
        self.commands.append(bytes(buf))
        return 1

    def readfrom(self, addr: int, nbytes: int) -> bytes:
        if addr != sht31.ADDRESS:
            raise OSError(19, "ENODEV")
        t_raw = round((self.scene.temperature_c + 45.0) * sht31.FULL_SCALE / 175.0)
        h_raw = round(self.scene.humidity_pct * sht31.FULL_SCALE / 100.0)
        return (sht31.word_with_crc(t_raw) + sht31.word_with_crc(h_raw))[:nbytes]


def tone_i2s(level_dba: float, seconds: float = NOISE_WINDOW_S) -> bytes:
    """32-bit I2S words of a 1 kHz tone that an INMP441 would give at *level_dba*."""
    dbfs = level_dba - 94.0 + noise.INMP441_DBFS_AT_94_DB
    amplitude = 10 ** (dbfs / 20)
    n = int(SAMPLE_RATE * seconds)
    words = [
        int(amplitude * math.sin(2 * math.pi * TONE_HZ * i / SAMPLE_RATE) * 0x7FFFFF) << 8
        for i in range(n)
    ]
    return struct.pack(f"<{n}i", *words)


def field_bytes(field: tuple[float, float, float]) -> bytes:
    x, y, z = (round(v * magnetometer.LSB_PER_UT_2G) for v in field)
    return struct.pack("<hhh", x, y, z)


class SimulatedBoard:
    """Implements ``hal.Board``; ``scene`` decides what the next ``read_sensors`` sees."""

    def __init__(self, scene_at: Callable[[int], Scene] | None = None) -> None:
        self.scene_at = scene_at or (lambda _n: Scene())
        self.reads = 0
        self.sht_bus = SimulatedSht31Bus()
        self.sht = sht31.Sht31(self.sht_bus, sleep_ms=lambda _ms: None)
        self.bay = magnetometer.BayDetector(baseline=EARTH_FIELD_UT)
        self.state = b""
        self._scene = Scene()

    def read_sensors(self) -> dict[str, float]:
        scene = self.scene_at(self.reads)
        self._scene = scene
        self.reads += 1
        readings: dict[str, float] = {}
        uart = b"\x00\x13" + pms5003.encode_frame(scene.pm25_ugm3 // 2, scene.pm25_ugm3, 20)
        pm = pms5003.find_frame(uart)
        if pm is not None:
            readings["pm25_ugm3"] = float(pm.pm25)
        self.sht_bus.scene = scene
        climate = self.sht.measure()
        readings["temperature_c"] = climate.temperature_c
        readings["humidity_pct"] = climate.humidity_pct
        samples = noise.unpack_i2s_32(tone_i2s(scene.noise_dba))
        readings["noise_dba"] = noise.dba(samples, SAMPLE_RATE)
        earth = EARTH_FIELD_UT
        car = CAR_FIELD_UT if scene.car_in_bay else (0.0, 0.0, 0.0)
        field = (earth[0] + car[0], earth[1] + car[1], earth[2] + car[2])
        occupied = self.bay.update(magnetometer.decode_qmc5883l(field_bytes(field)))
        readings["bay_occupied"] = 1.0 if occupied else 0.0
        return readings

    def battery_pct(self) -> float | None:
        return self._scene.battery_pct

    def load_state(self) -> bytes:
        return self.state

    def save_state(self, data: bytes) -> None:
        self.state = data
