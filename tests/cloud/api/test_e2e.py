"""End to end on the real Mosquitto: device event → ingest → incident → live stream → lifecycle."""

import asyncio
import json
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiomqtt
import httpx
import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed
from websockets.typing import Subprotocol

from cloud.api.app import create_app
from cloud.settings import StoreSettings
from shared.codec import encode
from shared.events import Event, EventKind, Phase
from shared.topics import Channel, topic
from tests.cloud.api.conftest import CIVIL, POLICE, Served, add_keys, make_settings, serve, stop
from tests.cloud.ops.builders import event
from tests.conftest import Broker

pytestmark = pytest.mark.services


@pytest.fixture
async def served(
    tmp_path: Path, mosquitto: Broker, request: pytest.FixtureRequest
) -> AsyncIterator[Served]:
    name = "".join(c for c in request.node.name if c.isalnum())[-40:]
    app = create_app(make_settings(tmp_path, broker=mosquitto, name=name), ingest=True)
    app.state.keys = add_keys(app)
    running = await serve(app)
    async with asyncio.timeout(10):
        await app.state.ingestor.connected.wait()
        await app.state.ctx.mqtt.connected.wait()
    yield running
    await stop(running)


async def publish_as_device(broker: Broker, device_id: str, events: list[Event]) -> None:
    async with aiomqtt.Client(
        broker.host,
        broker.port,
        username=device_id,
        password=f"{device_id}-pw",
        protocol=aiomqtt.ProtocolVersion.V5,
    ) as client:
        for item in events:
            await client.publish(topic(device_id, Channel.EVENT), encode(item), qos=1)


async def next_incident(ws: ClientConnection, change: str) -> dict[str, Any]:
    async with asyncio.timeout(5):
        while True:
            message: dict[str, Any] = json.loads(await ws.recv())
            if message["type"] == "incident" and message["data"]["type"] == change:
                return message


async def test_abandoned_object_to_resolved_incident(served: Served, mosquitto: Broker) -> None:
    keys = served.app.state.keys
    civil = {"Authorization": f"Bearer {keys[f'operator@{CIVIL}']}"}
    police = {"Authorization": f"Bearer {keys[f'operator@{POLICE}']}"}
    async with httpx.AsyncClient(base_url=served.url, timeout=10) as http:
        registered = await http.put(
            "/api/v1/devices/dev-a",
            json={
                "site": "Estação do Rossio",
                "lat": 38.714,
                "lon": -9.141,
                "device_type": "raspberrypi5",
                "department": CIVIL,
            },
            headers={"Authorization": f"Bearer {keys['technician']}"},
        )
        assert registered.status_code == 201, registered.text
        ws_url = served.url.replace("http", "ws") + "/api/v1/live/ws?type=incident"
        async with connect(ws_url, additional_headers=civil) as ws:
            start = event(EventKind.ABANDONED_OBJECT, device_id="dev-a", zone_id="hall")
            sent = time.perf_counter()
            await publish_as_device(mosquitto, "dev-a", [start])
            created = await next_incident(ws, "created")
            latency = time.perf_counter() - sent
            assert latency < 1.0, f"incident reached the live stream after {latency:.3f} s"
            incident = created["data"]["incident"]
            assert incident["department"] == CIVIL
            assert incident["first_event_id"] == start.id
            incident_id = incident["id"]

            queue = await http.get("/api/v1/incidents?status=open", headers=civil)
            assert [i["id"] for i in queue.json()["items"]] == [incident_id]
            other = await http.get("/api/v1/incidents", headers=police)
            assert other.json()["items"] == []

            # Duplicates: the same event again, then an update of the same situation.
            update = event(
                EventKind.ABANDONED_OBJECT, device_id="dev-a", zone_id="hall", phase=Phase.UPDATE
            )
            await publish_as_device(mosquitto, "dev-a", [start, update])
            attached = await next_incident(ws, "attached")
            assert attached["data"]["incident"]["id"] == incident_id
            assert attached["data"]["detail"]["event_id"] == update.id

            headers = {**civil, "User-Agent": "ops-console/2.1"}
            for action, body, change in (
                ("acknowledge", {"note": "on camera 2"}, "acknowledged"),
                ("dispatch", {"assignee": "patrol-12"}, "dispatched"),
                ("resolve", {"note": "owner found"}, "resolved"),
            ):
                done = await http.post(
                    f"/api/v1/incidents/{incident_id}/{action}", json=body, headers=headers
                )
                assert done.status_code == 200, done.text
                seen = await next_incident(ws, change)
                assert seen["data"]["incident"]["status"] == change
            again = await http.post(f"/api/v1/incidents/{incident_id}/acknowledge", headers=civil)
            assert again.status_code == 409
            assert again.json()["errors"][0]["field"] == "status"

        detail = (await http.get(f"/api/v1/incidents/{incident_id}", headers=civil)).json()
        assert detail["event_count"] == 2
        assert sorted(detail["event_ids"]) == sorted([start.id, update.id])
        assert detail["assignee"] == "patrol-12"
        every = await http.get(
            "/api/v1/incidents", headers={"Authorization": f"Bearer {keys['admin']}"}
        )
        assert len(every.json()["items"]) == 1

        trail = (await http.get(f"/api/v1/incidents/{incident_id}/audit", headers=civil)).json()
        steps = list(reversed(trail))
        assert [s["action"] for s in steps] == [
            "incident.created",
            "incident.acknowledged",
            "incident.dispatched",
            "incident.resolved",
        ]
        for step in steps[1:]:
            assert step["actor"].startswith(f"operator of {CIVIL}")
            assert step["role"] == "operator"
            assert step["source"] == "127.0.0.1"
            assert step["user_agent"] == "ops-console/2.1"
        assert steps[0]["actor"] == "system"
        assert steps[1]["at"] <= steps[2]["at"] <= steps[3]["at"]

        stored = await http.get(f"/api/v1/events/{start.id}", headers=civil)
        assert stored.status_code == 200
        assert stored.json()["zone_id"] == "hall"


async def test_live_stream_refuses_without_key_or_role(served: Served) -> None:
    ws_url = served.url.replace("http", "ws") + "/api/v1/live/ws"
    keys = served.app.state.keys
    for protocols, code in (
        ([], 4401),
        ([Subprotocol("cityops.v1"), Subprotocol("cityops.bearer.cok_x_y")], 4401),
        ([Subprotocol("cityops.v1"), Subprotocol(f"cityops.bearer.{keys['technician']}")], 4403),
    ):
        async with connect(ws_url, subprotocols=protocols or None) as ws:
            with pytest.raises(ConnectionClosed):
                await asyncio.wait_for(ws.recv(), 5)
            assert ws.close_code == code


async def test_sse_streams_filtered_events(served: Served, mosquitto: Broker) -> None:
    keys = served.app.state.keys
    viewer = {"Authorization": f"Bearer {keys['viewer']}"}
    parking = event(EventKind.ILLEGAL_PARKING, device_id="dev-b", zone_id="bay-1")
    crowd = event(EventKind.CROWDING, device_id="dev-b", zone_id="square")
    async with (
        httpx.AsyncClient(base_url=served.url, timeout=10) as http,
        http.stream("GET", "/api/v1/live/sse?type=event&kind=crowding", headers=viewer) as response,
    ):
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        lines = response.aiter_lines()
        assert await anext(lines) == ": connected"
        await publish_as_device(mosquitto, "dev-b", [parking, crowd])
        async with asyncio.timeout(5):
            async for line in lines:
                if line.startswith("data: "):
                    message = json.loads(line.removeprefix("data: "))
                    break
    assert message["type"] == "event"
    assert message["data"]["id"] == crowd.id
    assert message["data"]["has_snapshot"] is False


async def test_influx_store_answers_event_queries(
    tmp_path: Path, influxd: Any, influx_db: str
) -> None:
    from cloud.settings import InfluxSettings

    store = StoreSettings(kind="influx", influx=InfluxSettings(url=influxd.url, database=influx_db))
    app = create_app(make_settings(tmp_path, store=store), background=False)
    keys = add_keys(app)
    await app.state.store.setup()
    try:
        events = [
            event(EventKind.ILLEGAL_PARKING, device_id="dev-a", zone_id="bay-1", track_id=i)
            for i in range(5)
        ] + [event(EventKind.CROWDING, device_id="dev-b", zone_id="square")]
        await app.state.store.write_events(events)
        transport = httpx.ASGITransport(app=app)
        headers = {"Authorization": f"Bearer {keys['viewer']}"}
        async with httpx.AsyncClient(transport=transport, base_url="http://api") as http:
            page = await http.get("/api/v1/events?kind=illegal_parking&limit=3", headers=headers)
            assert page.status_code == 200, page.text
            first = page.json()
            assert len(first["items"]) == 3
            assert {e["kind"] for e in first["items"]} == {"illegal_parking"}
            rest = await http.get(
                "/api/v1/events",
                params={"kind": "illegal_parking", "limit": 3, "cursor": first["next_cursor"]},
                headers=headers,
            )
            ids = [e["id"] for e in first["items"] + rest.json()["items"]]
            assert sorted(ids) == sorted(e.id for e in events[:5])
            counts = await http.get("/api/v1/events/counts?group_by=kind", headers=headers)
            assert {c["key"]: c["count"] for c in counts.json()} == {
                "illegal_parking": 5,
                "crowding": 1,
            }
            hot = await http.get("/api/v1/events/hotspots?top=1", headers=headers)
            assert hot.json()[0]["device_id"] == "dev-a"
            one = await http.get(f"/api/v1/events/{events[5].id}", headers=headers)
            assert one.json()["kind"] == "crowding"
    finally:
        await app.state.store.close()
