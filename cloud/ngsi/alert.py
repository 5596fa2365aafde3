"""CityOps ``Event`` → Smart Data Models ``Alert`` (dataModel.Alert) in NGSI-LD."""

from typing import Any, Final, Literal

from cloud.ngsi.context import CONTEXT, DATA_PROVIDER, urn
from cloud.ngsi.forms import to_normalized
from shared.events import Event, EventKind, Severity

Form = Literal["normalized", "keyValues"]

ALERT_CATEGORIES: Final = frozenset(
    {"traffic", "naturalDisaster", "weather", "environment", "health", "security", "agriculture"}
)
ALERT_SUBCATEGORIES: Final = frozenset(
    {
        "airPollution", "assault", "asthmaAttack", "avalancheRisk", "avalanches", "bacteria",
        "badSeaState", "bikerOnRoad", "buildingFire", "bumpedPatient", "carAccident",
        "carStopped", "carWrongDirection", "civilDisorder", "coastalEvent", "coldWave",
        "crowdRisk", "earthquake", "fallenPatient", "fertilisation", "fireRisk", "flood",
        "floodRisk", "fog", "forestFire", "fungus", "hazardOnRoad", "heartAttack", "heatWave",
        "highAtmosphericPressure", "highHumidity", "highTemperature", "hurricane", "ice",
        "injuredBiker", "insect", "irrigation", "lowAtmosphericPressure", "lowHumidity",
        "lowTemperature", "microbe", "mite", "nematodes", "noxiousWeed", "pedestrianOnRoad",
        "pollenConcentration", "pothole", "rain_flood", "rainfall", "roadClosed", "roadWorks",
        "robbery", "rodent", "snail", "snow", "snow/ice", "snow_ice", "suspiciousAction",
        "thunderstorms", "tornado", "trafficJam", "tramApproaching", "tropicalCyclone",
        "tsunami", "virus", "waterPollution", "wind",
    }
)  # fmt: skip
"""``subCategory`` values upstream dataModel.Alert allows (its list and the weather alerts of
dataModel.Weather); the tests compare this with the upstream schema."""
_SUB_BY_FOLDED: Final = {s.casefold(): s for s in ALERT_SUBCATEGORIES}
_KIND_CATEGORY: Final[dict[EventKind, tuple[str, str | None]]] = {
    EventKind.ILLEGAL_PARKING: ("traffic", "carStopped"),
    EventKind.ABANDONED_OBJECT: ("security", "suspiciousAction"),
    EventKind.CROWDING: ("security", "crowdRisk"),
    EventKind.LINE_CROSSING: ("security", None),
    EventKind.CAMERA_TAMPER: ("security", "suspiciousAction"),
    EventKind.SENSOR_THRESHOLD: ("environment", None),
    EventKind.EXTERNAL: ("security", None),
}
_SEVERITY: Final = {
    Severity.INFO: "informational",
    Severity.LOW: "low",
    Severity.MEDIUM: "medium",
    Severity.HIGH: "high",
    Severity.CRITICAL: "critical",
}
_DATE_KEYS: Final = frozenset({"dateIssued", "validFrom", "validTo"})


def _iso(value: Any) -> str:
    return str(value.isoformat().replace("+00:00", "Z"))


def category_of(event: Event) -> tuple[str, str | None]:
    """SDM category/subCategory; a connector may set them as ``alert_category``/``alert_sub``."""
    category, sub = _KIND_CATEGORY[event.kind]
    wanted = event.attributes.get("alert_category")
    if isinstance(wanted, str) and wanted in ALERT_CATEGORIES:
        category = wanted
        sub = None
    wanted_sub = event.attributes.get("alert_sub")
    if isinstance(wanted_sub, str) and wanted_sub:
        sub = allowed_subcategory(wanted_sub)
    return category, sub


def allowed_subcategory(value: str) -> str | None:
    """*value* as an allowed ``subCategory`` (matched ignoring case), or None to omit it."""
    return _SUB_BY_FOLDED.get(value.strip().casefold())


def _source_sub(event: Event, sub: str | None) -> dict[str, str]:
    """A connector's own sub-category that upstream does not allow stays readable in ``data``."""
    wanted = event.attributes.get("alert_sub")
    return {"sourceSubCategory": wanted} if isinstance(wanted, str) and wanted != sub else {}


def alert_id(event_id: str) -> str:
    return urn("Alert", event_id)


def event_to_alert(
    event: Event, form: Form = "normalized", *, context: bool = True
) -> dict[str, Any]:
    """The ``Alert`` entity of *event*; ``context=False`` leaves ``@context`` to a Link header."""
    category, sub = category_of(event)
    entity: dict[str, Any] = {
        "id": alert_id(event.id),
        "type": "Alert",
        "category": category,
        "severity": _SEVERITY[event.severity],
        "dateIssued": _iso(event.observed_at),
        "validFrom": _iso(event.started_at),
        "alertSource": urn("Device", event.device_id),
        "dataProvider": DATA_PROVIDER,
        "description": event.summary or f"{event.kind.value} ({event.phase.value})",
        "data": {
            "kind": event.kind.value,
            "phase": event.phase.value,
            "deviceId": event.device_id,
            "dwellSeconds": event.dwell_s,
            "objects": len(event.objects),
            **({"zoneId": event.zone_id} if event.zone_id else {}),
            **({"cameraId": event.camera_id} if event.camera_id else {}),
            **_source_sub(event, sub),
        },
    }
    if sub is not None:
        entity["subCategory"] = sub
    if event.ended_at is not None:
        entity["validTo"] = _iso(event.ended_at)
    if event.location is not None:
        entity["location"] = {
            "type": "Point",
            "coordinates": [event.location.lon, event.location.lat],
        }
    if form == "normalized":
        entity = to_normalized(entity, date_keys=_DATE_KEYS)
    if context:
        entity["@context"] = CONTEXT
    return entity
