"""Incident changes on MQTT for Home Assistant / Node-RED: a real Mosquitto with the real ACL.

The dispatcher publishes with an account of role ``dispatch`` on the services listener; readers
subscribe with role ``incidents`` on the device listener, as a home-automation system would.
A reader scoped to one department never receives another's; an account without the right to
publish there gets PUBACK 135 and the delivery is dead at once, naming the reason.
"""

from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest

from cloud.dispatch.config import DispatchConfig
from cloud.dispatch.dispatcher import Dispatcher
from cloud.dispatch.tables import DeliveryStatus
from cloud.ops.models import IncidentStatus
from cloud.ops.roles import Actor
from shared.events import Event, EventKind, Severity
from shared.ids import new_id
from shared.topics import INCIDENTS_PREFIX
from tests.cloud.integrations.conftest import Pipeline
from tests.cloud.integrations.incident_readers import Reader, subscribe_incidents
from tests.cloud.integrations.waits import eventually
from tests.conftest import (
    API_USER,
    DISPATCH_USER,
    ENV_INCIDENTS_USER,
    INCIDENTS_USER,
    Broker,
)

pytestmark = pytest.mark.services
OPERATOR = Actor(name="ana (k1)", role="operator", source="127.0.0.1")


@pytest.fixture
def readers(mosquitto: Broker) -> Iterator[dict[str, Reader]]:
    out = {
        user: subscribe_incidents(mosquitto, user) for user in (INCIDENTS_USER, ENV_INCIDENTS_USER)
    }
    yield out
    for reader in out.values():
        reader.close()


def _event(kind: EventKind, device: str) -> Event:
    now = datetime.now(UTC)
    return Event(
        id=new_id(),
        device_id=device,
        camera_id="cam0",
        kind=kind,
        severity=Severity.HIGH,
        started_at=now,
        observed_at=now,
        zone_id="z1",
    )


def _route(route_id: str, broker: Broker, user: str, changes: list[str]) -> dict[str, Any]:
    return {
        "id": route_id,
        "departments": ["*"],
        "changes": changes,
        "target": {
            "type": "mqtt",
            "host": broker.host,
            "port": broker.service_port,
            "username": user,
            "password_env": f"TEST_PW_{route_id.upper().replace('-', '_')}",
            "timeout_s": 5,
        },
    }


async def test_incident_changes_reach_subscribers_of_their_department_only(
    pipeline: Pipeline,
    mosquitto: Broker,
    readers: dict[str, Reader],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("TEST_PW_HOME_ASSISTANT", mosquitto.users[DISPATCH_USER])
    monkeypatch.setenv("TEST_PW_NOT_ALLOWED", mosquitto.users[API_USER])
    config = DispatchConfig.model_validate(
        {
            "poll_s": 0.05,
            "routes": [
                _route("home-assistant", mosquitto, DISPATCH_USER, ["created", "acknowledged"]),
                # The API's operator account may not write incident topics: refused for good.
                _route("not-allowed", mosquitto, API_USER, ["created"]),
            ],
        }
    )
    dispatcher = Dispatcher(config, pipeline.sessions)
    dispatcher.attach(pipeline.ops)
    parking = pipeline.ops.apply_events([_event(EventKind.ILLEGAL_PARKING, "dev-a")])[0].incident
    air = pipeline.ops.apply_events([_event(EventKind.SENSOR_THRESHOLD, "dev-b")])[0].incident
    await pipeline.ops.transition(parking.id, IncidentStatus.ACKNOWLEDGED, OPERATOR)
    while await dispatcher.deliver_due():
        pass

    city = readers[INCIDENTS_USER]
    await eventually(lambda: len(city.messages) == 3)
    topics = [topic for topic, _, _ in city.messages]
    assert topics == [
        f"{INCIDENTS_PREFIX}/traffic-enforcement/{parking.id}",
        f"{INCIDENTS_PREFIX}/environment/{air.id}",
        f"{INCIDENTS_PREFIX}/traffic-enforcement/{parking.id}",
    ]
    changes = [(body["change"], body["incident"]["id"]) for _, body, _ in city.messages]
    assert changes == [("created", parking.id), ("created", air.id), ("acknowledged", parking.id)]
    delivered = {
        d.id
        for d in dispatcher.list_deliveries(status=DeliveryStatus.DELIVERED)
        if d.route_id == "home-assistant"
    }
    assert set(city.delivery_ids()) == delivered  # the delivery id: for the reader to drop repeats

    environment = readers[ENV_INCIDENTS_USER]
    await eventually(lambda: len(environment.messages) == 1)
    [(topic, body, _)] = environment.messages
    assert topic == f"{INCIDENTS_PREFIX}/environment/{air.id}"
    assert body["incident"]["department"] == "environment"

    refused = dispatcher.list_deliveries(status=DeliveryStatus.DEAD)
    assert {d.route_id for d in refused} == {"not-allowed"}
    assert len(refused) == 2  # the two "created": one try each, no retries
    assert all(d.attempts == 1 for d in refused)
    assert all(d.last_error is not None and "135" in d.last_error for d in refused)
