"""The production ``mosquitto.conf`` run by the real Mosquitto.

Cert devices on the TLS port, password devices over TLS, services on loopback, and a revoked
certificate refused after the CRL is re-read (SIGHUP).
"""

import os
import queue
import signal
import ssl
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from cloud.broker.acl import AclSpec, ServiceAccount, ServiceRole, render_acl
from cloud.broker.certs import (
    CertPair,
    issue_cert,
    issue_device_cert,
    make_ca,
    revoke_cert,
    write_crl,
)
from cloud.broker.conf import ProductionBroker, render_production_conf
from cloud.broker.passwords import hash_password, password_file
from cloud.services.ports import free_port, wait_tcp
from cloud.services.process import ServiceProcess, require_binary
from shared.limits import MAX_PACKET_BYTES
from shared.topics import Channel, topic

pytestmark = pytest.mark.services

OK = (0, 16)


@dataclass
class Prod:
    conf: ProductionBroker
    ca: CertPair
    certs: Path
    process: ServiceProcess

    def reload(self) -> None:
        assert self.conf.pid_file is not None
        os.kill(int(self.conf.pid_file.read_text()), signal.SIGHUP)
        time.sleep(0.3)


@pytest.fixture
def prod(tmp_path: Path) -> Iterator[Prod]:
    ca = make_ca(tmp_path / "ca")
    server = issue_cert(ca, tmp_path / "server", "broker", server_names=["127.0.0.1"])
    (tmp_path / "passwd").write_text(
        password_file({"sensor-1": hash_password("s1-pw"), "svc-ingest": hash_password("i-pw")})
    )
    acl = render_acl(AclSpec(services=[ServiceAccount("svc-ingest", ServiceRole.INGEST)]))
    (tmp_path / "acl").write_text(acl)
    (tmp_path / "data").mkdir()
    conf = ProductionBroker(
        data_dir=tmp_path / "data",
        passwd=tmp_path / "passwd",
        acl=tmp_path / "acl",
        ca_file=ca.cert,
        cert_file=server.cert,
        key_file=server.key,
        crl_file=write_crl(ca, tmp_path / "crl.pem"),
        pid_file=tmp_path / "mosquitto.pid",
        tls_port=free_port(),
        password_tls_port=free_port(),
        local_port=free_port(),
        bind_address="127.0.0.1",
        user="root" if os.geteuid() == 0 else None,
        log_dest=f"file {tmp_path / 'mosquitto.log'}",
    )
    path = tmp_path / "mosquitto.conf"
    path.write_text(render_production_conf(conf))
    proc = ServiceProcess(
        [require_binary("mosquitto", "mosquitto"), "-c", str(path)], tmp_path / "out.log"
    )
    proc.start()
    try:
        for port in (conf.tls_port, conf.password_tls_port, conf.local_port):
            assert port is not None
            wait_tcp("127.0.0.1", port, 10)
        yield Prod(conf, ca, tmp_path / "devices", proc)
    finally:
        proc.stop()


@dataclass
class Session:
    client: mqtt.Client
    rc: int
    """CONNACK reason code; -1 when the TLS handshake or the connection failed."""
    pubacks: "queue.Queue[int]"
    drops: "queue.Queue[int]"


def session(
    port: int,
    *,
    ca: Path | None = None,
    cert: CertPair | None = None,
    user: str | None = None,
    password: str | None = None,
    client_id: str = "",
) -> Session:
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv5)
    if ca is not None:
        client.tls_set(
            ca_certs=str(ca),
            certfile=None if cert is None else str(cert.cert),
            keyfile=None if cert is None else str(cert.key),
        )
    if user is not None:
        client.username_pw_set(user, password)
    connack: queue.Queue[int] = queue.Queue()
    pubacks: queue.Queue[int] = queue.Queue()
    client.on_connect = lambda _c, _u, _f, rc, _p: connack.put(int(rc.value))
    client.on_publish = lambda _c, _u, _m, rc, _p: pubacks.put(int(rc.value))
    # A refused client certificate (TLS 1.3) shows up as a dropped connection after connect().
    drops: queue.Queue[int] = queue.Queue()

    def disconnected(*_args: object) -> None:
        connack.put(-1)
        drops.put(1)

    client.on_disconnect = disconnected
    try:
        client.connect("127.0.0.1", port)
    except (OSError, ssl.SSLError):
        return Session(client, -1, pubacks, drops)
    client.loop_start()
    try:
        rc = connack.get(timeout=5)
    except queue.Empty:
        rc = -1
    return Session(client, rc, pubacks, drops)


def close(client: mqtt.Client) -> None:
    client.disconnect()
    client.loop_stop()


def test_device_certificate_is_the_identity_on_the_tls_port(prod: Prod) -> None:
    cert = issue_device_cert(prod.ca, prod.certs, "cam-7")
    cam = session(prod.conf.tls_port, ca=prod.ca.cert, cert=cert)
    assert cam.rc == 0
    cam.client.publish(topic("cam-7", Channel.EVENT), b"{}", qos=1)
    assert cam.pubacks.get(timeout=5) in OK
    cam.client.publish(topic("cam-8", Channel.EVENT), b"{}", qos=1)
    assert cam.pubacks.get(timeout=5) == 135
    close(cam.client)
    nocert = session(prod.conf.tls_port, ca=prod.ca.cert)
    assert nocert.rc != 0
    close(nocert.client)


def test_password_devices_over_tls_and_services_on_loopback(prod: Prod) -> None:
    assert prod.conf.password_tls_port is not None
    assert prod.conf.local_port is not None
    sensor = session(
        prod.conf.password_tls_port, ca=prod.ca.cert, user="sensor-1", password="s1-pw"
    )
    assert sensor.rc == 0
    sensor.client.publish(topic("sensor-1", Channel.TELEMETRY), b"{}", qos=1)
    assert sensor.pubacks.get(timeout=5) in OK
    close(sensor.client)
    wrong = session(prod.conf.password_tls_port, ca=prod.ca.cert, user="sensor-1", password="x")
    assert wrong.rc == 135
    close(wrong.client)
    anonymous = session(prod.conf.password_tls_port, ca=prod.ca.cert)
    assert anonymous.rc == 135
    close(anonymous.client)
    service = session(prod.conf.local_port, user="svc-ingest", password="i-pw")
    assert service.rc == 0
    close(service.client)


def test_a_device_cannot_take_over_a_service_or_device_client_id(prod: Prod) -> None:
    assert prod.conf.password_tls_port is not None
    assert prod.conf.local_port is not None
    ingest = session(prod.conf.local_port, user="svc-ingest", password="i-pw", client_id="ing-1")
    cam = session(
        prod.conf.tls_port,
        ca=prod.ca.cert,
        cert=issue_device_cert(prod.ca, prod.certs, "cam-7"),
        client_id="cam-7",
    )
    assert (ingest.rc, cam.rc) == (0, 0)
    for victim in ("ing-1", "cam-7", "svc-ingest"):
        thief = session(
            prod.conf.password_tls_port,
            ca=prod.ca.cert,
            user="sensor-1",
            password="s1-pw",
            client_id=victim,
        )
        assert thief.rc == 0  # connected, but as "sensor-1"
        close(thief.client)
    time.sleep(0.3)
    assert ingest.drops.empty(), "the ingest session was taken over"
    assert cam.drops.empty(), "the camera's session was taken over"
    close(ingest.client)
    close(cam.client)


def test_revoked_certificate_is_refused_after_crl_reload(prod: Prod) -> None:
    assert prod.conf.crl_file is not None
    keep = issue_device_cert(prod.ca, prod.certs, "cam-keep")
    gone = issue_device_cert(prod.ca, prod.certs, "cam-gone")
    before = session(prod.conf.tls_port, ca=prod.ca.cert, cert=gone)
    assert before.rc == 0
    close(before.client)
    revoke_cert(prod.ca, gone.cert)
    write_crl(prod.ca, prod.conf.crl_file)
    prod.reload()
    after = session(prod.conf.tls_port, ca=prod.ca.cert, cert=gone)
    assert after.rc != 0
    close(after.client)
    other = session(prod.conf.tls_port, ca=prod.ca.cert, cert=keep)
    assert other.rc == 0
    close(other.client)


def test_rendered_conf_has_the_production_essentials() -> None:
    conf = ProductionBroker(
        data_dir=Path("/var/lib/mosquitto"),
        passwd=Path("/etc/mosquitto/cityops.passwd"),
        acl=Path("/etc/mosquitto/cityops.acl"),
        ca_file=Path("/etc/mosquitto/ca.crt"),
        cert_file=Path("/etc/mosquitto/server.crt"),
        key_file=Path("/etc/mosquitto/server.key"),
        crl_file=Path("/etc/mosquitto/crl.pem"),
    )
    text = render_production_conf(conf)
    assert "allow_anonymous false" in text
    assert "listener 8883\n" in text
    assert "listener 8884\n" in text
    assert "listener 1883 127.0.0.1" in text
    tls_block = text.split("listener 8883\n")[1].split("\n\n")[0]
    assert "require_certificate true" in tls_block
    assert "use_identity_as_username true" in tls_block
    assert "crlfile /etc/mosquitto/crl.pem" in tls_block
    password_block = text.split("listener 8884\n")[1].split("\n\n")[0]
    for block in (tls_block, password_block):
        assert "use_username_as_clientid true" in block
    local_block = text.split("listener 1883 127.0.0.1")[1]
    assert "use_username_as_clientid" not in local_block
    assert f"max_packet_size {MAX_PACKET_BYTES}" in text
