"""Registry -> password file + ACL -> the real Mosquitto: who may connect, publish and read."""

import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from sqlalchemy.orm import Session

from cloud.broker.acl import ServiceAccount, ServiceRole
from cloud.broker.passwords import hash_password
from cloud.broker.registry import BrokerFiles, ServiceCredential, sync_broker
from cloud.db.base import make_engine
from cloud.db.devices import Device
from cloud.db.tables import create_all
from cloud.services.mosquitto import Mosquitto, MosquittoConfig
from shared.clock import utcnow
from shared.topics import Channel, subscription, topic
from tests.cloud.broker.peers import DENIED, OK, Peer, connect_rc

pytestmark = pytest.mark.services

SERVICES = {
    "svc-ingest": ("ingest-secret", ServiceRole.INGEST),
    "svc-api": ("api-secret", ServiceRole.OPERATOR),
}


@dataclass
class Site:
    broker: Mosquitto
    files: BrokerFiles
    session: Session

    @property
    def host(self) -> str:
        return self.broker.host

    @property
    def port(self) -> int:
        return self.broker.port

    def sync(self) -> None:
        services = [
            ServiceCredential(ServiceAccount(name, role), hash_password(pw))
            for name, (pw, role) in SERVICES.items()
        ]
        sync_broker(self.session, self.files, services)


@pytest.fixture
def site(tmp_path: Path) -> Iterator[Site]:
    engine = make_engine(f"sqlite:///{tmp_path / 'registry.sqlite'}")
    create_all(engine)
    with Session(engine) as session:
        session.add_all(
            [
                Device(id="reg-a", mqtt_password_hash=hash_password("pw-a")),
                Device(id="reg-b", mqtt_password_hash=hash_password("pw-b")),
                Device(
                    id="reg-gone",
                    mqtt_password_hash=hash_password("pw-gone"),
                    revoked=True,
                    revoked_at=utcnow(),
                ),
                Device(id="reg-unprovisioned"),
            ]
        )
        session.commit()
        workdir = tmp_path / "broker"
        workdir.mkdir()
        files = BrokerFiles(workdir / "passwd", workdir / "acl", workdir / "mosquitto.pid")
        broker = Mosquitto(
            MosquittoConfig(workdir=workdir, password_file=files.passwd, acl_file=files.acl)
        )
        s = Site(broker, files, session)
        s.sync()  # files first: the broker refuses to start without them
        broker.start()
        yield s
        broker.stop()
    engine.dispose()


def test_only_active_provisioned_devices_and_services_get_in(site: Site) -> None:
    assert connect_rc(site, "reg-a", "pw-a") == 0
    assert connect_rc(site, "svc-ingest", "ingest-secret") == 0
    assert connect_rc(site, "reg-a", "pw-b") == DENIED
    assert connect_rc(site, "reg-gone", "pw-gone") == DENIED
    assert connect_rc(site, "reg-unprovisioned", "") == DENIED
    for path in (site.files.passwd, site.files.acl):
        assert path.stat().st_mode & 0o777 == 0o600
    assert "pw-a" not in site.files.passwd.read_text()


def test_devices_stay_in_their_own_topics_and_services_in_their_role(site: Site) -> None:
    a = Peer(site, "reg-a", "pw-a")
    b = Peer(site, "reg-b", "pw-b")
    ingest = Peer(site, "svc-ingest", "ingest-secret")
    api = Peer(site, "svc-api", "api-secret")
    try:
        assert ingest.subscribe(subscription(Channel.EVENT)) in (0, 1)
        for ch in (Channel.EVENT, Channel.TELEMETRY, Channel.STATUS, Channel.CMD_ACK):
            assert a.publish(topic("reg-a", ch)) in OK
            assert a.publish(topic("reg-b", ch)) == DENIED
        assert ingest.messages.get(timeout=5) == b"{}"  # reg-a's own event got through
        assert ingest.messages.empty()  # ... and reg-a's forged reg-b event did not
        # Devices read only their own config and commands (Mosquitto 2.0 grants the SUBSCRIBE
        # and filters at delivery, so the proof is what arrives); they cannot write them.
        for ch in (Channel.CONFIG, Channel.CMD):
            assert a.subscribe(subscription(ch, "reg-a")) in (0, 1)
            assert b.subscribe(subscription(ch, "reg-a")) in (0, 1, DENIED)
        assert b.subscribe(subscription(Channel.EVENT)) in (0, 1, DENIED)
        assert a.publish(topic("reg-a", Channel.CONFIG)) == DENIED
        assert b.publish(topic("reg-a", Channel.CMD)) == DENIED
        # The operator (API) writes configs and commands; ingest only reads.
        assert api.publish(topic("reg-a", Channel.CONFIG), b'{"v": 1}', retain=True) in OK
        assert api.publish(topic("reg-a", Channel.CMD), b'{"cmd": 1}') in OK
        assert a.publish(topic("reg-a", Channel.EVENT), b"own") in OK
        assert {a.messages.get(timeout=5), a.messages.get(timeout=5)} == {
            b'{"v": 1}',
            b'{"cmd": 1}',
        }
        assert ingest.messages.get(timeout=5) == b"own"
        assert ingest.publish(topic("reg-a", Channel.CMD)) == DENIED
        assert ingest.publish(topic("reg-a", Channel.EVENT)) == DENIED
        time.sleep(0.3)
        assert b.messages.empty(), "reg-b read reg-a's config, commands or events"
    finally:
        for peer in (a, b, ingest, api):
            peer.close()


def test_revoke_in_the_registry_cuts_a_connected_device_off_after_sync(site: Site) -> None:
    a = Peer(site, "reg-a", "pw-a")
    b = Peer(site, "reg-b", "pw-b")
    try:
        assert a.publish(topic("reg-a", Channel.EVENT)) in OK
        device = site.session.get(Device, "reg-a")
        assert device is not None
        device.revoked = True
        device.revoked_at = utcnow()
        device.mqtt_password_hash = None
        site.session.commit()
        site.sync()  # rewrites the files and SIGHUPs the broker through its pid file
        assert a.gone.wait(5), "the revoked device kept its connection"
        assert b.publish(topic("reg-b", Channel.EVENT)) in OK  # others are untouched
    finally:
        a.close()
        b.close()
    assert connect_rc(site, "reg-a", "pw-a") == DENIED


def test_a_device_added_to_the_registry_gets_in_without_a_broker_restart(site: Site) -> None:
    assert connect_rc(site, "reg-new", "pw-new") == DENIED
    pid = site.broker.pid
    site.session.add(Device(id="reg-new", mqtt_password_hash=hash_password("pw-new")))
    site.session.commit()
    site.sync()
    peer = Peer(site, "reg-new", "pw-new")
    try:
        if peer.rc != 0:  # SIGHUP is asynchronous: give the broker a moment to re-read
            peer.close()
            peer = Peer(site, "reg-new", "pw-new")
        assert peer.rc == 0
        assert peer.publish(topic("reg-new", Channel.EVENT)) in OK
    finally:
        peer.close()
    assert site.broker.pid == pid
