"""Clocks and randomness for the host port."""

import random
import time


class SystemClock:
    def __init__(self) -> None:
        self._boot = time.monotonic()

    def now_ms(self) -> int:
        return int(time.time() * 1000)

    def uptime_ms(self) -> int:
        return int((time.monotonic() - self._boot) * 1000)


class SimClock:
    """Simulated time: starts at *start_ms* and moves only by ``advance`` (deep sleep included)."""

    def __init__(self, start_ms: int) -> None:
        self.start_ms = start_ms
        self.t_ms = start_ms

    def now_ms(self) -> int:
        return self.t_ms

    def uptime_ms(self) -> int:
        return self.t_ms - self.start_ms

    def advance(self, ms: int) -> None:
        self.t_ms += ms


def host_random(seed: int | None = None) -> random.Random:
    """Random bits for UUIDv7 tails (``os.urandom`` on the ESP32 port, seeded here for tests)."""
    return random.Random(seed)  # noqa: S311 - ids need uniqueness, not secrecy
