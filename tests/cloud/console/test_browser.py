"""The console in a real headless Chromium (Debian's), against the real broker, ingest and API.

Every browser context refuses requests to anything but the server and records them: each test
ends by checking that nothing external was asked for.
"""

import json
import time
from typing import Any

import aiomqtt
import cv2
import httpx
import numpy as np
import pytest
from playwright.async_api import Page

from shared.codec import encode
from shared.events import Event, EventKind, Snapshot
from shared.topics import Channel, topic
from tests.cloud.api.conftest import CIVIL, POLICE, Served
from tests.cloud.console.conftest import EVIL, NewContext, login_page
from tests.cloud.ops.builders import event
from tests.conftest import Broker

pytestmark = pytest.mark.services


async def publish_as_device(broker: Broker, device_id: str, items: list[Event]) -> None:
    async with aiomqtt.Client(
        broker.host,
        broker.port,
        username=device_id,
        password=f"{device_id}-pw",
        protocol=aiomqtt.ProtocolVersion.V5,
    ) as client:
        for item in items:
            await client.publish(topic(device_id, Channel.EVENT), encode(item), qos=1)


async def register(served: Served, device_id: str, department: str, lat: float) -> None:
    keys = served.app.state.keys
    async with httpx.AsyncClient(base_url=served.url, timeout=10) as http:
        response = await http.put(
            f"/api/v1/devices/{device_id}",
            json={
                "site": f"site of {device_id}",
                "lat": lat,
                "lon": -9.14,
                "device_type": "raspberrypi5",
                "department": department,
            },
            headers={"Authorization": f"Bearer {keys['technician']}"},
        )
        assert response.status_code == 201, response.text
    served.app.state.ctx.live.device_departments[device_id] = department


def snapshot_jpeg() -> Snapshot:
    """A real JPEG (grey frame, a dark "bag"), as a camera would attach it."""
    image = np.full((240, 320, 3), 160, dtype=np.uint8)
    image[120:200, 100:180] = 40
    ok, data = cv2.imencode(".jpg", image)
    assert ok
    return Snapshot(data=data.tobytes(), width=320, height=240)


async def put_zone(served: Served, device_id: str) -> None:
    """Zones as a technician sets them through the API (drawn on the snapshot by the console)."""
    keys = served.app.state.keys
    config = {
        "device_id": device_id,
        "version": 0,
        "cameras": [
            {
                "id": "cam-1",
                "zones": [
                    {
                        "id": "hall",
                        "kind": "abandoned_watch",
                        "polygon": [[0.3, 0.4], [0.6, 0.4], [0.6, 0.8], [0.3, 0.8]],
                    }
                ],
            }
        ],
    }
    async with httpx.AsyncClient(base_url=served.url, timeout=10) as http:
        response = await http.put(
            f"/api/v1/devices/{device_id}/config",
            json=config,
            headers={"Authorization": f"Bearer {keys['technician']}"},
        )
        assert response.status_code == 202, response.text


UNLABELLED = """() => [...document.querySelectorAll("input:not([type=hidden]), select, button")]
  .filter((el) => !(el.labels?.length || el.getAttribute("aria-label") || el.textContent.trim()))
  .map((el) => el.outerHTML)"""
"""Controls without a label, an aria-label or text: a screen reader could not name them."""


async def check_usable(page: Page) -> None:
    """Every control labelled; at a laptop's 1366×768 nothing overflows sideways."""
    assert await page.evaluate(UNLABELLED) == []
    await page.set_viewport_size({"width": 1366, "height": 768})
    width = await page.evaluate("document.documentElement.scrollWidth")
    assert width <= 1366, f"{page.url} is {width} px wide at 1366 px"
    await page.set_viewport_size({"width": 1920, "height": 1080})


async def incident_status(served: Served, incident_id: str) -> dict[str, Any]:
    keys = served.app.state.keys
    async with httpx.AsyncClient(base_url=served.url, timeout=10) as http:
        response = await http.get(
            f"/api/v1/incidents/{incident_id}",
            headers={"Authorization": f"Bearer {keys['admin']}"},
        )
    body: dict[str, Any] = response.json()
    return body


async def test_operator_sees_own_queue_live_acknowledges_and_maps(
    console: Served, mosquitto: Broker, offline_context: NewContext
) -> None:
    await register(console, "dev-a", CIVIL, 38.71)
    await register(console, "dev-b", POLICE, 38.72)
    await put_zone(console, "dev-a")
    context, offline = await offline_context(console.url)
    page = await login_page(context, console.url, "ana")
    assert await page.locator("#who").inner_text() == "Ana Silva · operator"
    await page.wait_for_selector("#live-state.on")
    await page.evaluate("window.__sameDocument = true")
    # Keyboard: the first Tab reaches the skip link, which moves focus to the content.
    await page.keyboard.press("Tab")
    assert await page.evaluate("document.activeElement.className") == "skip"

    # A police incident (another department) and then a civil one, through the real broker.
    await publish_as_device(
        mosquitto, "dev-b", [event(EventKind.ILLEGAL_PARKING, device_id="dev-b")]
    )
    bag = event(
        EventKind.ABANDONED_OBJECT,
        device_id="dev-a",
        zone_id="hall",
        snapshot=snapshot_jpeg(),
        # The crop of the frame the snapshot shows (the edge pipeline adds these).
        attributes={
            "snapshot_x1": 0.25,
            "snapshot_y1": 0.3,
            "snapshot_x2": 0.65,
            "snapshot_y2": 0.9,
        },
    )
    sent = time.perf_counter()
    await publish_as_device(mosquitto, "dev-a", [bag])
    row = page.locator("#queue-rows tr")
    await row.first.wait_for(timeout=2000)  # the bound: within 2 s, without reload
    latency = time.perf_counter() - sent
    assert latency < 2.0
    assert await page.evaluate("window.__sameDocument") is True
    assert await row.count() == 1, "the police incident must not reach a civil operator"
    assert await row.first.get_attribute("data-department") == CIVIL
    await check_usable(page)
    # High severity: a visible banner and the audible cue.
    await page.locator("#alert-banner").wait_for(state="visible")
    assert "abandoned object" in (await page.locator("#alert-banner").inner_text())
    assert await page.evaluate("document.body.dataset.lastBeep") is not None
    assert await page.evaluate("document.body.dataset.audioState") == "running"
    sla = row.first.locator(".sla")
    assert (await sla.inner_text()).startswith("ack ")
    assert await sla.get_attribute("class") in {"sla sla-ok", "sla sla-amber"}

    # By keyboard: focus the button, press Enter.
    await row.first.get_by_role("button", name="Acknowledge").focus()
    await page.keyboard.press("Enter")
    await page.locator("#queue-rows tr[data-status=acknowledged]").wait_for(timeout=5000)
    assert (await row.first.locator(".sla").inner_text()).startswith("resolve ")
    assert await row.first.locator(".status").inner_text() == "acknowledged"
    incident_id = (await row.first.get_attribute("id") or "").removeprefix("incident-")
    stored = await incident_status(console, incident_id)
    assert stored["status"] == "acknowledged"
    assert stored["acknowledged_at"] is not None

    # Detail: the audit trail names the person, the snapshot area and the timeline are there.
    await row.first.get_by_role("link").click()
    await page.wait_for_url(f"{console.url}/incidents/{incident_id}")
    audit_row = page.locator("#audit-rows tr", has_text="incident.acknowledged")
    await audit_row.wait_for()
    assert await audit_row.locator(".actor").inner_text() == "Ana Silva (user:ana)"
    await page.locator("#timeline li").first.wait_for()
    # The snapshot with the detection box and the zone drawn on it.
    await page.locator("#snapshot .overlay polygon.zone").wait_for(state="attached")
    assert await page.locator("#snapshot .overlay rect.box").count() == 1
    loaded = await page.wait_for_function(
        "() => { const img = document.querySelector('#snapshot img');"
        " return img && img.complete && img.naturalWidth; }"
    )
    assert await loaded.json_value() == 320  # the JPEG itself, served by the API
    await check_usable(page)

    # The other actions, from the detail page, each through the API and into the audit trail.
    await page.get_by_label("Assignee").fill("patrol-12")
    await page.get_by_role("button", name="Assign").click()
    await page.get_by_label("Note").fill("owner not in sight")
    await page.get_by_role("button", name="Add note").click()
    await page.locator("#notes li", has_text="owner not in sight").wait_for()
    await page.locator("#check-0").check()
    await page.get_by_role("button", name="Dispatch").click()
    await page.locator("#incident-status", has_text="dispatched").wait_for()
    for action in ("assigned", "note", "checklist", "dispatched"):
        await page.locator("#audit-rows tr", has_text=f"incident.{action}").wait_for()
    stored = await incident_status(console, incident_id)
    assert stored["assignee"] == "patrol-12"
    assert stored["checklist"][0]["done_by"] == "Ana Silva (user:ana)"
    assert stored["notes"][-1]["author"] == "Ana Silva (user:ana)"

    # Map: the device marker, on a plain background (no tile server configured).
    await page.get_by_role("link", name="Map").click()
    await page.locator('[data-device="dev-a"]').wait_for(state="attached")
    assert await page.locator('[data-device="dev-b"]').count() == 0  # the police's camera
    assert await page.locator(f'[data-incident="{incident_id}"]').count() == 1
    await check_usable(page)
    for screen, ready in (("devices", "#device-rows tr"), ("events", "#event-rows tr")):
        await page.goto(f"{console.url}/{screen}")
        await page.locator(ready).first.wait_for(state="attached")
        await check_usable(page)
    # Events of the last 24 h: only this department's camera, and one bar in the chart.
    devices = await page.locator("#event-rows tr td:nth-child(5)").all_inner_texts()
    assert devices == ["dev-a"]
    assert await page.locator("#chart svg rect").count() == 1
    await page.locator("#e-kind").select_option("crowding")
    await page.get_by_role("button", name="Search").click()
    await page.locator("#event-rows tr").first.wait_for(state="detached")

    # Swagger UI from this server.
    await page.goto(console.url + "/docs")
    await page.locator(".swagger-ui .info .title").wait_for(timeout=10_000)
    assert offline.external == [], f"external requests: {offline.external}"


async def test_viewer_has_no_actions_and_the_api_refuses_anyway(
    console: Served, offline_context: NewContext
) -> None:
    await register(console, "dev-a", CIVIL, 38.71)
    await console.app.state.ops.on_events([event(EventKind.ABANDONED_OBJECT, device_id="dev-a")])
    context, offline = await offline_context(console.url)
    page = await login_page(context, console.url, "vera")
    row = page.locator("#queue-rows tr")
    await row.first.wait_for()
    assert await page.locator("#queue-rows button").count() == 0
    incident_id = (await row.first.get_attribute("id") or "").removeprefix("incident-")
    status = await page.evaluate(
        """async (id) => {
            const token = document.querySelector('meta[name="csrf-token"]').content;
            const r = await fetch(`/api/v1/incidents/${id}/acknowledge`, {
              method: "POST", body: "{}",
              headers: {"X-CSRF-Token": token, "Content-Type": "application/json"}});
            return [r.status, (await r.json()).detail];
        }""",
        incident_id,
    )
    assert status == [403, "role 'viewer' lacks permission 'incidents:write'"]
    assert (await incident_status(console, incident_id))["status"] == "open"
    assert offline.external == []


async def test_forged_cross_site_post_is_refused(
    console: Served, offline_context: NewContext
) -> None:
    await register(console, "dev-a", CIVIL, 38.71)
    await console.app.state.ops.on_events([event(EventKind.ABANDONED_OBJECT, device_id="dev-a")])
    context, offline = await offline_context(console.url)
    page = await login_page(context, console.url, "ana")
    row = page.locator("#queue-rows tr")
    await row.first.wait_for()
    incident_id = (await row.first.get_attribute("id") or "").removeprefix("incident-")
    target = f"{console.url}/api/v1/incidents/{incident_id}/acknowledge"

    # Same origin, session cookie sent, but no CSRF token: refused.
    refused = await page.evaluate(
        """async (url) => {
            const r = await fetch(url, {method: "POST", body: "{}",
                                        headers: {"Content-Type": "application/json"}});
            return [r.status, (await r.json()).detail];
        }""",
        target,
    )
    assert refused[0] == 403
    assert "CSRF" in refused[1]

    # Another site's page posting a form to the console while the user is signed in.
    offline.evil_pages[f"{EVIL}/"] = (
        f'<form id="f" method="post" action="{target}" enctype="text/plain">'
        '<input name=\'{"note":"pwned", "x":"\' value=\'"}\'></form>'
        "<script>document.getElementById('f').submit()</script>"
    )
    evil = await context.new_page()
    async with evil.expect_response(target) as answer:
        await evil.goto(f"{EVIL}/")
    response = await answer.value
    assert response.status in {401, 403}
    assert json.loads(await response.text())["status"] in {401, 403}
    assert (await incident_status(console, incident_id))["status"] == "open"

    # Sign out: the session is gone, the pages send back to the login form.
    await page.get_by_role("button", name="Sign out").click()
    await page.wait_for_url(f"{console.url}/login")
    await page.goto(console.url + "/")
    assert "/login" in page.url
    assert offline.external == []
