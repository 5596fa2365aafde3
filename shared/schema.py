"""JSON Schema export of the wire contract, for firmware authors and external integrators."""

import json
from pathlib import Path

from pydantic import BaseModel

from shared.acks import EventAck
from shared.commands import Command, CommandAck
from shared.config import DeviceConfig
from shared.events import Event
from shared.telemetry import DeviceStatus, Telemetry

CONTRACT: dict[str, type[BaseModel]] = {
    "event": Event,
    "telemetry": Telemetry,
    "device-status": DeviceStatus,
    "device-config": DeviceConfig,
    "command": Command,
    "command-ack": CommandAck,
    "event-ack": EventAck,
}


def export(directory: Path, extra: dict[str, type[BaseModel]] | None = None) -> list[Path]:
    """Write one ``<name>.schema.json`` per model into *directory*; return the paths written."""
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for name, model in {**CONTRACT, **(extra or {})}.items():
        schema = model.model_json_schema(mode="validation")
        schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
        schema["$id"] = f"https://cityops.example/schemas/v1/{name}.schema.json"
        path = directory / f"{name}.schema.json"
        path.write_text(json.dumps(schema, indent=2, sort_keys=True) + "\n")
        written.append(path)
    return written
