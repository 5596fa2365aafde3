"""The upstream FIWARE Smart Data Models schemas, read from ``../shared`` and resolved offline.

The ``schema.json`` files of dataModel.Alert and dataModel.Device, and the common definitions
they ``$ref``, are provided read-only beside the checkout (``schemas/smart-data-models``; the
commits are in its PROVENANCE.md). They are never copied into the project: every ``$ref`` URL
under ``https://smart-data-models.github.io/`` is mapped to its file there, nothing is fetched.

Upstream describes the key-values form only; ``NORMALIZED`` is the NGSI-LD rule for the other
form (every attribute a Property, GeoProperty or Relationship), which is then compared with
the key-values form through ``to_key_values``.
"""

import json
import re
from datetime import datetime
from functools import cache
from pathlib import Path
from typing import Any, Final

import pytest
from jsonschema import Draft202012Validator, FormatChecker
from referencing import Registry
from referencing.jsonschema import DRAFT202012

from cityops.paths import material_dir

UPSTREAM_URL: Final = "https://smart-data-models.github.io/"
_FILES: Final = {
    "dataModel.Alert/Alert/schema.json": "dataModel.Alert/Alert/schema.json",
    "dataModel.Alert/alert/schema.json": "dataModel.Alert/Alert/schema.json",  # its own $id
    "dataModel.Alert/alert-schema.json": "dataModel.Alert/alert-schema.json",
    "dataModel.Device/Device/schema.json": "dataModel.Device/Device/schema.json",
    "dataModel.Device/device-schema.json": "dataModel.Device/device-schema.json",
    "data-models/common-schema.json": "data-models/common-schema.json",
    "dataModel.Weather/weather-schema.json": "dataModel.Weather/weather-schema.json",
}
_URL_IN_REF: Final = re.compile(r'"\$ref":\s*"(https?://[^"#]+)')


def schemas_dir() -> Path:
    path = material_dir() / "schemas" / "smart-data-models"
    if not (path / "PROVENANCE.md").exists():
        pytest.skip(f"upstream Smart Data Models schemas not found at {path}")
    return path


def _load(relative: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((schemas_dir() / relative).read_text())
    return data


@cache
def registry() -> Registry[Any]:
    """Every upstream URL the schemas ``$ref``, mapped to the files beside the checkout."""
    resources = [
        (UPSTREAM_URL + url, DRAFT202012.create_resource(_load(path)))
        for url, path in _FILES.items()
    ]
    found: Registry[Any] = Registry().with_resources(resources)
    for _, resource in resources:  # every reference must be one of the files above
        for url in _URL_IN_REF.findall(json.dumps(resource.contents)):
            assert url in found, f"upstream $ref {url} has no local file"
    return found


_RFC3339: Final = re.compile(
    r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})$", re.IGNORECASE
)
_URI: Final = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*:[^\s]+$")


def _date_time(value: object) -> bool:
    if not isinstance(value, str):
        return True
    if not _RFC3339.match(value):
        return False
    datetime.fromisoformat(value)  # raises on an impossible date
    return True


def _uri(value: object) -> bool:
    return not isinstance(value, str) or bool(_URI.match(value))


def _checker() -> FormatChecker:
    """Formats checked for real: jsonschema skips ``uri`` without an optional package."""
    checker = FormatChecker()
    checker.checks("date-time", raises=ValueError)(_date_time)
    checker.checks("uri")(_uri)
    return checker


def validator(schema: dict[str, Any]) -> Draft202012Validator:
    Draft202012Validator.check_schema(schema)
    return Draft202012Validator(schema, registry=registry(), format_checker=_checker())


def alert() -> Draft202012Validator:
    """dataModel.Alert ``Alert/schema.json``, key-values form."""
    return validator(_load(_FILES["dataModel.Alert/Alert/schema.json"]))


def device() -> Draft202012Validator:
    """dataModel.Device ``Device/schema.json``, key-values form."""
    return validator(_load(_FILES["dataModel.Device/Device/schema.json"]))


def alert_subcategories() -> set[str]:
    """The ``subCategory`` values upstream allows (its own list and the weather alerts)."""
    schema = _load(_FILES["dataModel.Alert/Alert/schema.json"])
    (own,) = (
        part["properties"]["subCategory"]
        for part in schema["allOf"]
        if "subCategory" in part.get("properties", {})
    )
    values: set[str] = set()
    for option in own["anyOf"]:
        if "enum" in option:
            values |= set(option["enum"])
        else:
            values |= set(registry().resolver().lookup(option["$ref"]).contents["enum"])
    return values


def examples(model: str) -> list[Path]:
    return sorted((schemas_dir() / f"dataModel.{model}" / model / "examples").glob("*.json"))


_ENTITY_ID: Final[dict[str, Any]] = {"type": "string", "format": "uri", "pattern": "^urn:ngsi-ld:"}
NORMALIZED: Final[dict[str, Any]] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "title": "NGSI-LD normalized entity: every attribute a Property, GeoProperty or Relationship",
    "type": "object",
    "required": ["id", "type"],
    "properties": {
        "id": _ENTITY_ID,
        "type": {"type": "string"},
        "@context": {"anyOf": [{"type": "string"}, {"type": "array", "items": {"type": "string"}}]},
    },
    "additionalProperties": {
        "oneOf": [
            {
                "type": "object",
                "required": ["type", "value"],
                "properties": {"type": {"const": "Property"}},
            },
            {
                "type": "object",
                "required": ["type", "value"],
                "properties": {
                    "type": {"const": "GeoProperty"},
                    "value": {
                        "type": "object",
                        "required": ["type", "coordinates"],
                        "properties": {"type": {"const": "Point"}},
                    },
                },
            },
            {
                "type": "object",
                "required": ["type", "object"],
                "properties": {"type": {"const": "Relationship"}, "object": _ENTITY_ID},
            },
        ]
    },
}


def normalized() -> Draft202012Validator:
    return validator(NORMALIZED)
