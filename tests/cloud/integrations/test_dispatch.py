"""Dispatch out: a real department system (uvicorn) and a real SMTP server (aiosmtpd)."""

import asyncio
import json
import shutil
import ssl
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email import message_from_bytes
from email.message import Message
from pathlib import Path
from typing import Any

import httpx
import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from cloud.broker.certs import issue_cert, make_ca
from cloud.connectors.signing import SignatureError, verify
from cloud.dispatch.config import DispatchConfig, DispatchRoute, EmailTarget
from cloud.dispatch.dispatcher import Dispatcher
from cloud.dispatch.routes import build_dispatch_router
from cloud.dispatch.senders import DeliveryError
from cloud.dispatch.tables import DeliveryStatus
from cloud.ops.models import ChangeType, IncidentStatus
from cloud.ops.roles import Actor
from cloud.ops.service import IncidentFilter
from cloud.services.ports import free_port
from shared.events import Event, EventKind, Severity
from shared.ids import new_id
from tests.cloud.integrations.conftest import Pipeline
from tests.cloud.integrations.servers import serve_in_thread
from tests.cloud.integrations.waits import eventually
from tests.conftest import need

SECRET = "department-shared-secret"
OPERATOR = Actor(name="ana (k1)", role="operator", source="127.0.0.1")


@dataclass
class DepartmentSystem:
    """The traffic department's work-order system: verifies signatures, answers as scripted."""

    script: list[int] = field(default_factory=list)
    received: list[dict[str, Any]] = field(default_factory=list)
    delivery_ids: list[str] = field(default_factory=list)
    refused: list[str] = field(default_factory=list)


def make_department() -> tuple[FastAPI, DepartmentSystem]:
    state = DepartmentSystem()
    app = FastAPI()

    @app.post("/work-orders")
    async def work_orders(request: Request) -> JSONResponse:
        body = await request.body()
        try:
            verify(
                SECRET.encode(),
                body,
                signature=request.headers.get("X-CityOps-Signature"),
                timestamp=request.headers.get("X-CityOps-Timestamp"),
                window_s=300,
                now=time.time(),
            )
        except SignatureError as exc:
            state.refused.append(str(exc))
            return JSONResponse({"error": "bad signature"}, status_code=401)
        state.delivery_ids.append(request.headers["X-CityOps-Delivery"])
        status = state.script.pop(0) if state.script else 200
        if status == 200:
            state.received.append(json.loads(body))
        return JSONResponse({"status": status}, status_code=status)

    return app, state


@pytest.fixture
def department() -> Iterator[tuple[str, DepartmentSystem]]:
    app, state = make_department()
    with serve_in_thread(app) as url:
        yield url, state


class Mailbox:
    def __init__(self) -> None:
        self.messages: list[Message] = []

    async def handle_DATA(self, _server: Any, _session: Any, envelope: Any) -> str:  # noqa: N802 - aiosmtpd hook name
        self.messages.append(message_from_bytes(envelope.content))
        return "250 Message accepted for delivery"


@pytest.fixture
def smtp() -> Iterator[tuple[int, Mailbox]]:
    mailbox = Mailbox()
    port = free_port()
    controller = Controller(mailbox, hostname="127.0.0.1", port=port)
    controller.start()
    yield port, mailbox
    controller.stop()


def dispatch_config(url: str, smtp_port: int, max_attempts: int = 3) -> DispatchConfig:
    return DispatchConfig.model_validate(
        {
            "max_attempts": max_attempts,
            "backoff_initial_s": 0.05,
            "backoff_max_s": 0.2,
            "poll_s": 0.05,
            "routes": [
                {
                    "id": "traffic-work-orders",
                    "departments": ["traffic-enforcement"],
                    "target": {
                        "type": "webhook",
                        "url": f"{url}/work-orders",
                        "secret_env": "TEST_DEPT_SECRET",
                        "timeout_s": 5,
                    },
                },
                {
                    "id": "environment-mail",
                    "departments": ["environment"],
                    "changes": ["created"],
                    "target": {
                        "type": "email",
                        "smtp_host": "127.0.0.1",
                        "smtp_port": smtp_port,
                        "sender": "cityops@lisboa.example",
                        "recipients": ["ambiente@lisboa.example"],
                    },
                },
            ],
        }
    )


@pytest.fixture
async def dispatcher(
    pipeline: Pipeline,
    department: tuple[str, DepartmentSystem],
    smtp: tuple[int, Mailbox],
    monkeypatch: pytest.MonkeyPatch,
) -> AsyncIterator[Dispatcher]:
    monkeypatch.setenv("TEST_DEPT_SECRET", SECRET)
    dispatcher = Dispatcher(dispatch_config(department[0], smtp[0]), pipeline.sessions)
    dispatcher.attach(pipeline.ops)
    dispatcher.start()
    yield dispatcher
    await dispatcher.stop()


def parking_event(zone_id: str = "bus-stop-12") -> Event:
    now = datetime.now(UTC)
    return Event(
        id=new_id(),
        device_id="dev-a",
        camera_id="cam0",
        kind=EventKind.ILLEGAL_PARKING,
        severity=Severity.MEDIUM,
        started_at=now - timedelta(minutes=4),
        observed_at=now,
        zone_id=zone_id,
    )


async def test_incident_reaches_department_after_retries_on_500(
    pipeline: Pipeline, department: tuple[str, DepartmentSystem], dispatcher: Dispatcher
) -> None:
    _url, dept = department
    dept.script = [500, 500]
    event = parking_event()
    await pipeline.writer.write_events([event])
    incident = next(c.incident for c in pipeline.changes if c.type is ChangeType.CREATED)

    await eventually(lambda: len(dept.received) == 1)
    notice = dept.received[0]
    assert notice["change"] == "created"
    assert notice["incident"]["id"] == incident.id
    assert notice["incident"]["department"] == "traffic-enforcement"
    assert notice["incident"]["first_event_id"] == event.id
    # Three tries of one delivery: the same delivery id each time, so the receiver can dedupe.
    assert len(dept.delivery_ids) == 3
    assert len(set(dept.delivery_ids)) == 1
    assert dept.refused == []
    # Recorded once the receiver has answered, a moment after it got the notice.
    await eventually(
        lambda: (
            dispatcher.list_deliveries(incident_id=incident.id)[0].status
            is DeliveryStatus.DELIVERED
        )
    )
    [row] = dispatcher.list_deliveries(incident_id=incident.id)
    assert row.attempts == 3
    assert row.last_status_code == 200

    # A status change is delivered too.
    await pipeline.ops.transition(incident.id, IncidentStatus.ACKNOWLEDGED, OPERATOR)
    await pipeline.ops.transition(incident.id, IncidentStatus.DISPATCHED, OPERATOR)
    await eventually(lambda: len(dept.received) == 2)
    assert dept.received[1]["change"] == "dispatched"
    assert dept.received[1]["actor"] == "ana (k1)"
    assert dept.received[1]["incident"]["status"] == "dispatched"


async def test_dead_letter_after_limit_visible_and_retryable(
    pipeline: Pipeline, department: tuple[str, DepartmentSystem], dispatcher: Dispatcher
) -> None:
    _url, dept = department
    dept.script = [500, 503, 500]
    await pipeline.writer.write_events([parking_event()])

    def dead() -> bool:
        return bool(dispatcher.list_deliveries(status=DeliveryStatus.DEAD))

    await eventually(dead)
    await asyncio.sleep(0.3)  # no further tries once dead
    assert len(dept.delivery_ids) == 3
    assert dept.received == []

    app = FastAPI()
    app.include_router(build_dispatch_router(dispatcher))
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
        listed = (await http.get("/api/v1/dispatch/deliveries", params={"status": "dead"})).json()
        assert len(listed) == 1
        assert listed[0]["attempts"] == 3
        assert listed[0]["last_error"] == "HTTP 500"
        assert listed[0]["route_id"] == "traffic-work-orders"
        one = await http.get(f"/api/v1/dispatch/deliveries/{listed[0]['id']}")
        assert one.json()["status"] == "dead"
        missing = await http.get("/api/v1/dispatch/deliveries/nope")
        assert missing.status_code == 404
        assert missing.headers["content-type"] == "application/problem+json"

        retried = await http.post(f"/api/v1/dispatch/deliveries/{listed[0]['id']}/retry")
        assert retried.status_code == 200
        assert retried.json()["status"] == "pending"
    await eventually(lambda: len(dept.received) == 1)

    def delivered() -> bool:  # recorded once the receiver has answered, a moment after it got it
        row = dispatcher.get(listed[0]["id"])
        return row is not None and row.status is DeliveryStatus.DELIVERED

    await eventually(delivered)


async def test_permanent_refusal_is_dead_at_once(
    pipeline: Pipeline, department: tuple[str, DepartmentSystem], dispatcher: Dispatcher
) -> None:
    _url, dept = department
    dept.script = [422]
    await pipeline.writer.write_events([parking_event()])
    await eventually(lambda: bool(dispatcher.list_deliveries(status=DeliveryStatus.DEAD)))
    [row] = dispatcher.list_deliveries()
    assert row.attempts == 1
    assert row.last_status_code == 422


async def test_environment_incident_is_mailed(
    pipeline: Pipeline, smtp: tuple[int, Mailbox], dispatcher: Dispatcher
) -> None:
    _port, mailbox = smtp
    now = datetime.now(UTC)
    event = Event(
        id=new_id(),
        device_id="dev-b",
        kind=EventKind.SENSOR_THRESHOLD,
        severity=Severity.HIGH,
        started_at=now,
        observed_at=now,
        summary="PM2.5 above 75 µg/m³",
    )
    await pipeline.writer.write_events([event])
    await eventually(lambda: len(mailbox.messages) == 1)
    mail = mailbox.messages[0]
    assert mail["To"] == "ambiente@lisboa.example"
    assert "HIGH sensor_threshold created" in mail["Subject"]
    parts = list(mail.walk())
    text = next(p for p in parts if p.get_content_type() == "text/plain").get_payload(decode=True)
    assert b"Department: environment" in text
    attachment = next(p for p in parts if p.get_content_type() == "application/json")
    raw = attachment.get_payload(decode=True)
    assert isinstance(raw, bytes)
    notice = json.loads(raw)
    assert notice["incident"]["first_event_id"] == event.id
    # Only "created" is mailed to this department: an acknowledgement sends nothing.
    incident_id = notice["incident"]["id"]
    await pipeline.ops.transition(incident_id, IncidentStatus.ACKNOWLEDGED, OPERATOR)
    await dispatcher.deliver_due()
    assert len(mailbox.messages) == 1
    assert [d.change_type for d in dispatcher.list_deliveries()] == ["created"]


class CountingSender:
    """A protocol fake: counts sends (the claim logic is what is under test, not HTTP)."""

    def __init__(self) -> None:
        self.sent: list[str] = []

    async def send(self, delivery_id: str, payload: bytes) -> int | None:
        await asyncio.sleep(0.01)
        self.sent.append(delivery_id)
        return 200


async def test_two_dispatchers_never_send_one_delivery_twice(
    pipeline: Pipeline, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TEST_DEPT_SECRET", SECRET)
    config = dispatch_config("http://127.0.0.1:9", 25)
    sender = CountingSender()
    senders = {"traffic-work-orders": sender, "environment-mail": sender}
    first = Dispatcher(config, pipeline.sessions, senders=senders)
    second = Dispatcher(config, pipeline.sessions, senders=senders)
    first.attach(pipeline.ops)
    await pipeline.writer.write_events([parking_event(), parking_event(zone_id="bus-stop-13")])
    await asyncio.gather(first.deliver_due(), second.deliver_due(), first.deliver_due())
    assert len(sender.sent) == 2
    assert len(set(sender.sent)) == 2


class LoginMailbox(Mailbox):
    """A mailbox that also records who logged in (SMTP AUTH after STARTTLS)."""

    def __init__(self) -> None:
        super().__init__()
        self.logins: list[str] = []

    def authenticate(
        self, _server: Any, _session: Any, _envelope: Any, mechanism: str, auth_data: Any
    ) -> AuthResult:
        ok = auth_data.login == b"cityops" and auth_data.password == b"smtp-pw"
        if ok:
            self.logins.append(f"{mechanism}:{auth_data.login.decode()}")
        return AuthResult(success=ok)


# aiosmtpd itself sets its deprecated Session.login_data after a login (in its server thread).
@pytest.mark.filterwarnings("ignore:Session.login_data is deprecated:DeprecationWarning")
async def test_email_over_starttls_with_login(
    tmp_path: Path, pipeline: Pipeline, monkeypatch: pytest.MonkeyPatch
) -> None:
    need(shutil.which("openssl") is not None, "openssl")
    ca = make_ca(tmp_path / "ca", name="Mail CA")
    cert = issue_cert(ca, tmp_path / "smtp", "localhost", server_names=["127.0.0.1", "localhost"])
    server_tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_tls.load_cert_chain(str(cert.cert), str(cert.key))
    mailbox = LoginMailbox()
    port = free_port()
    controller = Controller(
        mailbox,
        hostname="127.0.0.1",
        port=port,
        tls_context=server_tls,
        require_starttls=True,
        authenticator=mailbox.authenticate,
        auth_required=True,
    )
    controller.start()
    monkeypatch.setenv("TEST_SMTP_PW", "smtp-pw")
    try:
        target = EmailTarget.model_validate(
            {
                "type": "email",
                "smtp_host": "127.0.0.1",
                "smtp_port": port,
                "security": "starttls",
                "tls_ca": str(ca.cert),
                "username": "cityops",
                "password_env": "TEST_SMTP_PW",
                "sender": "cityops@lisboa.example",
                "recipients": ["pc@lisboa.example"],
            }
        )
        config = DispatchConfig(
            routes=[DispatchRoute(id="pc-mail", departments=["*"], target=target)]
        )
        dispatcher = Dispatcher(config, pipeline.sessions)
        dispatcher.attach(pipeline.ops)
        await pipeline.writer.write_events([parking_event()])
        assert await dispatcher.deliver_due() == 1
        assert len(mailbox.messages) == 1
        assert mailbox.logins == ["PLAIN:cityops"]
        [row] = dispatcher.list_deliveries()
        assert row.status is DeliveryStatus.DELIVERED
    finally:
        controller.stop()


class RejectingMailbox:
    async def handle_DATA(self, _server: Any, _session: Any, _envelope: Any) -> str:  # noqa: N802 - aiosmtpd hook name
        return "554 5.7.1 Message rejected by policy"


async def test_smtp_permanent_rejection_is_dead_at_once(pipeline: Pipeline) -> None:
    port = free_port()
    controller = Controller(RejectingMailbox(), hostname="127.0.0.1", port=port)
    controller.start()
    try:
        target = EmailTarget(
            type="email",
            smtp_host="127.0.0.1",
            smtp_port=port,
            sender="cityops@lisboa.example",
            recipients=["pc@lisboa.example"],
        )
        config = DispatchConfig(routes=[DispatchRoute(id="pc", departments=["*"], target=target)])
        dispatcher = Dispatcher(config, pipeline.sessions)
        dispatcher.attach(pipeline.ops)
        await pipeline.writer.write_events([parking_event()])
        assert await dispatcher.deliver_due() == 1
    finally:
        controller.stop()
    [row] = dispatcher.list_deliveries()
    assert row.status is DeliveryStatus.DEAD
    assert row.attempts == 1
    assert row.last_error is not None
    assert row.last_error.startswith("SMTP 554")


class CrashError(RuntimeError):
    pass


async def test_a_change_is_committed_with_its_deliveries_or_not_at_all(
    pipeline: Pipeline, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TEST_DEPT_SECRET", SECRET)
    config = dispatch_config("http://127.0.0.1:9", 25)
    dispatcher = Dispatcher(
        config, pipeline.sessions, senders={"traffic-work-orders": CountingSender()}
    )
    dispatcher.attach(pipeline.ops)
    failing = True

    def crash_before_commit(_session: object, _changes: object) -> None:
        if failing:
            raise CrashError("the process dies between the incident write and the commit")

    pipeline.ops.add_notifier(crash_before_commit)
    with pytest.raises(CrashError):
        pipeline.ops.apply_events([parking_event()])
    assert pipeline.ops.list_incidents(IncidentFilter()).items == []
    assert dispatcher.list_deliveries() == []  # no delivery of a change that never happened

    failing = False
    [created] = pipeline.ops.apply_events([parking_event()])
    [row] = dispatcher.list_deliveries()
    assert (row.incident_id, row.change_type) == (created.incident.id, "created")


class ScriptedSender:
    """Fails the first try of the first delivery; records the order of every try."""

    def __init__(self) -> None:
        self.tries: list[str] = []

    async def send(self, delivery_id: str, payload: bytes) -> int | None:
        change = json.loads(payload)["change"]
        self.tries.append(change)
        if len(self.tries) == 1:
            raise DeliveryError("HTTP 503", status=503)
        return 200


async def test_changes_of_one_incident_reach_a_route_in_order(
    pipeline: Pipeline, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TEST_DEPT_SECRET", SECRET)
    sender = ScriptedSender()
    config = dispatch_config("http://127.0.0.1:9", 25)
    dispatcher = Dispatcher(config, pipeline.sessions, senders={"traffic-work-orders": sender})
    dispatcher.attach(pipeline.ops)
    [created] = pipeline.ops.apply_events([parking_event()])
    incident_id = created.incident.id
    await pipeline.ops.transition(incident_id, IncidentStatus.ACKNOWLEDGED, OPERATOR)
    await pipeline.ops.transition(incident_id, IncidentStatus.DISPATCHED, OPERATOR)
    # "created" fails once and backs off; "dispatched" is due but waits behind it.
    assert await dispatcher.deliver_due() == 1
    assert await dispatcher.deliver_due() == 0
    assert sender.tries == ["created"]
    stop = asyncio.Event()
    loop = asyncio.create_task(dispatcher.run(stop))
    await eventually(lambda: sender.tries == ["created", "created", "dispatched"])
    stop.set()
    await loop
    statuses = {d.change_type: d.status for d in dispatcher.list_deliveries()}
    assert statuses == {"created": DeliveryStatus.DELIVERED, "dispatched": DeliveryStatus.DELIVERED}
