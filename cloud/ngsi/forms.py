"""NGSI-LD representations: key-values ↔ normalized (Property / GeoProperty / Relationship)."""

from collections.abc import Mapping
from typing import Any, Final

_RESERVED: Final = frozenset({"id", "type", "@context"})
_GEO_KEYS: Final = frozenset({"location", "observationSpace", "operationSpace"})
_GEO_TYPES: Final = frozenset(
    {"Point", "LineString", "Polygon", "MultiPoint", "MultiLineString", "MultiPolygon"}
)


def _is_geo(key: str, value: Any) -> bool:
    return key in _GEO_KEYS or (isinstance(value, Mapping) and value.get("type") in _GEO_TYPES)


def _is_relationship(key: str) -> bool:
    """Smart Data Models name relationships ``ref<Thing>`` (refDevice, refDeviceModel...)."""
    return key.startswith("ref") and key[3:4].isupper()


def to_normalized(entity: Mapping[str, Any], *, date_keys: frozenset[str]) -> dict[str, Any]:
    """Normalized form of a key-values *entity*; ``date_keys`` become typed ``DateTime`` values."""
    out: dict[str, Any] = {}
    for key, value in entity.items():
        if key in _RESERVED:
            out[key] = value
        elif _is_geo(key, value):
            out[key] = {"type": "GeoProperty", "value": value}
        elif _is_relationship(key):
            out[key] = {"type": "Relationship", "object": value}
        elif key in date_keys:
            out[key] = {"type": "Property", "value": {"@type": "DateTime", "@value": value}}
        else:
            out[key] = {"type": "Property", "value": value}
    return out


def to_key_values(entity: Mapping[str, Any]) -> dict[str, Any]:
    """Key-values form of an entity in either form (what connector mappings read)."""
    out: dict[str, Any] = {}
    for key, item in entity.items():
        if key in _RESERVED or not isinstance(item, Mapping):
            out[key] = item
            continue
        kind = item.get("type")
        if kind == "Relationship" and "object" in item:
            out[key] = item["object"]
        elif kind in {"Property", "GeoProperty"} and "value" in item:
            value = item["value"]
            if isinstance(value, Mapping) and "@value" in value:
                value = value["@value"]
            out[key] = value
        else:
            out[key] = dict(item)  # a plain JSON object in key-values form (GeoJSON, data)
    return out
