"""A full run of ``cityops cloud serve`` leaks no key, ticket or password into any log.

The run uses every way a credential reaches the server, the wrong ones included (a key in a
REST query, a key in a WebSocket URL), provisions a device whose MQTT password then carries a
real event through the real broker, and greps every log the run wrote for every secret it made.
"""

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import aiomqtt
import httpx
import pytest
import yaml
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed
from websockets.typing import Subprotocol

from cloud.api.logs import redact
from cloud.services.ports import free_port
from shared.codec import encode
from shared.events import EventKind
from shared.topics import Channel, topic
from tests.cloud.ops.builders import event
from tests.conftest import API_USER, INGEST_USER, Broker

pytestmark = pytest.mark.services
DEVICE = "cam-logs-01"


def _cli(config: Path, *args: str) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "cityops", "cloud", "keys", *args, "--config", str(config)],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    return done.stdout.strip()


def _config(tmp_path: Path, broker: Broker, port: int) -> Path:
    mqtt = {"host": broker.host, "port": broker.port}
    config = {
        "database_url": f"sqlite:///{tmp_path / 'state.sqlite'}",
        "store": {"kind": "sqlite", "sqlite_path": str(tmp_path / "ts.sqlite")},
        "mqtt": {**mqtt, "username": INGEST_USER, "password": "ingest-pw"},
        "ingest": {"share_group": "g-logs", "session_expiry_s": 0, "batch_interval_s": 0.05},
        "api": {
            "host": "127.0.0.1",
            "port": port,
            "mqtt": {**mqtt, "username": API_USER, "password": "api-pw", "client_id": "api-logs"},
            "broker_files": {
                "passwd": str(broker.workdir / "passwd"),
                "acl": str(broker.workdir / "acl"),
                "pid_file": str(broker.server.pid_file),
                "services": {INGEST_USER: "ingest-pw", API_USER: "api-pw"},
                "public_host": broker.host,
                "public_port": broker.port,
            },
        },
    }
    path = tmp_path / "cloud.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


async def _exercise(url: str, keys: dict[str, str], broker: Broker) -> list[str]:
    """Use the API every way a client might; the secrets it was handed (tickets, password)."""
    made: list[str] = []
    ws = url.replace("http", "ws") + "/api/v1/live/ws"
    auth = {k: {"Authorization": f"Bearer {v}"} for k, v in keys.items()}
    async with httpx.AsyncClient(base_url=url, timeout=10) as client:
        for who in keys:
            await client.get("/api/v1/me", headers=auth[who])
        # Mistakes and attacks: a key in a query string, a wrong key, a key in a WS URL.
        await client.get("/api/v1/events", params={"token": keys["viewer"]})
        await client.get("/api/v1/events", params={"api_key": keys["admin"], "limit": 5})
        for _ in range(7):  # enough to be slowed down
            await client.get("/api/v1/me", headers={"Authorization": "Bearer cok_abc_guessed"})
        with pytest.raises(ConnectionClosed):
            async with connect(f"{ws}?token={keys['viewer']}") as refused:
                await asyncio.wait_for(refused.recv(), 5)
        registered = await client.put(
            f"/api/v1/devices/{DEVICE}",
            headers=auth["technician"],
            json={"site": "Rossio", "lat": 38.71, "lon": -9.14, "device_type": "raspberrypi5"},
        )
        assert registered.status_code == 201, registered.text
        issued = await client.post(f"/api/v1/devices/{DEVICE}/credentials", headers=auth["admin"])
        assert issued.status_code == 200, issued.text
        password = issued.json()["password"]
        made.append(password)
        ticket = (await client.post("/api/v1/live/tickets", headers=auth["viewer"])).json()
        made.append(ticket["ticket"])
        second = (await client.post("/api/v1/live/tickets", headers=auth["viewer"])).json()
        made.append(second["ticket"])
        sent = event(EventKind.ABANDONED_OBJECT, device_id=DEVICE)
        protocols = [Subprotocol("cityops.v1"), Subprotocol(f"cityops.ticket.{ticket['ticket']}")]
        async with (
            connect(f"{ws}?ticket={second['ticket']}") as by_query,
            connect(ws, subprotocols=protocols) as by_protocol,
        ):
            await asyncio.sleep(0.5)  # both subscribed
            async with aiomqtt.Client(
                broker.host, broker.port, username=DEVICE, password=password
            ) as device:
                await device.publish(topic(DEVICE, Channel.EVENT), encode(sent), qos=1)
            for stream in (by_query, by_protocol):
                async with asyncio.timeout(10):
                    while sent.id not in await stream.recv():
                        pass
        async with client.stream(
            "GET", "/api/v1/live/sse", headers=auth["viewer"], params={"kind": "crowding"}
        ) as sse:
            assert sse.status_code == 200
        stored = await client.get(f"/api/v1/events/{sent.id}", headers=auth["viewer"])
        assert stored.status_code == 200
    return made


def test_no_key_ticket_or_password_in_any_log_of_a_full_run(
    tmp_path: Path, broker_factory: Callable[[], Broker]
) -> None:
    broker = broker_factory()
    port = free_port()
    config = _config(tmp_path, broker, port)
    keys = {
        role: _cli(config, "create", "--name", f"{role} desk", "--role", role)
        for role in ("admin", "viewer", "technician", "supervisor")
    }
    keys["viewer@civil"] = _cli(
        config, "create", "--name", "civil", "--role", "viewer", "-d", "civil-protection"
    )
    log = tmp_path / "serve.log"
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    with log.open("wb") as out:
        server = subprocess.Popen(
            [sys.executable, "-m", "cityops", "cloud", "serve", "--config", str(config)],
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
        )
        try:
            url = f"http://127.0.0.1:{port}"
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                try:
                    if httpx.get(url + "/readyz", timeout=1).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                time.sleep(0.2)
            made = asyncio.run(_exercise(url, keys, broker))
            _cli(config, "revoke", keys["viewer@civil"].split("_")[1])
        finally:
            server.send_signal(signal.SIGINT)
            server.wait(30)
    logs = {path: path.read_text(errors="replace") for path in [log, *broker.workdir.glob("*.log")]}
    served = logs[log]
    # The logs are real: the access log saw the requests, including the refused ones.
    assert '"GET /api/v1/me HTTP/1.1" 401' in served
    assert "/api/v1/events?token=***" in served
    assert "/api/v1/live/ws?token=***" in served
    assert "/api/v1/live/ws?ticket=***" in served
    secrets = [*keys.values(), *(k.split("_", 2)[2] for k in keys.values()), *made]
    secrets += ["ingest-pw", "api-pw", "cok_abc_guessed"]
    for path, text in logs.items():
        leaked = [s[:12] + "…" for s in secrets if s in text]
        assert not leaked, f"{path.name} carries {leaked}"


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ('"GET /ws?token=cok_ab12_s3cr3t-x HTTP/1.1" 101', '"GET /ws?token=*** HTTP/1.1" 101'),
        ("/x?kind=crowding&ticket=cot_abc&limit=5", "/x?kind=crowding&ticket=***&limit=5"),
        ("/x?Password=hunter2;X-Signature=ab", "/x?Password=***;X-Signature=***"),
        ("key cok_0a1b2c_Zz-9_q was used", "key cok_0a1b2c_*** was used"),
        ("Authorization: Bearer abc.def-ghi", "Authorization: Bearer ***"),
        ("/api/v1/events?device_id=cam-1&limit=5", "/api/v1/events?device_id=cam-1&limit=5"),
    ],
)  # fmt: skip
def test_redact_masks_secret_query_values_keys_tickets_and_bearer_values(
    line: str, expected: str
) -> None:
    assert redact(line) == expected
