"""A small MQTT 5 subscriber for the ingestor's hot path (QoS <= 1, manual acknowledgements)."""

from cloud.ingest.wire.packets import ConnectOptions
from cloud.ingest.wire.protocol import ConnectionLostError
from cloud.ingest.wire.session import ConnectRefusedError, Endpoint, WireSession

__all__ = [
    "ConnectOptions",
    "ConnectRefusedError",
    "ConnectionLostError",
    "Endpoint",
    "WireSession",
]
