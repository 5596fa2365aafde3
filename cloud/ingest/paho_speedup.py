"""Share paho-mqtt's MQTT 5 property tables instead of rebuilding them for every message.

``paho.mqtt.properties.Properties.__init__`` builds two lookup tables (27 names, 27 property
specs) from scratch, and paho makes one ``Properties`` per received PUBLISH. The profile of the
ingest benchmark had it as the largest single cost. The tables are never written after
construction, so one shared copy is safe; values still live on each instance.
"""

from typing import Any

from paho.mqtt import _packet
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

_TEMPLATE = Properties(PacketTypes.PUBLISH)  # type: ignore[no-untyped-call]
_TABLE_ATTRS = frozenset({"packetType", "types", "names", "properties"})


class SharedTableProperties(Properties):
    """``Properties`` whose lookup tables are shared by every instance."""

    def __init__(self, packetType: Any) -> None:  # noqa: N803 - paho's parameter name
        self.packetType = packetType
        self.types = _TEMPLATE.types
        self.names = _TEMPLATE.names
        self.properties = _TEMPLATE.properties

    def clear(self) -> None:
        """Drop the property values (paho's version probes every known name with hasattr)."""
        for key in [k for k in vars(self) if k not in _TABLE_ATTRS]:
            delattr(self, key)


def install() -> bool:
    """Make paho's packet decoder use the shared tables (idempotent); False if paho changed."""
    current = getattr(_packet, "Properties", None)
    if current is SharedTableProperties:
        return True
    if current is not Properties:
        return False
    setattr(_packet, "Properties", SharedTableProperties)  # noqa: B010 - a private module
    return True
