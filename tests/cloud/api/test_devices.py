"""Devices via the API on a real broker: register, credentials, config + ack, commands, revoke."""

import asyncio
import io
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import aiomqtt
import httpx
import pytest
from PIL import Image

from cloud.api.app import create_app
from cloud.api.settings import BrokerFilesSettings
from shared.clock import utcnow
from shared.codec import decode, encode
from shared.commands import Command, CommandAck, CommandName
from shared.config import DeviceConfig
from shared.events import Snapshot
from shared.topics import Channel, topic
from tests.cloud.api.conftest import Served, add_keys, make_settings, serve, stop
from tests.cloud.ops.builders import event
from tests.conftest import Broker

pytestmark = pytest.mark.services
DEVICE = "cam-new"
BODY = {"site": "Largo do Carmo", "lat": 38.712, "lon": -9.14, "device_type": "raspberrypi5"}
ZONE_CONFIG = {
    "v": 1,
    "device_id": DEVICE,
    "version": 0,
    "cameras": [
        {
            "id": "cam-1",
            "zones": [
                {
                    "id": "bay-1",
                    "kind": "no_parking",
                    "polygon": [[0.1, 0.5], [0.4, 0.5], [0.4, 0.9]],
                    "dwell_limit_s": 120,
                }
            ],
        }
    ],
}


@pytest.fixture
async def served(
    tmp_path: Path, broker_factory: Callable[[], Broker]
) -> AsyncIterator[tuple[Served, Broker]]:
    broker = broker_factory()
    settings = make_settings(tmp_path, broker=broker, name="devices")
    settings.api.broker_files = BrokerFilesSettings(
        passwd=broker.workdir / "passwd",
        acl=broker.workdir / "acl",
        pid_file=broker.server.pid_file,
        services={name: broker.users[name] for name in ("cityops-api", "cityops-ingest")},
        public_host=broker.host,
        public_port=broker.port,
    )
    app = create_app(settings)
    app.state.keys = add_keys(app)
    running = await serve(app)
    async with asyncio.timeout(10):
        await app.state.ctx.mqtt.connected.wait()
    yield running, broker
    await stop(running)


def client(broker: Broker, username: str, password: str) -> aiomqtt.Client:
    return aiomqtt.Client(
        broker.host,
        broker.port,
        username=username,
        password=password,
        identifier=f"{username}-test",
        protocol=aiomqtt.ProtocolVersion.V5,
    )


async def can_connect(broker: Broker, username: str, password: str) -> bool:
    """Whether the broker accepts the login (it reloads its files asynchronously: retry)."""
    for _ in range(30):
        try:
            async with client(broker, username, password):
                return True
        except aiomqtt.MqttError:
            await asyncio.sleep(0.1)
    return False


def jpeg() -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (32, 24), (10, 120, 30)).save(buf, format="JPEG")
    return buf.getvalue()


async def test_device_registration_credentials_config_commands_revoke(
    served: tuple[Served, Broker],
) -> None:
    server, broker = served
    keys = server.app.state.keys
    tech = {"Authorization": f"Bearer {keys['technician']}"}
    operator = {"Authorization": f"Bearer {keys['operator']}"}
    async with httpx.AsyncClient(base_url=server.url, timeout=15) as http:
        first = await http.put(f"/api/v1/devices/{DEVICE}", json=BODY, headers=tech)
        second = await http.put(f"/api/v1/devices/{DEVICE}", json=BODY, headers=tech)
        assert (first.status_code, second.status_code) == (201, 200)
        listed = await http.get("/api/v1/devices?q=Carmo", headers=tech)
        assert [d["id"] for d in listed.json()["items"]] == [DEVICE]
        assert listed.json()["items"][0]["health"] == "never_seen"

        creds = (await http.post(f"/api/v1/devices/{DEVICE}/credentials", headers=tech)).json()
        assert creds["username"] == DEVICE
        assert creds["port"] == broker.port
        assert await can_connect(broker, DEVICE, creds["password"])
        rotated = (await http.post(f"/api/v1/devices/{DEVICE}/credentials", headers=tech)).json()
        assert await can_connect(broker, DEVICE, rotated["password"])
        assert not await can_connect(broker, DEVICE, creds["password"])
        password = rotated["password"]

        async with client(broker, DEVICE, password) as device:
            await device.subscribe(topic(DEVICE, Channel.CONFIG), qos=1)
            await device.subscribe(topic(DEVICE, Channel.CMD), qos=1)
            put = await http.put(
                f"/api/v1/devices/{DEVICE}/config", json=ZONE_CONFIG, headers=operator
            )
            assert put.status_code == 202, put.text
            assert put.json() == {"version": 1, "published": True}

            async def answer() -> Command:
                """Act as the device: apply the config, answer one snapshot command."""
                async for message in device.messages:
                    if message.topic.matches(topic(DEVICE, Channel.CONFIG)):
                        config = decode(DeviceConfig, bytes(message.payload))
                        ack = CommandAck(
                            device_id=DEVICE,
                            name=CommandName.CONFIG,
                            ok=True,
                            ts=utcnow(),
                            config_version=config.version,
                            message="applied",
                        )
                        await device.publish(topic(DEVICE, Channel.CMD_ACK), encode(ack), qos=1)
                    else:
                        command = decode(Command, bytes(message.payload))
                        ack = CommandAck(
                            device_id=DEVICE,
                            name=command.name,
                            command_id=command.id,
                            ok=True,
                            ts=utcnow(),
                            snapshot=Snapshot(data=jpeg(), width=32, height=24),
                        )
                        await device.publish(topic(DEVICE, Channel.CMD_ACK), encode(ack), qos=1)
                        return command
                raise AssertionError("no command")

            responder = asyncio.create_task(answer())
            shot = await http.post(
                f"/api/v1/devices/{DEVICE}/commands?wait=5",
                json={"name": "snapshot", "camera_id": "cam-1"},
                headers=operator,
            )
            assert shot.status_code == 200, shot.text
            command = await responder
            assert shot.json()["command_id"] == command.id
            assert command.camera_id == "cam-1"
            assert shot.json()["snapshot"]["data"]
            later = await http.get(
                f"/api/v1/devices/{DEVICE}/commands/{command.id}", headers=operator
            )
            assert later.json()["command_id"] == command.id

        config = (await http.get(f"/api/v1/devices/{DEVICE}/config", headers=operator)).json()
        assert config["version"] == 1
        assert config["acked_version"] == 1
        assert config["config"]["cameras"][0]["zones"][0]["dwell_limit_s"] == 120
        wrong = dict(ZONE_CONFIG, device_id="someone-else")
        refused = await http.put(f"/api/v1/devices/{DEVICE}/config", json=wrong, headers=operator)
        assert refused.status_code == 422
        assert refused.json()["errors"][0]["field"] == "device_id"

        await server.app.state.store.write_events([event(device_id=DEVICE)])
        kept = await http.delete(f"/api/v1/devices/{DEVICE}", headers=tech)
        assert kept.status_code == 409
        revoked = await http.post(f"/api/v1/devices/{DEVICE}/revoke", headers=tech)
        assert revoked.json()["revoked"] is True
        assert not await can_connect(broker, DEVICE, password)
        # The API's own service account survived the rewrite of the broker files.
        assert server.app.state.ctx.mqtt.connected.is_set()

        spare = await http.put("/api/v1/devices/cam-spare", json=BODY, headers=tech)
        assert spare.status_code == 201
        gone = await http.delete("/api/v1/devices/cam-spare", headers=tech)
        assert gone.status_code == 204
        assert (await http.get("/api/v1/devices/cam-spare", headers=tech)).status_code == 404
