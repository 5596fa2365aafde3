"""The hardware interface of the sensor node: what ``device/`` (ESP32) and ``host/`` implement.

Only type checkers read this module's classes (MicroPython has no ``typing``); the node logic
refers to them in annotations, which MicroPython ignores.
"""

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Protocol

    class Random(Protocol):
        def getrandbits(self, k: int) -> int:
            """*k* (at most 32) random bits."""

    class Clock(Protocol):
        def now_ms(self) -> int:
            """Wall-clock time, Unix milliseconds (UTC), set by NTP on the device."""

        def uptime_ms(self) -> int:
            """Milliseconds since power-on (survives deep sleep on the device via RTC)."""

    class Storage(Protocol):
        """Byte-addressed persistent storage (a preallocated file in flash)."""

        def size(self) -> int: ...

        def read(self, offset: int, length: int) -> bytes: ...

        def write(self, offset: int, data: bytes) -> None: ...

    class Board(Protocol):
        """Sensors, battery and the little RTC memory that survives deep sleep."""

        def read_sensors(self) -> dict[str, float]:
            """Reading name -> value; a sensor that failed is left out (and logged)."""

        def battery_pct(self) -> float | None: ...

        def load_state(self) -> bytes: ...

        def save_state(self, data: bytes) -> None: ...

    class MqttClient(Protocol):
        """The subset of ``umqtt.simple.MQTTClient`` the node uses; failures raise ``OSError``."""

        def set_callback(self, f: "Callable[[bytes, bytes], None]") -> None: ...

        def set_last_will(
            self, topic: bytes, msg: bytes, retain: bool = False, qos: int = 0
        ) -> None: ...

        def connect(self, clean_session: bool = True) -> int: ...

        def publish(self, topic: bytes, msg: bytes, retain: bool = False, qos: int = 0) -> None: ...

        def subscribe(self, topic: bytes, qos: int = 0) -> None: ...

        def check_msg(self) -> None: ...

        def disconnect(self) -> None: ...
