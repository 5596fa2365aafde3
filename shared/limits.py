"""Numeric limits of the wire contract, in one place so edge, cloud and firmware agree."""

from typing import Final

SCHEMA_VERSION: Final = 1
CONTRACT_VERSION: Final = 2
"""Delivery contract a device states in its ``DeviceStatus.contract``.

1: the device deletes an event from its outbox on the broker's PUBACK (agents before #17).
2: the device keeps it until the cloud confirms it stored it (``EventAck`` on ``event/ack``),
and sends it again, with the same id, while no confirmation comes.
"""
MAX_ACK_IDS: Final = 1000
"""Most event ids in one ``EventAck`` (about 40 KB of JSON)."""
MAX_PAYLOAD_BYTES: Final = 256 * 1024
"""Largest MQTT payload any CityOps message may have (snapshot included)."""
MAX_PACKET_BYTES: Final = MAX_PAYLOAD_BYTES + 1024
"""Largest MQTT packet: the largest payload plus its topic and headers. Brokers are configured
with it (``max_packet_size``) and the ingestor advertises it (MQTT 5 Maximum Packet Size)."""
MAX_SNAPSHOT_BYTES: Final = 96 * 1024
"""Largest JPEG an event or command acknowledgement may carry."""
MAX_FUTURE_SKEW_S: Final = 300.0
"""How far ahead of the receiver's clock a timestamp may be (device clocks drift)."""
MAX_OBJECTS: Final = 64
MAX_ZONES: Final = 64
MAX_POLYGON_POINTS: Final = 64
MAX_ATTRIBUTES: Final = 32
MAX_TEXT: Final = 256
DEVICE_ID_PATTERN: Final = r"^[a-z0-9][a-z0-9_-]{0,62}$"
"""Lower-case letters, digits, '-' and '_': no '/', '+', '#' or '$' can reach a topic."""
LOCAL_ID_PATTERN: Final = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$"
"""Camera, zone and line ids: short, printable, no topic or path separators."""
