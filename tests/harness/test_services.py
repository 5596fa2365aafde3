"""The harness itself: a real Event through the real Mosquitto, a real point through InfluxDB."""

import queue
import subprocess
from datetime import UTC, datetime
from pathlib import Path

import httpx
import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

from cloud.broker.certs import issue_device_cert, make_ca
from cloud.services.influxd import Influxd
from shared import Event, EventKind
from shared.codec import decode, encode
from shared.ids import new_id
from shared.topics import Channel, subscription, topic
from tests.conftest import ADMIN_USER, Broker, TlsBroker


def client(broker: Broker, user: str | None, password: str | None = None) -> mqtt.Client:
    c = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
    if user is not None:
        c.username_pw_set(user, password if password is not None else broker.users[user])
    return c


def connect_rc(c: mqtt.Client, host: str, port: int) -> int:
    result: queue.Queue[int] = queue.Queue()
    c.on_connect = lambda _c, _u, _f, rc, _p: result.put(int(rc.value))
    c.connect(host, port)
    c.loop_start()
    try:
        return result.get(timeout=5)
    finally:
        pass


def test_event_through_real_mosquitto_arrives_intact(mosquitto: Broker) -> None:
    got: queue.Queue[bytes] = queue.Queue()
    sub = client(mosquitto, ADMIN_USER)
    sub.on_message = lambda _c, _u, msg: got.put(bytes(msg.payload))
    assert connect_rc(sub, mosquitto.host, mosquitto.port) == 0
    sub.subscribe(subscription(Channel.EVENT, "dev-a"), qos=1)
    pub = client(mosquitto, "dev-a")
    assert connect_rc(pub, mosquitto.host, mosquitto.port) == 0
    now = datetime.now(UTC)
    event = Event(
        id=new_id(), device_id="dev-a", kind=EventKind.CROWDING, started_at=now, observed_at=now
    )
    import time

    time.sleep(0.2)  # let the subscription settle
    pub.publish(topic("dev-a", Channel.EVENT), encode(event), qos=1).wait_for_publish(5)
    assert decode(Event, got.get(timeout=5)) == event
    for c in (sub, pub):
        c.loop_stop()
        c.disconnect()


def test_acl_denies_foreign_topic_with_reason_135(mosquitto: Broker) -> None:
    codes: queue.Queue[int] = queue.Queue()
    pub = client(mosquitto, "dev-a")

    def on_publish(_c: mqtt.Client, _u: object, _mid: int, rc: ReasonCode, _p: Properties) -> None:
        codes.put(int(rc.value))

    pub.on_publish = on_publish
    assert connect_rc(pub, mosquitto.host, mosquitto.port) == 0
    pub.publish(topic("dev-b", Channel.EVENT), b"{}", qos=1)
    assert codes.get(timeout=5) == 135
    pub.publish(topic("dev-a", Channel.TELEMETRY), b"{}", qos=1)
    assert codes.get(timeout=5) in (0, 16)
    pub.loop_stop()
    pub.disconnect()


@pytest.mark.parametrize(("user", "password"), [(None, None), ("dev-a", "wrong"), ("nobody", "x")])
def test_anonymous_and_bad_passwords_are_refused(
    mosquitto: Broker, user: str | None, password: str | None
) -> None:
    c = client(mosquitto, user, password)
    assert connect_rc(c, mosquitto.host, mosquitto.port) == 135
    c.loop_stop()


def test_tls_client_certificate_is_the_identity(mosquitto_tls: TlsBroker) -> None:
    cert = mosquitto_tls.device_cert("dev-c")
    c = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
    c.tls_set(ca_certs=str(mosquitto_tls.ca.cert), certfile=str(cert.cert), keyfile=str(cert.key))
    codes: queue.Queue[int] = queue.Queue()
    c.on_publish = lambda _c, _u, _m, rc, _p: codes.put(int(rc.value))
    assert connect_rc(c, "127.0.0.1", mosquitto_tls.tls_port) == 0
    c.publish(topic("dev-c", Channel.EVENT), b"{}", qos=1)
    assert codes.get(timeout=5) in (0, 16)
    c.publish(topic("dev-a", Channel.EVENT), b"{}", qos=1)
    assert codes.get(timeout=5) == 135
    c.loop_stop()
    c.disconnect()


def test_tls_without_client_certificate_is_refused(
    mosquitto_tls: TlsBroker, tmp_path: Path
) -> None:
    base = [
        "mosquitto_pub",
        "-h",
        "127.0.0.1",
        "-p",
        str(mosquitto_tls.tls_port),
        "-t",
        "x",
        "-m",
        "y",
    ]
    base += ["--cafile", str(mosquitto_tls.ca.cert)]
    no_cert = subprocess.run(base, capture_output=True, timeout=10, check=False)
    assert no_cert.returncode != 0
    foreign_ca = make_ca(tmp_path / "foreign")
    foreign = issue_device_cert(foreign_ca, tmp_path / "foreign", "dev-a")
    wrong = subprocess.run(
        [*base, "--cert", str(foreign.cert), "--key", str(foreign.key)],
        capture_output=True,
        timeout=10,
        check=False,
    )
    assert wrong.returncode != 0


def test_point_written_to_real_influxdb_reads_back(influxd: Influxd, influx_db: str) -> None:
    line = "probe,device=dev-a value=42i 1700000000000"
    resp = httpx.post(
        f"{influxd.url}/write", params={"db": influx_db, "precision": "ms"}, content=line
    )
    assert resp.status_code == 204
    data = influxd.query("SELECT value FROM probe WHERE device='dev-a'", db=influx_db)
    series = data["results"][0]["series"][0]  # type: ignore[index]
    assert series["values"] == [[1700000000000, 42]]
