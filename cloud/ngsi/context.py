"""JSON-LD ``@context`` URLs and NGSI-LD naming (URNs, media types)."""

from typing import Final

CORE_CONTEXT: Final = "https://uri.etsi.org/ngsi-ld/v1/ngsi-ld-core-context-v1.8.jsonld"
ALERT_CONTEXT: Final = (
    "https://raw.githubusercontent.com/smart-data-models/dataModel.Alert/master/context.jsonld"
)
DEVICE_CONTEXT: Final = (
    "https://raw.githubusercontent.com/smart-data-models/dataModel.Device/master/context.jsonld"
)
CONTEXT: Final = [ALERT_CONTEXT, DEVICE_CONTEXT, CORE_CONTEXT]
"""Sent in every entity; the data models' terms first, the NGSI-LD core context last."""

LD_JSON: Final = "application/ld+json"
DATA_PROVIDER: Final = "CityOps"


def urn(entity_type: str, local_id: str) -> str:
    """``urn:ngsi-ld:<Type>:<id>``, the NGSI-LD convention for entity ids."""
    return f"urn:ngsi-ld:{entity_type}:{local_id}"


def local_id(entity_id: str, entity_type: str) -> str | None:
    prefix = f"urn:ngsi-ld:{entity_type}:"
    return entity_id[len(prefix) :] if entity_id.startswith(prefix) else None
