"""Property-based run of schemathesis against the served OpenAPI: no request yields a 5xx."""

import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import schemathesis
import uvicorn
from fastapi import FastAPI
from hypothesis import HealthCheck, given, settings

from cloud.api.app import create_app
from cloud.services.ports import free_port
from shared.events import EventKind
from tests.cloud.api.conftest import CIVIL, add_keys, make_settings
from tests.cloud.ops.builders import add_device, event
from tests.conftest import Broker

MAX_EXAMPLES = 250
pytestmark = pytest.mark.services


@pytest.fixture
def served_in_thread(tmp_path: Path, mosquitto: Broker) -> Iterator[tuple[FastAPI, str]]:
    """The whole API, MQTT included (commands and configs publish for real)."""
    app = create_app(make_settings(tmp_path, broker=mosquitto, name="fuzz"))
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="critical", lifespan="on")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.02)
    while not app.state.ctx.mqtt.connected.is_set() and time.monotonic() < deadline:
        time.sleep(0.02)
    assert server.started
    assert app.state.ctx.mqtt.connected.is_set()
    yield app, f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(10)


def test_no_server_errors_for_any_generated_request(
    served_in_thread: tuple[FastAPI, str],
) -> None:
    app, url = served_in_thread
    keys = add_keys(app)
    add_device(app.state.sessions, "dev-civil", department=CIVIL)
    start = event(EventKind.ABANDONED_OBJECT, device_id="dev-civil")
    app.state.ops.apply_events([start])
    schema = schemathesis.openapi.from_dict(app.openapi()).exclude(path="/api/v1/live/sse")
    strategy = schema.as_strategy()
    statuses: dict[int, int] = {}
    failures: list[str] = []
    with httpx.Client(base_url=url, timeout=10) as http:

        @settings(
            max_examples=MAX_EXAMPLES,
            deadline=None,
            suppress_health_check=list(HealthCheck),
            derandomize=True,
            database=None,
        )
        @given(case=strategy)
        def run(case: Any) -> None:
            who = keys["admin"] if case.path.startswith("/api/v1") else None
            headers = dict(case.headers or {})
            if who is not None:
                headers["Authorization"] = f"Bearer {who}"
            kwargs = case.as_transport_kwargs(base_url=url, headers=headers)
            response = http.request(
                kwargs["method"],
                kwargs["url"],
                headers=kwargs.get("headers"),
                params=kwargs.get("params"),
                json=kwargs.get("json"),
                content=kwargs.get("data") if isinstance(kwargs.get("data"), bytes) else None,
            )
            statuses[response.status_code] = statuses.get(response.status_code, 0) + 1
            if response.status_code >= 500:
                failures.append(f"{case.method} {kwargs['url']} -> {response.status_code}")
            if response.status_code >= 400 and response.status_code != 405:
                assert response.headers["content-type"].startswith("application/problem+json")

        run()
    assert not failures, failures[:5]
    assert sum(statuses.values()) >= MAX_EXAMPLES // 2
    assert any(200 <= s < 300 for s in statuses)  # the run reached real handlers
