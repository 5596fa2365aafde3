"""The real operations API (uvicorn in a thread, SQLite, in-process ingest) on a harness broker."""

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from pydantic import SecretStr
from sqlalchemy.orm import sessionmaker

from cloud.services.ports import free_port
from cloud.settings import CloudSettings, MqttClientSettings, StoreSettings
from tests.conftest import ADMIN_USER, API_USER, INGEST_USER, Broker


@dataclass(frozen=True)
class OpsStack:
    url: str
    technician_key: str
    viewer_key: str
    broker: Broker


@contextmanager
def run_ops_api(broker: Broker, workdir: Path) -> Iterator[OpsStack]:
    import uvicorn

    from cloud.api.app import create_app
    from cloud.api.settings import ApiOptions, ApiSettings, BrokerFilesSettings
    from cloud.db.base import make_engine
    from cloud.db.tables import create_all
    from cloud.ops.keys import create_api_key

    workdir.mkdir(parents=True, exist_ok=True)
    database_url = f"sqlite:///{workdir / 'ops.sqlite'}"

    def account(user: str) -> MqttClientSettings:
        return MqttClientSettings(
            host=broker.host,
            port=broker.port,
            username=user,
            password=SecretStr(broker.users[user]),
            client_id=f"{user}-{workdir.name}"[:60],
        )

    settings = ApiSettings(
        cloud=CloudSettings(
            database_url=database_url,
            mqtt=account(INGEST_USER),
            store=StoreSettings(kind="sqlite", sqlite_path=workdir / "ts.sqlite"),
        ),
        api=ApiOptions(
            mqtt=account(API_USER),
            broker_files=BrokerFilesSettings(
                passwd=broker.workdir / "passwd",
                acl=broker.workdir / "acl",
                pid_file=broker.server.pid_file,
                services={
                    u: SecretStr(broker.users[u]) for u in (ADMIN_USER, INGEST_USER, API_USER)
                },
                public_host=broker.host,
                public_port=broker.port,
            ),
        ),
    )
    engine = make_engine(database_url)
    create_all(engine)
    with sessionmaker(engine)() as session:
        technician = create_api_key(session, name="technician", role="technician")
        viewer = create_api_key(session, name="viewer", role="viewer")
    engine.dispose()

    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(
            create_app(settings, ingest=True), host="127.0.0.1", port=port, log_level="warning"
        )
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("operations API did not start")
        time.sleep(0.05)
    try:
        yield OpsStack(
            url=f"http://127.0.0.1:{port}",
            technician_key=technician,
            viewer_key=viewer,
            broker=broker,
        )
    finally:
        server.should_exit = True
        thread.join(15)
