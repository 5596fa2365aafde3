"""NGSI-LD: Alert/Device output validates; context-broker notifications open incidents."""

import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from jsonschema import ValidationError

from cloud.connectors.config import SourcesConfig
from cloud.connectors.hub import ConnectorHub
from cloud.db.devices import Device
from cloud.ngsi.alert import ALERT_SUBCATEGORIES, event_to_alert
from cloud.ngsi.context import CONTEXT
from cloud.ngsi.device import DeviceFacts, device_to_entity
from cloud.ngsi.forms import to_key_values
from cloud.ngsi.routes import build_ngsi_router
from cloud.ops.models import ChangeType
from shared.events import (
    Box,
    DetectedObject,
    Event,
    EventKind,
    Location,
    Phase,
    Severity,
)
from shared.ids import new_id
from tests.cloud.integrations import sdm_upstream
from tests.cloud.integrations.conftest import Pipeline

TOKEN = "orion-notify-token"
NOW = datetime.now(UTC).replace(microsecond=0)


def event(kind: EventKind, **extra: Any) -> Event:
    fields: dict[str, Any] = {
        "id": new_id(),
        "device_id": "dev-a",
        "camera_id": "cam0",
        "kind": kind,
        "severity": Severity.HIGH,
        "started_at": NOW - timedelta(minutes=10),
        "observed_at": NOW,
        "zone_id": "praca-comercio",
        "location": Location(lat=38.7075, lon=-9.1364),
        "summary": "bag left near the arcade",
        "objects": [
            DetectedObject(
                label="backpack", score=0.8, box=Box(x1=0.1, y1=0.2, x2=0.3, y2=0.4), track_id=3
            )
        ],
    }
    fields.update(extra)
    return Event(**fields)


ALL_KINDS = [
    event(EventKind.ABANDONED_OBJECT),
    event(EventKind.ILLEGAL_PARKING, severity=Severity.INFO, location=None),
    event(EventKind.CROWDING, phase=Phase.END, ended_at=NOW, summary=""),
    event(EventKind.LINE_CROSSING, severity=Severity.LOW),
    event(EventKind.CAMERA_TAMPER, severity=Severity.CRITICAL),
    event(EventKind.SENSOR_THRESHOLD, camera_id=None, objects=[]),
    event(EventKind.EXTERNAL, attributes={"alert_category": "weather", "alert_sub": "flood"}),
    event(EventKind.EXTERNAL, attributes={"alert_category": "health", "alert_sub": "HeatWave"}),
    event(EventKind.EXTERNAL, attributes={"alert_sub": "noiseComplaint"}),
]
"""Every event kind, and connector events whose sub-category is allowed, mis-cased or not
allowed by upstream (``noiseComplaint``)."""


@pytest.mark.parametrize(
    "ev", ALL_KINDS, ids=[f"{e.kind.value}-{i}" for i, e in enumerate(ALL_KINDS)]
)
def test_alert_validates_in_both_forms(ev: Event) -> None:
    key_values = event_to_alert(ev, "keyValues")
    sdm_upstream.alert().validate(key_values)
    normalized = event_to_alert(ev, "normalized")
    sdm_upstream.normalized().validate(normalized)
    # The normalized form carries exactly the key-values content.
    assert to_key_values(normalized) == key_values
    sdm_upstream.alert().validate(to_key_values(normalized))
    assert key_values["@context"] == CONTEXT
    assert key_values["id"] == f"urn:ngsi-ld:Alert:{ev.id}"
    assert normalized["dateIssued"]["value"]["@type"] == "DateTime"
    assert normalized["alertSource"] == {"type": "Property", "value": "urn:ngsi-ld:Device:dev-a"}


def test_alert_maps_kind_severity_and_location() -> None:
    alert = event_to_alert(ALL_KINDS[0], "keyValues")
    assert (alert["category"], alert["subCategory"]) == ("security", "suspiciousAction")
    assert alert["severity"] == "high"
    assert alert["location"] == {"type": "Point", "coordinates": [-9.1364, 38.7075]}
    assert alert["dateIssued"] == NOW.isoformat().replace("+00:00", "Z")
    info = event_to_alert(ALL_KINDS[1], "keyValues")
    assert (info["category"], info["subCategory"], info["severity"]) == (
        "traffic",
        "carStopped",
        "informational",
    )
    assert "location" not in info
    assert event_to_alert(ALL_KINDS[6], "keyValues")["category"] == "weather"


def test_connector_subcategory_is_mapped_to_an_allowed_value_or_omitted() -> None:
    assert sdm_upstream.alert_subcategories() == ALERT_SUBCATEGORIES
    assert event_to_alert(ALL_KINDS[6], "keyValues")["subCategory"] == "flood"
    assert event_to_alert(ALL_KINDS[7], "keyValues")["subCategory"] == "heatWave"
    noise = event_to_alert(ALL_KINDS[8], "keyValues")
    assert "subCategory" not in noise
    assert noise["data"]["sourceSubCategory"] == "noiseComplaint"  # still readable


def test_upstream_examples_validate() -> None:
    """The validator set-up is right: upstream's own key-values examples pass it.

    (Upstream's ``example-normalized.json`` files are NGSI v2, not NGSI-LD: not checked here.)
    """
    checked = 0
    for model, validator in (("Alert", sdm_upstream.alert()), ("Device", sdm_upstream.device())):
        for path in sdm_upstream.examples(model):
            if "normalized" in path.name:
                continue
            data = json.loads(path.read_text())
            for entity in data if isinstance(data, list) else [data]:
                validator.validate(entity)
                checked += 1
    assert checked >= 4


def test_upstream_schemas_catch_what_they_should() -> None:
    """The upstream schemas are not vacuous: broken entities fail them."""
    good = event_to_alert(ALL_KINDS[0], "keyValues")
    alert = sdm_upstream.alert()
    for broken in (
        {k: v for k, v in good.items() if k != "alertSource"},
        {**good, "severity": "urgent"},
        {**good, "category": "crime"},
        {**good, "subCategory": "noiseComplaint"},
        {**good, "dateIssued": "2026-01-01 10:00"},
    ):
        with pytest.raises(ValidationError):
            alert.validate(broken)
    camera = device_to_entity(DEVICES[0], "keyValues")
    device = sdm_upstream.device()
    for broken in (
        {**camera, "supportedProtocol": ["https"]},
        {**camera, "deviceCategory": ["camera"]},
        {**camera, "controlledProperty": ["faces"]},
        {**camera, "batteryLevel": 1.5},
    ):
        with pytest.raises(ValidationError):
            device.validate(broken)
    with pytest.raises(ValidationError):
        sdm_upstream.normalized().validate({**event_to_alert(ALL_KINDS[0]), "severity": "high"})


DEVICES = [
    DeviceFacts(
        id="cam-baixa-01",
        device_type="raspberrypi5",
        site="Baixa",
        department="civil-protection",
        lat=38.71,
        lon=-9.139,
        online=True,
        last_seen=NOW,
        created_at=NOW - timedelta(days=30),
        balena_uuid="a" * 32,
        firmware="1.4.2",
    ),
    DeviceFacts(
        id="air-olivais",
        device_type="esp32",
        readings=["pm25_ugm3", "noise_dba", "temperature_c"],
        battery_pct=81.0,
    ),
    DeviceFacts(id="bare", revoked=True),
]


@pytest.mark.parametrize("device", DEVICES, ids=[d.id for d in DEVICES])
def test_device_validates_in_both_forms(device: DeviceFacts) -> None:
    key_values = device_to_entity(device, "keyValues")
    sdm_upstream.device().validate(key_values)
    normalized = device_to_entity(device, "normalized")
    sdm_upstream.normalized().validate(normalized)
    assert to_key_values(normalized) == key_values


def test_device_properties() -> None:
    camera = device_to_entity(DEVICES[0], "keyValues")
    assert camera["controlledProperty"] == ["motion", "occupancy"]
    assert camera["deviceCategory"] == ["sensor", "multimedia"]
    assert "category" not in camera  # upstream deprecates the raw category
    assert camera["deviceState"] == "online"
    sensor = device_to_entity(DEVICES[1], "keyValues")
    assert sensor["controlledProperty"] == ["airPollution", "noiseLevel", "temperature"]
    assert sensor["batteryLevel"] == 0.81
    assert device_to_entity(DEVICES[2], "keyValues")["deviceState"] == "revoked"


# --------------------------------------------------------------------------- HTTP routes


@pytest.fixture
async def http(
    pipeline: Pipeline, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[httpx.AsyncClient]:
    monkeypatch.setenv("TEST_ORION_TOKEN", TOKEN)
    sources = SourcesConfig.model_validate(
        {
            "sources": [
                {
                    "id": "porto-orion",
                    "type": "ngsi_ld",
                    "secret_env": "TEST_ORION_TOKEN",
                    "mapping": {
                        "id": "id",
                        "time": "dateIssued",
                        "kind": {"path": "subCategory", "map": {"carStopped": "illegal_parking"}},
                        "severity": {
                            "path": "severity",
                            "map": {
                                "informational": "info",
                                "low": "low",
                                "medium": "medium",
                                "high": "high",
                                "critical": "critical",
                            },
                        },
                        "location": {"geojson": "location"},
                        "summary": "{description}",
                        "attributes": {"alert_category": "category", "alert_sub": "subCategory"},
                    },
                }
            ]
        }
    )
    hub = ConnectorHub(sources, pipeline.writer)
    with pipeline.sessions() as session:
        session.add(
            Device(id="dev-a", site="Baixa", device_type="raspberrypi5", lat=38.71, lon=-9.139)
        )
        session.commit()
    app = FastAPI()
    app.include_router(build_ngsi_router(store=pipeline.store, sessions=pipeline.sessions, hub=hub))
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://t"
    ) as client:
        yield client


async def test_entities_routes_serve_valid_alerts_and_devices(
    http: httpx.AsyncClient, pipeline: Pipeline
) -> None:
    stored = ALL_KINDS[:3]
    await pipeline.store.write_events(stored)
    response = await http.get("/ngsi-ld/v1/entities", params={"type": "Alert"})
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/ld+json"
    alerts = response.json()
    assert {a["id"] for a in alerts} == {f"urn:ngsi-ld:Alert:{e.id}" for e in stored}
    for alert in alerts:
        sdm_upstream.normalized().validate(alert)
        sdm_upstream.alert().validate(to_key_values(alert))

    plain = await http.get(
        "/ngsi-ld/v1/entities",
        params={"type": "Device", "options": "keyValues"},
        headers={"Accept": "application/json"},
    )
    assert plain.headers["content-type"] == "application/json"
    assert 'rel="http://www.w3.org/ns/json-ld#context"' in plain.headers["link"]
    [device] = plain.json()
    assert "@context" not in device
    sdm_upstream.device().validate(device)

    one = await http.get(f"/ngsi-ld/v1/entities/urn:ngsi-ld:Alert:{stored[0].id}")
    assert one.json()["id"] == f"urn:ngsi-ld:Alert:{stored[0].id}"
    assert (await http.get("/ngsi-ld/v1/entities/urn:ngsi-ld:Device:dev-a")).status_code == 200
    missing = await http.get(f"/ngsi-ld/v1/entities/urn:ngsi-ld:Alert:{new_id()}")
    assert missing.status_code == 404
    assert missing.headers["content-type"] == "application/problem+json"
    assert missing.json()["type"] == "https://uri.etsi.org/ngsi-ld/errors/ResourceNotFound"
    for bad in (
        await http.get("/ngsi-ld/v1/entities/urn:x:1"),
        await http.get("/ngsi-ld/v1/entities", params={"type": "Car"}),
    ):
        assert bad.status_code == 400
        assert bad.json()["type"] == "https://uri.etsi.org/ngsi-ld/errors/BadRequestData"


def orion_notification(alert: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": f"urn:ngsi-ld:Notification:{new_id()}",
        "type": "Notification",
        "subscriptionId": "urn:ngsi-ld:Subscription:cityops",
        "notifiedAt": NOW.isoformat().replace("+00:00", "Z"),
        "data": [alert],
    }


async def test_ngsi_notification_becomes_event_and_incident(
    http: httpx.AsyncClient, pipeline: Pipeline
) -> None:
    # Another city's context broker sends a normalized Alert, as Orion-LD does by default.
    foreign = event(
        EventKind.ILLEGAL_PARKING, device_id="porto-cam-9", summary="car on the tram line"
    )
    body = orion_notification(event_to_alert(foreign, "normalized"))
    refused = await http.post(
        "/ngsi-ld/v1/notify/porto-orion", json=body, headers={"Authorization": "Bearer wrong"}
    )
    assert refused.status_code == 401
    response = await http.post(
        "/ngsi-ld/v1/notify/porto-orion",
        content=json.dumps(body),
        headers={"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/ld+json"},
    )
    assert response.status_code == 200, response.text
    [event_id] = response.json()["event_ids"]
    stored = await pipeline.store.get_event(event_id)
    assert stored is not None
    assert stored.kind is EventKind.ILLEGAL_PARKING
    assert stored.severity is Severity.HIGH
    assert stored.device_id == "ext-porto-orion"
    assert stored.summary == "car on the tram line"
    assert stored.location == foreign.location
    assert stored.observed_at == foreign.observed_at
    assert stored.attributes["source_record"] == f"urn:ngsi-ld:Alert:{foreign.id}"
    [created] = [c for c in pipeline.changes if c.type is ChangeType.CREATED]
    assert created.incident.department == "traffic-enforcement"

    # The broker re-notifies the same entity (key-values this time): a duplicate, no new incident.
    again = orion_notification(event_to_alert(foreign, "keyValues"))
    dup = await http.post(
        "/ngsi-ld/v1/notify/porto-orion", json=again, headers={"Authorization": f"Bearer {TOKEN}"}
    )
    assert dup.json()["duplicates"] == 1
    assert len([c for c in pipeline.changes if c.type is ChangeType.CREATED]) == 1
    bad = await http.post(
        "/ngsi-ld/v1/notify/porto-orion",
        json={"data": 3},
        headers={"Authorization": f"Bearer {TOKEN}"},
    )
    assert bad.status_code == 400
