"""A registered CityOps device → Smart Data Models ``Device`` (dataModel.Device) in NGSI-LD."""

from datetime import datetime
from typing import Any, Final

from pydantic import BaseModel, ConfigDict

from cloud.db.devices import Device
from cloud.ngsi.alert import Form
from cloud.ngsi.context import CONTEXT, DATA_PROVIDER, urn
from cloud.ngsi.forms import to_normalized

_DATE_KEYS: Final = frozenset({"dateLastValueReported", "dateInstalled"})
_READING_PROPERTY: Final = {
    "pm25": "airPollution",
    "pm10": "airPollution",
    "no2": "airPollution",
    "o3": "airPollution",
    "co2": "airPollution",
    "noise": "noiseLevel",
    "temperature": "temperature",
    "humidity": "humidity",
    "bay": "occupancy",
    "pressure": "atmosphericPressure",
}
_CAMERA_PROPERTIES: Final = ["motion", "occupancy"]
_SENSOR_TYPES: Final = ("esp32", "esp8266", "rp2040", "sensor")


class DeviceFacts(BaseModel):
    """What the ``Device`` entity is built from (a row of the device registry, typed)."""

    model_config = ConfigDict(frozen=True)

    id: str
    device_type: str = ""
    site: str = ""
    department: str | None = None
    lat: float | None = None
    lon: float | None = None
    online: bool = False
    revoked: bool = False
    last_seen: datetime | None = None
    created_at: datetime | None = None
    balena_uuid: str | None = None
    readings: list[str] = []
    battery_pct: float | None = None
    firmware: str | None = None

    @classmethod
    def of(cls, row: Device) -> "DeviceFacts":
        telemetry: dict[str, Any] = row.last_telemetry or {}
        readings = telemetry.get("readings")
        battery = telemetry.get("battery_pct")
        firmware = telemetry.get("firmware")
        return cls(
            id=row.id,
            device_type=row.device_type,
            site=row.site,
            department=row.department,
            lat=row.lat,
            lon=row.lon,
            online=row.online,
            revoked=row.revoked,
            last_seen=row.last_seen,
            created_at=row.created_at,
            balena_uuid=row.balena_uuid,
            readings=sorted(readings) if isinstance(readings, dict) else [],
            battery_pct=float(battery) if isinstance(battery, int | float) else None,
            firmware=firmware if isinstance(firmware, str) else None,
        )

    @property
    def is_sensor(self) -> bool:
        return bool(self.readings) or self.device_type.startswith(_SENSOR_TYPES)


def controlled_properties(device: DeviceFacts) -> list[str]:
    if not device.is_sensor:
        return list(_CAMERA_PROPERTIES)
    found = {
        prop
        for reading in device.readings
        for prefix, prop in _READING_PROPERTY.items()
        if reading.startswith(prefix)
    }
    return sorted(found) or ["airPollution"]


def _iso(value: datetime) -> str:
    return value.isoformat().replace("+00:00", "Z")


def device_id(local: str) -> str:
    return urn("Device", local)


def device_to_entity(
    device: DeviceFacts, form: Form = "normalized", *, context: bool = True
) -> dict[str, Any]:
    state = "revoked" if device.revoked else ("online" if device.online else "offline")
    entity: dict[str, Any] = {
        "id": device_id(device.id),
        "type": "Device",
        "name": device.id,
        "controlledProperty": controlled_properties(device),
        # Upstream replaces the raw ``category`` with ``deviceCategory`` (it clashed with other
        # models' ``category``, e.g. Alert's, in a shared @context).
        "deviceCategory": ["sensor"] if device.is_sensor else ["sensor", "multimedia"],
        "deviceState": state,
        "supportedProtocol": ["mqtt"],
        "dataProvider": DATA_PROVIDER,
        "description": f"{device.device_type or 'device'} at {device.site or 'unknown site'}",
    }
    if device.department:
        entity["owner"] = [device.department]
    if device.last_seen is not None:
        entity["dateLastValueReported"] = _iso(device.last_seen)
    if device.created_at is not None:
        entity["dateInstalled"] = _iso(device.created_at)
    if device.balena_uuid:
        entity["serialNumber"] = device.balena_uuid
    if device.firmware:
        entity["firmwareVersion"] = device.firmware
    if device.battery_pct is not None:
        entity["batteryLevel"] = round(device.battery_pct / 100.0, 4)
    if device.lat is not None and device.lon is not None:
        entity["location"] = {"type": "Point", "coordinates": [device.lon, device.lat]}
    if form == "normalized":
        entity = to_normalized(entity, date_keys=_DATE_KEYS)
    if context:
        entity["@context"] = CONTEXT
    return entity
