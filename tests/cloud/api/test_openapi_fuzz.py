"""Schemathesis against the served API: positive and negative data, every response checked.

No request may give a 5xx, every status and content type must be the ones the OpenAPI
document declares (problem+json on errors), responses must match their schemas, and input
that breaks the schema must be a 4xx problem. The document itself passes openapi-spec-validator.
"""

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
from hypothesis import strategies as st
from openapi_spec_validator import validate
from schemathesis import GenerationMode
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)

from cloud.api.app import create_app
from cloud.connectors.integration import Integrations, build_integration_routers
from cloud.services.ports import free_port
from shared.events import EventKind
from tests.cloud.api.conftest import CIVIL, add_keys, make_settings
from tests.cloud.ops.builders import add_device, event
from tests.conftest import Broker

MAX_EXAMPLES = 300
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]
"""Not ``negative_data_rejection``: the run puts the admin's key on every request (a negative
case without it would be a 401 anyway), and unknown query parameters are ignored by design
(consoles add cache busters); every other kind of negative data must give a 4xx problem."""
pytestmark = pytest.mark.services


def _app(tmp_path: Path, broker: Broker | None = None) -> FastAPI:
    integrations = Integrations()
    app = create_app(
        make_settings(tmp_path, broker=broker, name="fuzz"),
        extra_routers=build_integration_routers(integrations),
    )
    integrations.attach(app)
    return app


def test_openapi_document_is_valid_with_readable_ids_and_problem_errors(tmp_path: Path) -> None:
    document = _app(tmp_path).openapi()
    validate(document)
    operations = [
        (path, method, op)
        for path, item in document["paths"].items()
        for method, op in item.items()
    ]
    ids = [op["operationId"] for _, _, op in operations]
    assert len(ids) == len(set(ids))
    assert {"listIncidents", "getIncident", "listEvents", "listEntities", "streamLive"} <= set(ids)
    assert all(i[0].islower() and "_" not in i for i in ids), ids
    errors = 0
    for path, method, op in operations:
        for status, response in op["responses"].items():
            if status.isdigit() and int(status) >= 400 and path != "/readyz":
                assert list(response["content"]) == ["application/problem+json"], (path, method)
                errors += 1
        if op.get("security"):
            assert {"401", "403"} <= set(op["responses"]), (path, method)
        if op.get("parameters") or "requestBody" in op:
            assert "422" in op["responses"], (path, method)
    assert errors >= 100
    ngsi = document["paths"]["/ngsi-ld/v1/entities"]["get"]["responses"]["200"]["content"]
    assert "application/ld+json" in ngsi


@pytest.fixture
def served_in_thread(tmp_path: Path, mosquitto: Broker) -> Iterator[tuple[FastAPI, str]]:
    """The whole API, MQTT and integration routes included (commands publish for real)."""
    app = _app(tmp_path, mosquitto)
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


def test_no_generated_request_breaks_the_contract(
    served_in_thread: tuple[FastAPI, str],
) -> None:
    app, url = served_in_thread
    keys = add_keys(app)
    add_device(app.state.sessions, "dev-civil", department=CIVIL)
    start = event(EventKind.ABANDONED_OBJECT, device_id="dev-civil")
    app.state.ops.apply_events([start])
    schema = schemathesis.openapi.from_dict(app.openapi()).exclude(path="/api/v1/live/sse")
    strategy = st.one_of(
        schema.as_strategy(GenerationMode.POSITIVE), schema.as_strategy(GenerationMode.NEGATIVE)
    )
    statuses: dict[int, int] = {}
    failures: dict[str, str] = {}
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
            # Credentials are the admin's: refusals are test_access's and the matrix's job.
            headers = {
                k: v for k, v in (case.headers or {}).items() if k.lower() != "authorization"
            }
            if case.path.startswith(("/api/v1", "/ngsi-ld")):
                headers["Authorization"] = f"Bearer {keys['admin']}"
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
            try:
                case.validate_response(response, checks=CHECKS)
            except (Exception, BaseExceptionGroup) as exc:  # noqa: BLE001 - reported below
                key = f"{case.method} {case.path} {exc.__class__.__name__}"
                failures.setdefault(key, f"{kwargs['url']} -> {response.status_code}: {exc}")

        run()
    assert not failures, "\n".join(f"{k}: {v[:400]}" for k, v in list(failures.items())[:8])
    assert sum(statuses.values()) >= MAX_EXAMPLES // 2
    assert any(200 <= s < 300 for s in statuses)  # the run reached real handlers
    assert any(s == 422 for s in statuses)  # and negative data was refused
